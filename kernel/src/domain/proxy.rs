//! The proxy's hot data: fixed tables read without taking the manager's lock. Entries are
//! written only by the manager (under its lock) when a slot is created or a domain changes
//! state; the call path only reads them.
//!
//! Calls in flight into a domain are not counted here: they are exactly the live
//! continuations into it (`super::calls_in_flight`), which costs the call path nothing.
//! `calls_served` is a statistic bumped without masking interrupts: if a thread is
//! preempted between its load and store by another caller of the same domain, one call
//! goes uncounted.

use super::DomainId;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use interfaces::RpcError;

pub const MAX_SLOTS: usize = 256;
pub const MAX_DOMAINS: usize = 64;

struct Slot {
    owner: AtomicU32,
    callee: AtomicU32,
    table: AtomicUsize,
    state: AtomicUsize,
}

const EMPTY: u32 = u32::MAX;

static SLOTS: [Slot; MAX_SLOTS] = [const { Slot { owner: AtomicU32::new(EMPTY), callee: AtomicU32::new(EMPTY), table: AtomicUsize::new(0), state: AtomicUsize::new(0) } }; MAX_SLOTS];
static RUNNING: [AtomicU8; MAX_DOMAINS] = [const { AtomicU8::new(0) }; MAX_DOMAINS];
static CALLS_SERVED: [AtomicU64; MAX_DOMAINS] = [const { AtomicU64::new(0) }; MAX_DOMAINS];

/// Fills slot `index` (manager only).
pub fn set_slot(index: usize, owner: DomainId, callee: DomainId, table: usize, state: usize) -> bool {
    let Some(s) = SLOTS.get(index) else { return false };
    s.table.store(table, Relaxed);
    s.state.store(state, Relaxed);
    s.callee.store(callee, Relaxed);
    s.owner.store(owner, Relaxed);
    true
}

/// Whether calls into `d` are accepted (manager only).
pub fn set_running(d: DomainId, running: bool) {
    if let Some(r) = RUNNING.get(d as usize) {
        r.store(running as u8, Relaxed);
    }
}

pub fn calls_served(d: DomainId) -> u64 {
    CALLS_SERVED.get(d as usize).map_or(0, |c| c.load(Relaxed))
}

/// The proxy's checks: the slot belongs to `caller`, the callee runs. Counts the call.
#[inline(always)]
pub fn enter(caller: DomainId, slot: u32) -> Result<(DomainId, usize, usize), RpcError> {
    let s = SLOTS.get(slot as usize).ok_or(RpcError::NotAllowed)?;
    if s.owner.load(Relaxed) != caller {
        return Err(RpcError::NotAllowed);
    }
    let callee = s.callee.load(Relaxed);
    let counter = CALLS_SERVED.get(callee as usize).ok_or(RpcError::Unavailable)?;
    if RUNNING[callee as usize].load(Relaxed) == 0 {
        return Err(RpcError::Unavailable);
    }
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
    Ok((callee, s.table.load(Relaxed), s.state.load(Relaxed)))
}
