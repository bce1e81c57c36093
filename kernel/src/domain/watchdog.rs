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
}

/// The domain (once) whose call the watchdog flagged on the interrupted thread.
pub fn fired() -> Option<DomainId> {
    // Plain load and store: called from the IRQ path with interrupts masked.
    let fired = FIRED.load(Relaxed);
    FIRED.store(0, Relaxed);
    fired.checked_sub(1)
}
