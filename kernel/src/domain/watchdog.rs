//! The CPU-budget watchdog: a call into a domain that runs past its budget is taken back
//! at the timer tick (the domain it entered crashes). It costs the call path one store:
//! every tick charges the interrupted thread's live calls (the continuation frames on its
//! chain), so a call's time includes what it calls and the kernel services it uses, and a
//! call cannot hide from the budget by calling out or logging in a loop.

use super::continuation::charge_tick;
use super::DomainId;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Ticks a call may run before the watchdog ends it (100 ms at 100 Hz).
pub const CALL_BUDGET_TICKS: u32 = 10;
/// The domain to crash at the end of this interrupt, plus one (0: none).
static FIRED: AtomicU32 = AtomicU32::new(0);

/// From the timer tick, for the interrupted thread: charges its calls; flags the innermost
/// one past the budget for `fired`.
pub fn tick() {
    if let Some(d) = charge_tick(CALL_BUDGET_TICKS as u64) {
        FIRED.store(d + 1, Relaxed);
    }
    check_kernel_calls();
}

/// The domain (once) whose call the watchdog flagged on the interrupted thread.
pub fn fired() -> Option<DomainId> {
    // Plain load and store: called from the IRQ path with interrupts masked.
    let fired = FIRED.load(Relaxed);
    FIRED.store(0, Relaxed);
    fired.checked_sub(1)
}

/// How long the kernel's own calls into a domain (its initialisation, its state hooks) may
/// take in all, blocked or running: an `init` that waits forever would otherwise hold boot,
/// and a state hook a hot swap's window.
pub const KERNEL_CALL_LIMIT_MS: u64 = 2000;

/// The kernel's calls into domains now in progress: (thread, domain, deadline in ns,
/// expired). A fixed table: no allocation on the tick.
type KernelCall = (crate::sched::ThreadId, DomainId, u64, bool);
static KERNEL_CALLS: crate::sync::IrqLock<[Option<KernelCall>; 8]> = crate::sync::IrqLock::new("kernel calls", [None; 8]);

/// Starts the clock on the running thread's call into `d`; returns its table entry (`None`
/// if the table is full: the call then runs without a time limit, under the CPU budget).
pub fn kernel_call_begins(d: DomainId) -> Option<usize> {
    let thread = crate::sched::current()?;
    let deadline = crate::time::uptime_ns().saturating_add(KERNEL_CALL_LIMIT_MS * 1_000_000);
    let mut calls = KERNEL_CALLS.lock();
    let i = calls.iter().position(Option::is_none)?;
    calls[i] = Some((thread, d, deadline, false));
    Some(i)
}

pub fn kernel_call_ends(entry: Option<usize>) {
    if let Some(i) = entry {
        KERNEL_CALLS.lock()[i] = None;
    }
}

/// From the tick: marks the kernel calls past their deadline.
pub fn check_kernel_calls() {
    let now = crate::time::uptime_ns();
    for call in KERNEL_CALLS.lock().iter_mut().flatten() {
        if now > call.2 {
            call.3 = true;
        }
    }
}

/// A kernel call past its deadline, taken out of the table: (its thread, its domain).
pub fn overdue_kernel_call() -> Option<(crate::sched::ThreadId, DomainId)> {
    let mut calls = KERNEL_CALLS.lock();
    let slot = calls.iter_mut().find(|c| c.is_some_and(|c| c.3))?;
    slot.take().map(|c| (c.0, c.1))
}
