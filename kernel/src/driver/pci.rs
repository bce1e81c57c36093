//! Just enough PCI for the virt board's second serial port: scan bus 0 of a generic ECAM
//! host bridge for a device, give its first BAR an address in the bridge's I/O window and
//! turn I/O decoding on. (QEMU's firmware-less boot leaves BARs unassigned.)

use crate::memory::Region;

const VENDOR_DEVICE: usize = 0x00;
const COMMAND: usize = 0x04;
const BAR0: usize = 0x10;
/// Interrupt line (bits 0-7) and pin (bits 8-15).
const INTERRUPT: usize = 0x3c;
const COMMAND_IO_SPACE: u32 = 1 << 0;
const BAR_IS_IO: u32 = 1 << 0;
/// Where in the I/O window the device's registers go (clear of legacy port numbers).
const IO_OFFSET: usize = 0x1000;

fn config(ecam: usize, device: usize) -> usize {
    ecam + (device << 15)
}

fn read32(at: usize) -> u32 {
    // SAFETY: `at` is inside bus 0's configuration space, which the caller mapped.
    unsafe { core::ptr::read_volatile(at as *const u32) }
}

fn write32(at: usize, v: u32) {
    // SAFETY: as in `read32`.
    unsafe { core::ptr::write_volatile(at as *mut u32, v) }
}

/// Finds `vendor:device` on bus 0 of the ECAM at `ecam` (bus 0 mapped: 1 MiB) and maps its
/// BAR 0, which must be an I/O BAR, into `io_window`. Returns the CPU address of its
/// registers, its slot and its interrupt pin (1 = INTA .. 4 = INTD, 0 = none).
pub fn enable_io_device(ecam: Region, io_window: Region, vendor: u16, device: u16) -> Option<(usize, u32, u32)> {
    let wanted = ((device as u32) << 16) | vendor as u32;
    let slot = (0..32).find(|d| read32(config(ecam.base, *d) + VENDOR_DEVICE) == wanted)?;
    let cfg = config(ecam.base, slot);
    if read32(cfg + BAR0) & BAR_IS_IO == 0 || io_window.size < IO_OFFSET + 0x100 {
        return None;
    }
    write32(cfg + BAR0, IO_OFFSET as u32 | BAR_IS_IO);
    write32(cfg + COMMAND, read32(cfg + COMMAND) | COMMAND_IO_SPACE);
    let pin = (read32(cfg + INTERRUPT) >> 8) & 0xff;
    Some((io_window.base + IO_OFFSET, slot as u32, pin))
}
