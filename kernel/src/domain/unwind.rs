//! Unwinding: a thread leaves a crashed (or swapped-out) domain by resuming the innermost
//! continuation into it, so the call that entered it returns an error to the caller's
//! proxy. Nothing of the domain's frames runs again, no destructors included.

use super::continuation::{self, take_innermost_into};
use super::registry::is_dead;
use super::{recovery, DomainId, KERNEL};
use crate::arch::exception::TrapFrame;
use crate::sched::call_context;
use interfaces::RpcError;

/// Unwinds the current thread to the innermost call into `domain`, making it return
/// `code`. Must be called with no kernel lock held.
pub fn unwind(domain: DomainId, code: u32) -> ! {
    match take_innermost_into(domain, code) {
        // SAFETY: a live continuation of this thread, just unlinked; everything between it
        // and here belongs to the domain being left.
        Some(c) => unsafe { continuation::resume(c, code) },
        None => {
            crate::warn!("domain {domain}: no call to unwind to; ending the thread");
            crate::sched::exit()
        }
    }
}

/// Makes the trap return into the innermost continuation into `domain` instead of where
/// it was taken. False if the thread never entered `domain`.
fn redirect(frame: &mut TrapFrame, domain: DomainId, code: u32) -> bool {
    let Some(c) = take_innermost_into(domain, code) else { return false };
    frame.elr = continuation::resume_address();
    frame.x[0] = c as u64;
    frame.x[1] = code as u64;
    // EL1t with interrupts masked; the resume path re-enables them.
    frame.spsr = crate::arch::exception::SPSR_EL1T_IRQS_ON | (0b11 << 6);
    true
}

/// A synchronous exception caught domain code: the current domain crashed. Returns false
/// (a kernel fault) if the kernel itself was running.
pub fn crash_in_trap(frame: &mut TrapFrame, cause: &str) -> bool {
    crash_domain_in_trap(frame, call_context::current_domain(), cause)
}

/// The watchdog (or a fault) caught a call into `d` on the interrupted thread: `d` crashed,
/// and the thread resumes at its innermost call into `d`. False for the kernel.
pub fn crash_domain_in_trap(frame: &mut TrapFrame, d: DomainId, cause: &str) -> bool {
    if d == KERNEL {
        return false;
    }
    recovery::crashed(d, cause);
    crate::log::writer_abandoned();
    redirect(frame, d, RpcError::Crashed as u32)
}

/// From the trap path: crashes the domains whose kernel calls (init, state hooks) ran past
/// their time limit, and wakes the threads waiting in them (they are unwound when they
/// run, like any thread inside a dead domain).
pub fn end_overdue_kernel_calls() {
    while let Some((thread, d)) = super::watchdog::overdue_kernel_call() {
        let cause = alloc::format!(
            "the kernel's call into it (its initialisation or a state hook) did not return within {} ms",
            super::watchdog::KERNEL_CALL_LIMIT_MS
        );
        recovery::crashed(d, &cause);
        crate::log::writer_abandoned();
        crate::sched::wake(thread);
    }
}

/// On every return to a thread: a thread about to run code of a dead domain (it was
/// preempted or blocked inside it) is unwound to its call into that domain instead; a
/// thread caught between the trampoline's slot check and its switch into the callee starts
/// the call over, so it never acts on a slot that changed meanwhile (a crash, a swap).
pub fn before_resume(frame: &mut TrapFrame) {
    let (start, frame_pushed, entered) = continuation::trampoline_window();
    if (start..entered).contains(&frame.elr) {
        if frame.elr > frame_pushed {
            frame.sp += continuation::FRAME_SIZE; // pop the unfinished frame
        }
        frame.elr = start;
        return;
    }
    let d = call_context::current_domain();
    if d != KERNEL && is_dead(d) {
        redirect(frame, d, RpcError::Crashed as u32);
    }
}
