//! QEMU `virt` (`-M virt -cpu cortex-a53`): RAM from 0x4000_0000, devices below it.

use super::Defaults;
use crate::devicetree::Platform;
use crate::memory::MemType;
use crate::memory::Region;

pub const NAME: &str = "virt";

/// The domain that exports `Block` on this board, the virtio-blk driver (virtio-mmio): the block self tests crash
/// and swap it, between the kept versions `initrd/virt.toml` signs (0.2.0 and the
/// 0.1.1 downgrade).
#[cfg_attr(not(feature = "selftest"), allow(dead_code))] // read by the block self tests and the bench
pub const BLOCK_DRIVER: &str = "virtio-blk";

/// Before the device tree: the first GiB is devices, the next three are RAM.
pub const BOOT_MAP: &[(Region, MemType)] = &[
    (Region { base: 0, size: 0x4000_0000 }, MemType::Device),
    (
        Region {
            base: 0x4000_0000,
            size: 0xc000_0000,
        },
        MemType::Normal,
    ),
];
pub const BOOT_RAM: Region = Region {
    base: 0x4000_0000,
    size: 0xc000_0000,
};

fn gic(p: &mut Platform) {
    p.gic = Some((
        Region {
            base: 0x0800_0000,
            size: 0x1_0000,
        },
        Region {
            base: 0x0801_0000,
            size: 0x1_0000,
        },
    ));
}

/// QEMU's virt machine layout (hw/arm/virt.c); 128 MiB is QEMU's default RAM size.
pub const DEFAULTS: Defaults = Defaults {
    memory: Region {
        base: 0x4000_0000,
        size: 128 << 20,
    },
    reserved: &[],
    uart: Region {
        base: 0x0900_0000,
        size: 0x1000,
    },
    uart_irq: ("arm,cortex-a15-gic", &[0, 1, 4]),
    uart_clock_hz: 24_000_000,
    interrupt_controller: gic,
    timer_irq: ("arm,cortex-a15-gic", &[1, 14, 4]),
    counter_hz: 62_500_000,
};
