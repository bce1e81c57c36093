//! The host link: a second serial port that `cargo xtask run` connects to a local socket,
//! over which `cargo xtask swap` pushes new domain versions (protocol: pushlink/PROTOCOL.md).
//! Found through the device tree: the mini UART on the Raspberry Pi 3, QEMU's `pci-serial`
//! (PCI 1b36:0002) behind the generic ECAM host bridge on virt. Polled.

use crate::driver::SerialPort;
use crate::memory::Region;
use alloc::boxed::Box;
use alloc::string::String;

/// QEMU's PCI 16550 (`-device pci-serial`).
const PCI_SERIAL: (u16, u16) = (0x1b36, 0x0002);
/// Bus 0's configuration space: 32 devices x 8 functions x 4 KiB.
const ECAM_BUS0: usize = 1 << 20;

/// The port, and a description for the log. `None` if the board has none.
pub fn find() -> Option<(&'static dyn SerialPort, String)> {
    if let Some(dev) = crate::devicetree::find_device("brcm,bcm2835-aux-uart") {
        crate::memory::map_device(dev.reg).ok()?;
        crate::driver::kept::keep(dev.reg, "the host link");
        // SAFETY: the device tree's mini UART, just mapped; only the host link drives it.
        let port = unsafe { crate::driver::bcm2835_aux::MiniUart::new(dev.reg.base) };
        return Some((Box::leak(Box::new(port)), alloc::format!("mini UART at {:#x}", dev.reg.base)));
    }
    let (ecam, io) = crate::devicetree::pci_host()?;
    crate::driver::kept::keep(ecam, "the PCI host bridge");
    crate::driver::kept::keep(io, "the PCI host bridge");
    let bus0 = Region {
        base: ecam.base,
        size: ecam.size.min(ECAM_BUS0),
    };
    crate::memory::map_device(bus0).ok()?;
    crate::memory::map_device(io).ok()?;
    let base = crate::driver::pci::enable_io_device(bus0, io, PCI_SERIAL.0, PCI_SERIAL.1)?;
    // SAFETY: the 16550's registers sit where its BAR was just put, inside the mapped I/O
    // window; only the host link drives it.
    let port = unsafe { crate::driver::ns16550::Ns16550::new(base) };
    Some((Box::leak(Box::new(port)), alloc::format!("PCI 16550 at {base:#x}")))
}
