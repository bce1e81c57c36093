//! The host link: a second serial port that `cargo xtask run` connects to a local socket,
//! over which `cargo xtask swap` pushes new domain versions (protocol: pushlink/PROTOCOL.md).
//! Found through the device tree: the mini UART on the Raspberry Pi 3, QEMU's `pci-serial`
//! (PCI 1b36:0002) behind the generic ECAM host bridge on virt. Interrupt-driven: the
//! receiver thread sleeps until the port's receive interrupt says bytes wait (the handler
//! masks it and wakes the thread, which drains the FIFO and unmasks it before sleeping
//! again); polled only if the device tree gives no interrupt.

use crate::driver::SerialPort;
use crate::irq::{Handler, IrqSpec};
use crate::memory::Region;
use crate::sched::ThreadId;
use crate::sync::IrqLock;
use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// QEMU's PCI 16550 (`-device pci-serial`).
const PCI_SERIAL: (u16, u16) = (0x1b36, 0x0002);
/// Bus 0's configuration space: 32 devices x 8 functions x 4 KiB.
const ECAM_BUS0: usize = 1 << 20;

/// The port, its interrupt, and a description for the log. `None` if the board has none.
fn find() -> Option<(&'static dyn SerialPort, Option<IrqSpec>, String)> {
    if let Some(dev) = crate::devicetree::find_device("brcm,bcm2835-aux-uart") {
        crate::memory::map_device(dev.reg).ok()?;
        crate::driver::kept::keep(dev.reg, "the host link");
        // SAFETY: the device tree's mini UART, just mapped; only the host link drives it.
        let port = unsafe { crate::driver::bcm2835_aux::MiniUart::new(dev.reg.base) };
        return Some((Box::leak(Box::new(port)), dev.irq, alloc::format!("mini UART at {:#x}", dev.reg.base)));
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
    let (base, slot, pin) = crate::driver::pci::enable_io_device(bus0, io, PCI_SERIAL.0, PCI_SERIAL.1)?;
    let irq = (pin != 0).then(|| crate::devicetree::pci_intx(slot, pin)).flatten();
    // SAFETY: the 16550's registers sit where its BAR was just put, inside the mapped I/O
    // window; only the host link drives it.
    let port = unsafe { crate::driver::ns16550::Ns16550::new(base) };
    Some((Box::leak(Box::new(port)), irq, alloc::format!("PCI 16550 at {base:#x}")))
}

/// The port and the thread that waits for its interrupt, for the handler.
static RECEIVER: IrqLock<Option<(&'static dyn SerialPort, ThreadId)>> = IrqLock::new("host link", None);
/// Set by the handler, cleared by `Port::wait`: bytes wait.
static RAISED: AtomicBool = AtomicBool::new(false);

fn on_interrupt(_: crate::irq::IrqNumber, _: usize) {
    if let Some((port, thread)) = *RECEIVER.lock() {
        // Masked until the thread has drained the FIFO: a level interrupt would fire again.
        port.set_rx_interrupt(false);
        RAISED.store(true, Ordering::Release);
        crate::sched::wake(thread);
    }
}

/// Set once the port's interrupt is registered: `Port::wait` sleeps until it fires.
static INTERRUPTS: AtomicBool = AtomicBool::new(false);

/// The host link as its receiver thread uses it.
#[derive(Clone, Copy)]
pub struct Port {
    pub serial: &'static dyn SerialPort,
    irq: Option<crate::irq::IrqNumber>,
}

impl Port {
    /// The board's host link, if any, and a description for the log.
    pub fn find() -> Option<(Port, String)> {
        let (serial, spec, what) = find()?;
        let irq = spec.as_ref().and_then(crate::irq::translate);
        Some((Port { serial, irq }, what))
    }

    /// Routes the port's receive interrupt to waking `thread`; how it is read, for the log.
    pub fn listen(&self, thread: ThreadId) -> &'static str {
        let Some(irq) = self.irq else {
            return "polled: the device tree gives it no interrupt";
        };
        *RECEIVER.lock() = Some((self.serial, thread));
        let handler = Handler {
            name: "host link",
            func: on_interrupt,
            context: 0,
            owner: 0,
            handover: false,
        };
        match crate::irq::register(irq, handler) {
            Ok(()) => {
                INTERRUPTS.store(true, Ordering::Release);
                "interrupt-driven"
            }
            Err(e) => {
                crate::warn!("push: host link interrupt {irq}: {e}; polling the port");
                "polled"
            }
        }
    }

    /// Returns when bytes may wait, or after about `ms` (for the idle check). Polled,
    /// `busy` (a transfer runs) gives other threads a turn and returns.
    pub fn wait(&self, busy: bool, ms: u64) {
        if !INTERRUPTS.load(Ordering::Acquire) {
            return if busy { crate::sched::yield_now() } else { crate::sched::sleep_ms(10) };
        }
        // Masked from the unmask to the sleep, so the interrupt cannot come in between
        // and find the thread not yet asleep; it is taken once another thread runs.
        let saved = crate::arch::cpu::irq_save();
        self.serial.set_rx_interrupt(true);
        if !RAISED.swap(false, Ordering::Acquire) {
            crate::sched::sleep_ms(ms);
        }
        crate::arch::cpu::irq_restore(saved);
        RAISED.store(false, Ordering::Release);
    }
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
