//! Raspberry Pi 3 (BCM2837; QEMU `-M raspi3b`): RAM from 0, peripherals at 0x3f00_0000,
//! the per-core local controller at 0x4000_0000.

use super::Defaults;
use crate::devicetree::Platform;
use crate::memory::MemType;
use crate::memory::Region;

pub const NAME: &str = "rpi3";

/// The domain that exports `Block` on this board, the SD card driver (Arasan SDHCI): the block self tests crash
/// and swap it, between the kept versions `initrd/rpi3.toml` signs (0.2.0 and the
/// 0.1.1 downgrade).
#[cfg_attr(not(feature = "selftest"), allow(dead_code))] // read by the block self tests and the bench
pub const BLOCK_DRIVER: &str = "sdhci";

/// Before the device tree: RAM up to the peripherals, then the peripherals and the local
/// controller as device memory.
pub const BOOT_MAP: &[(Region, MemType)] = &[
    (Region { base: 0, size: 0x3f00_0000 }, MemType::Normal),
    (
        Region {
            base: 0x3f00_0000,
            size: 0x0120_0000,
        },
        MemType::Device,
    ),
];
pub const BOOT_RAM: Region = Region { base: 0, size: 0x3f00_0000 };

fn bcm(p: &mut Platform) {
    p.bcm_local = Some(Region {
        base: 0x4000_0000,
        size: 0x100,
    });
    p.bcm_armctrl = Some(Region {
        base: 0x3f00_b200,
        size: 0x200,
    });
}

/// The BCM2837 layout; 1 GiB minus the GPU's default 64 MiB; the firmware's spin table
/// lives in the first page. UART0 runs from a 48 MHz clock set by the firmware.
pub const DEFAULTS: Defaults = Defaults {
    memory: Region { base: 0, size: 0x3c00_0000 },
    reserved: &[Region { base: 0, size: 0x1000 }],
    uart: Region {
        base: 0x3f20_1000,
        size: 0x1000,
    },
    uart_irq: ("brcm,bcm2836-armctrl-ic", &[2, 25]),
    uart_clock_hz: 48_000_000,
    interrupt_controller: bcm,
    timer_irq: ("brcm,bcm2836-l1-intc", &[1, 4]),
    counter_hz: 19_200_000,
};
