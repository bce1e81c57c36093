//! Events: counters a domain makes, signals and waits on (its runtime's `Event`). Each
//! belongs to the domain that made it: only that domain may wait on or signal it, a domain
//! may own at most its manifest's `max_events` of them, and they are freed with the domain's
//! instance. A wait marked restartable (the call has had no effect yet) is also given up
//! when a hot swap drains the waiting domain, or when a domain further out on the call
//! chain died.

use super::{continuation, swap, DomainId};
use crate::sched::WaitQueue;
use crate::sync::IrqLock;
use alloc::boxed::Box;
use alloc::vec::Vec;

struct Event {
    owner: DomainId,
    count: u64,
    /// Boxed: waiters hold its address while the table moves.
    waiters: Box<WaitQueue>,
}

/// Event numbers index this table; a freed number is reused.
static EVENTS: IrqLock<Vec<Option<Event>>> = IrqLock::new("events", Vec::new());

/// The wait queue of event `e` if `d` owns it. The queue lives as long as the event, and
/// the event as long as its owner's instance; a thread waiting on it belongs to that
/// instance, so it is unwound (never touches the queue again) before the queue is freed.
fn queue_of(d: DomainId, e: u32) -> Option<&'static WaitQueue> {
    let events = EVENTS.lock();
    let ev = events.get(e as usize)?.as_ref().filter(|ev| ev.owner == d)?;
    let q: *const WaitQueue = &*ev.waiters;
    // SAFETY: the box is freed only by `free_owned_by(d)`, after `d` died and its waiters
    // were woken; every user of the reference is a thread of `d`, unwound before it runs
    // again (see above).
    Some(unsafe { &*q })
}

/// A new event of domain `owner`: its number, or `None` over the quota.
pub fn create(owner: DomainId) -> Option<u32> {
    let mut events = EVENTS.lock();
    // Room for the usual number of events at once from the start, so that the table does
    // not grow later, when crashes and restarts overlap (it would look like a leak).
    if events.capacity() == 0 {
        events.reserve(64);
    }
    if events.iter().flatten().filter(|e| e.owner == owner).count() >= super::quota::events(owner) {
        return None;
    }
    let ev = Event {
        owner,
        count: 0,
        waiters: Box::new(WaitQueue::new()),
    };
    match events.iter().position(Option::is_none) {
        Some(i) => {
            events[i] = Some(ev);
            Some(i as u32)
        }
        None => {
            events.push(Some(ev));
            Some((events.len() - 1) as u32)
        }
    }
}

/// How an event wait ended.
pub enum Waited {
    /// The event moved on to this count.
    Count(u64),
    /// A hot swap drains the waiting domain: make the call again on the new version.
    Reissue,
    /// The domain that made the call (further out on the chain) died: give up the call.
    CallerDied(DomainId),
    /// Not an event of the waiting domain.
    NotOwned,
}

/// Waits until event `e` of domain `d` moves past `seen`. With `restartable` the wait is
/// also given up when a hot swap drains `d` and the thread is in a call into it, or when a
/// domain that called it died (it would return into dead code).
pub fn wait(d: DomainId, e: u32, seen: u64, restartable: bool) -> Waited {
    let Some(q) = queue_of(d, e) else { return Waited::NotOwned };
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
        match EVENTS.lock().get(e as usize).and_then(Option::as_ref) {
            Some(x) if x.owner == d => (x.count != seen).then_some(Waited::Count(x.count)),
            _ => Some(Waited::NotOwned),
        }
    })
}

/// Signals event `e` of domain `d`. False if `d` does not own it.
pub fn signal(d: DomainId, e: u32) -> bool {
    {
        let mut events = EVENTS.lock();
        match events.get_mut(e as usize).and_then(Option::as_mut) {
            Some(ev) if ev.owner == d => ev.count += 1,
            _ => return false,
        }
    }
    if let Some(q) = queue_of(d, e) {
        q.wake_all();
    }
    true
}

/// Wakes event waiters, so that restartable waits look again at whether they must give
/// up: on the events `owner` made (a swap drains it: its calls are re-issued), or on every
/// event (`None`: a domain died, and waits for its calls, in any domain, end).
pub fn wake_waiters(owner: Option<DomainId>) {
    let events = EVENTS.lock();
    for ev in events.iter().flatten().filter(|e| owner.is_none_or(|o| e.owner == o)) {
        ev.waiters.wake_all();
    }
}

/// Frees the events of domain `d`, whose instance is gone: its waiters are woken first
/// (they are `d`'s threads, unwound before they run again). Returns how many.
pub fn free_owned_by(d: DomainId) -> usize {
    let freed: Vec<Event> = {
        let mut events = EVENTS.lock();
        events
            .iter_mut()
            .filter(|slot| slot.as_ref().is_some_and(|e| e.owner == d))
            .filter_map(Option::take)
            .collect()
    };
    for ev in &freed {
        ev.waiters.wake_all();
    }
    freed.len()
}
