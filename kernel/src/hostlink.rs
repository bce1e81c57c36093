//! The host link: a second serial port that `cargo xtask run` connects to a local socket,
//! over which `cargo xtask swap` pushes new domain versions (protocol: pushlink/PROTOCOL.md).
//! Found through the device tree: the mini UART on the Raspberry Pi 3, QEMU's `pci-serial`
//! (PCI 1b36:0002) behind the generic ECAM host bridge on virt. Polled.

use crate::driver::SerialPort;
use crate::memory::Region;
use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;

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

/// A transfer's rate, for the log: uptime, and the guest's busy time (PMU cycles less the
/// idle thread's; under QEMU `-icount shift=0` that is guest instructions, 1 ns each).
#[derive(Clone, Copy)]
pub struct Rate {
    ns: u64,
    busy: u64,
}

impl Rate {
    pub fn now() -> Rate {
        Rate {
            ns: crate::time::uptime_ns(),
            busy: crate::arch::pmu::cycles().wrapping_sub(crate::sched::idle_cycles()),
        }
    }

    /// `received at B bytes/s (N instructions per KiB)`: what `cargo xtask bench` reads.
    pub fn since(self, bytes: usize) -> impl fmt::Display {
        let now = Rate::now();
        let ns = now.ns.saturating_sub(self.ns).max(1);
        let busy = now.busy.wrapping_sub(self.busy);
        let per_kib = busy.saturating_mul(1024) / (bytes as u64).max(1);
        let rate = (bytes as u64).saturating_mul(1_000_000_000) / ns;
        ShowRate(rate, per_kib, ns / 1_000_000)
    }
}

struct ShowRate(u64, u64, u64);

impl fmt::Display for ShowRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in {} ms, {} bytes/s; {} guest instructions per KiB", self.2, self.0, self.1)
    }
}
