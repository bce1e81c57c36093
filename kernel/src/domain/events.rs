//! Events: counters a domain makes, signals and waits on (its runtime's `Event`). A wait
//! marked restartable (the call has had no effect yet) is also given up when a hot swap
//! drains the waiting domain, or when a domain further out on the call chain died.

use super::{continuation, swap, DomainId};
use crate::sched::WaitQueue;
use crate::sync::IrqLock;
use alloc::boxed::Box;
use alloc::vec::Vec;

struct Event {
    owner: DomainId,
    count: u64,
    waiters: &'static WaitQueue,
}

static EVENTS: IrqLock<Vec<Event>> = IrqLock::new("events", Vec::new());

/// A new event of domain `owner`; returns its number.
pub fn create(owner: DomainId) -> u32 {
    let mut events = EVENTS.lock();
    events.push(Event {
        owner,
        count: 0,
        waiters: Box::leak(Box::new(WaitQueue::new())),
    });
    (events.len() - 1) as u32
}

/// How an event wait ended.
pub enum Waited {
    /// The event moved on to this count.
    Count(u64),
    /// A hot swap drains the waiting domain: make the call again on the new version.
    Reissue,
    /// The domain that made the call (further out on the chain) died: give up the call.
    CallerDied(DomainId),
}

/// Waits until event `e` moves past `seen`. With `restartable` the wait is also given up
/// when a hot swap drains `d` and the thread is in a call into it, or when a domain that
/// called it died (it would return into dead code).
pub fn wait(d: DomainId, e: u32, seen: u64, restartable: bool) -> Waited {
    let Some(q) = EVENTS.lock().get(e as usize).map(|x| x.waiters) else {
        return Waited::Count(seen);
    };
    let in_call = restartable && continuation::running_in_call_to(d);
    q.wait_until(|| {
        if restartable {
            if let Some(dead) = continuation::dead_caller_on_chain() {
                return Some(Waited::CallerDied(dead));
            }
            if in_call && swap::is_cancelling(d) {
                return Some(Waited::Reissue);
            }
        }
        EVENTS.lock().get(e as usize).and_then(|x| (x.count != seen).then_some(Waited::Count(x.count)))
    })
}

pub fn signal(e: u32) {
    let q = {
        let mut events = EVENTS.lock();
        let Some(ev) = events.get_mut(e as usize) else { return };
        ev.count += 1;
        ev.waiters
    };
    q.wake_all();
}

/// Wakes event waiters, so that restartable waits look again at whether they must give
/// up: on the events `owner` made (a swap drains it: its calls are re-issued), or on every
/// event (`None`: a domain died, and waits for its calls, in any domain, end).
pub fn wake_waiters(owner: Option<DomainId>) {
    let queues: Vec<&'static WaitQueue> = EVENTS.lock().iter().filter(|e| owner.is_none_or(|o| e.owner == o)).map(|e| e.waiters).collect();
    for q in queues {
        q.wake_all();
    }
}

/// Domain `d` was retired: its events belong to nobody now (its number may be reused).
pub fn disown(d: DomainId) {
    for e in EVENTS.lock().iter_mut().filter(|e| e.owner == d) {
        e.owner = DomainId::MAX;
    }
}
