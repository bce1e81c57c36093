//! Ending a run: semihosting `SYS_EXIT` when QEMU has semihosting, PSCI `SYSTEM_OFF`
//! otherwise, and a halted core if neither exists.

use crate::arch::{cpu, psci, semihosting};
use core::sync::atomic::{AtomicU8, Ordering};

/// Exit status of a run that ended in a kernel fault.
pub const FAULT_EXIT_STATUS: u32 = 3;

static PSCI: AtomicU8 = AtomicU8::new(0);

pub fn set_psci(conduit: Option<psci::Conduit>) {
    let v = match conduit {
        None => 0,
        Some(psci::Conduit::Hvc) => 1,
        Some(psci::Conduit::Smc) => 2,
    };
    PSCI.store(v, Ordering::Relaxed);
}

/// Powers off with `status` (0 = success). Never returns.
pub fn exit(status: u32) -> ! {
    let _ = cpu::irq_save();
    crate::kprintln!("QvQ: power off (status {status})");
    crate::log::flush();
    semihosting::exit(status);
    match PSCI.load(Ordering::Relaxed) {
        1 => psci::system_off(psci::Conduit::Hvc),
        2 => psci::system_off(psci::Conduit::Smc),
        _ => {}
    }
    crate::kprintln!("QvQ: no way to power off here; halted");
    cpu::halt()
}
