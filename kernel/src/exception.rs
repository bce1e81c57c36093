//! What the kernel does with an exception it cannot handle: a decoded report, then power off
//! with a non-zero status. Never a silent hang.

use crate::arch::exception::{Kind, Syndrome, TrapFrame};

/// Exit status of a run that ended in a kernel fault.
pub const FAULT_EXIT_STATUS: u32 = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Taken while a kernel thread ran.
    Thread,
    /// Taken on the exception stack: boot code or inside a handler.
    Kernel,
}

/// Why domain code faulted, for the "domain NAME crashed: CAUSE" line.
pub fn domain_fault_cause(frame: &TrapFrame, syn: &Syndrome) -> alloc::string::String {
    if syn.is_abort() {
        if crate::memory::guard_page_owner(syn.far as usize).is_some() {
            return alloc::format!("stack overflow (hit the guard page at {:#x})", syn.far);
        }
        let fsc = (syn.esr & 0x3f) >> 2;
        if fsc == 0b0011 {
            return alloc::format!("W^X violation: {syn} at {:#x} (ELR {:#x})", syn.far, frame.elr);
        }
        return alloc::format!("{syn} at {:#x} (ELR {:#x})", syn.far, frame.elr);
    }
    alloc::format!("{syn} at ELR {:#x}", frame.elr)
}

pub fn fatal(frame: &TrapFrame, kind: Kind, syn: Option<Syndrome>, origin: Origin) -> ! {
    let _ = crate::arch::cpu::irq_save();
    // The console lock may be held by whatever faulted; the report must still get out.
    crate::console::force_unlock();
    let who = match origin {
        Origin::Thread => crate::sched::describe_current(),
        Origin::Kernel => crate::sched::Description::boot_or_handler(),
    };
    crate::kprintln!("");
    match syn {
        Some(syn) => crate::kprintln!("KERNEL FAULT: {syn} in {who}"),
        None => crate::kprintln!("KERNEL FAULT: unexpected {kind:?} exception in {who}"),
    }
    if let Some(syn) = syn {
        crate::kprintln!("  ESR {:#018x}  FAR {:#018x}", syn.esr, syn.far);
        if syn.is_abort() {
            if let Some(owner) = crate::memory::guard_page_owner(syn.far as usize) {
                crate::kprintln!("  FAR is in the guard page of {owner}: stack overflow");
            }
        }
    }
    crate::kprintln!("  ELR {:#018x}  SPSR {:#018x}  SP {:#018x}", frame.elr, frame.spsr, frame.sp);
    for row in 0..8 {
        let mut line = [0u64; 4];
        let n = if row == 7 { 3 } else { 4 };
        line[..n].copy_from_slice(&frame.x[row * 4..row * 4 + n]);
        crate::kprint!(" ");
        for (i, v) in line[..n].iter().enumerate() {
            crate::kprint!(" x{:<2} {:#018x}", row * 4 + i, v);
        }
        crate::kprintln!("");
    }
    crate::power::exit(FAULT_EXIT_STATUS)
}
