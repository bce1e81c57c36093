//! Exceptions: where every trap the vectors (arch/aarch64/vectors.s) take is dispatched
//! (interrupts, system calls, faults in domain code), and what the kernel does with one it
//! cannot handle: a decoded report, then power off with a non-zero status. Never a silent
//! hang.

use crate::arch::exception::{Kind, Syndrome, TrapFrame};

pub use crate::power::FAULT_EXIT_STATUS;

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
        if guard_page_owner(syn.far as usize).is_some() {
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

/// Whose guard page holds `addr`, if any: a kernel stack's or a thread's.
fn guard_page_owner(addr: usize) -> Option<alloc::string::String> {
    match crate::memory::kernel_stack_guard_owner(addr) {
        Some(owner) => Some(owner.into()),
        None => crate::sched::guard_page_owner(addr),
    }
}

pub fn fatal(frame: &TrapFrame, kind: Kind, syn: Option<Syndrome>, origin: Origin) -> ! {
    let _ = crate::arch::cpu::irq_save();
    // The console lock may be held by whatever faulted; the report must still get out.
    crate::log::force_unlock();
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
            if let Some(owner) = guard_page_owner(syn.far as usize) {
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

/// Exceptions taken from a kernel thread (EL1t). The frame may be replaced by another
/// thread's before return; that is a context switch.
#[no_mangle]
extern "C" fn trap_from_thread(frame: &mut TrapFrame, kind: u64) {
    match Kind::from_raw(kind) {
        Kind::Irq => {
            crate::irq::handle_interrupt();
            if let Some(d) = crate::domain::watchdog_fired() {
                let cause = alloc::format!(
                    "a call ran past its CPU budget ({} ms); taken back at the timer interrupt",
                    crate::domain::CALL_BUDGET_TICKS as u64 * 1000 / crate::time::TICK_HZ
                );
                crate::domain::crash_domain_in_trap(frame, d, &cause);
            }
            crate::domain::end_overdue_kernel_calls();
        }
        Kind::Sync => {
            let syn = Syndrome::read();
            if syn.class() == crate::arch::exception::EC_SVC64 {
                crate::sched::syscall(frame);
            } else if !crate::arch::exception::try_fixup(frame, &syn) && !crate::domain::crash_in_trap(frame, &domain_fault_cause(frame, &syn)) {
                fatal(frame, Kind::Sync, Some(syn), Origin::Thread);
            }
        }
        k => fatal(frame, k, None, Origin::Thread),
    }
    crate::sched::preempt_if_needed(frame);
    crate::domain::before_resume(frame);
}

/// Exceptions taken on the exception stack (boot code or a handler). Fatal unless fixed up.
#[no_mangle]
extern "C" fn trap_from_kernel(frame: &mut TrapFrame, kind: u64) {
    let kind = Kind::from_raw(kind);
    if kind == Kind::Sync {
        let syn = Syndrome::read();
        if crate::arch::exception::try_fixup(frame, &syn) {
            return;
        }
        fatal(frame, kind, Some(syn), Origin::Kernel);
    }
    fatal(frame, kind, None, Origin::Kernel);
}
