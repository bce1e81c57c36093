//! The CPU-budget watchdog: a call into a domain that runs past its budget is taken back
//! at the timer tick (its domain crashes). It costs the call path nothing: the tick looks at
//! the interrupted thread's innermost call and counts how long it has been the same one.

use super::continuation::innermost_call;
use super::registry::is_dead;
use super::{proxy, KERNEL};
use crate::sched::call_context;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Ticks a call may run before the watchdog ends it (100 ms at 100 Hz).
pub const CALL_BUDGET_TICKS: u32 = 10;
static FIRED: AtomicBool = AtomicBool::new(false);

/// From the timer tick, for the interrupted thread: counts how long the same call into a
/// domain has been running; past the budget, flags it for `fired`.
pub fn tick() {
    let ctx = call_context::live();
    let d = ctx.current.load(Relaxed);
    let call = if d != KERNEL && !is_dead(d) { innermost_call() } else { None };
    let Some(head) = call else {
        ctx.watch_ticks.store(0, Relaxed);
        return;
    };
    // The same call if neither the continuation nor the callee's call count changed.
    let calls = proxy::calls_served(d);
    if ctx.watch_cont.load(Relaxed) == head && ctx.watch_calls.load(Relaxed) == calls {
        let t = ctx.watch_ticks.load(Relaxed) + 1;
        ctx.watch_ticks.store(t, Relaxed);
        if t > CALL_BUDGET_TICKS {
            FIRED.store(true, Relaxed);
        }
    } else {
        ctx.watch_cont.store(head, Relaxed);
        ctx.watch_calls.store(calls, Relaxed);
        ctx.watch_ticks.store(1, Relaxed);
    }
}

/// True (once) if the watchdog flagged the interrupted thread's call.
pub fn fired() -> bool {
    // Plain load and store: called from the IRQ path with interrupts masked.
    let fired = FIRED.load(Relaxed);
    FIRED.store(false, Relaxed);
    fired
}
