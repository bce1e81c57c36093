//! The proxy's slot table, read by the trampoline in continuation.s without any lock.
//! Entries are written only by the manager (under its lock): when a domain imports an
//! interface, and when a callee stops (then its slots go dead, so calls fail at once).
//!
//! Calls in flight into a domain are not counted on the call path: they are exactly the
//! live continuations into it. `calls` is a statistic bumped without masking interrupts:
//! if a caller is preempted between its load and store by another caller of the same slot,
//! one call goes uncounted.

use super::DomainId;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

pub const MAX_SLOTS: usize = 256;

/// Layout shared with continuation.s.
#[repr(C, align(64))]
pub struct Slot {
    table: AtomicUsize,
    state: AtomicUsize,
    /// Who may call through the slot now: `owner` while the callee runs, else NOBODY.
    caller: AtomicU32,
    owner: AtomicU32,
    callee: AtomicU32,
    _pad: u32,
    calls: AtomicU64,
}

const NOBODY: u32 = u32::MAX;

#[no_mangle]
static QVQ_SLOTS: [Slot; MAX_SLOTS] = [const {
    Slot {
        table: AtomicUsize::new(0),
        state: AtomicUsize::new(0),
        caller: AtomicU32::new(NOBODY),
        owner: AtomicU32::new(NOBODY),
        callee: AtomicU32::new(NOBODY),
        _pad: 0,
        calls: AtomicU64::new(0),
    }
}; MAX_SLOTS];

/// Fills slot `index` (manager only).
pub fn set_slot(index: usize, owner: DomainId, callee: DomainId, table: usize, state: usize) -> bool {
    let Some(s) = QVQ_SLOTS.get(index) else { return false };
    s.table.store(table, Relaxed);
    s.state.store(state, Relaxed);
    s.callee.store(callee, Relaxed);
    s.owner.store(owner, Relaxed);
    s.caller.store(owner, Relaxed);
    true
}

/// Makes every slot into `callee` accept (or refuse) calls (manager only).
pub fn set_callee_live(callee: DomainId, live: bool) {
    for s in QVQ_SLOTS.iter().filter(|s| s.callee.load(Relaxed) == callee) {
        s.caller.store(if live { s.owner.load(Relaxed) } else { NOBODY }, Relaxed);
    }
}

/// Calls served by `d` through its slots.
pub fn calls_served(d: DomainId) -> u64 {
    QVQ_SLOTS.iter().filter(|s| s.callee.load(Relaxed) == d).map(|s| s.calls.load(Relaxed)).sum()
}
