//! Per-domain quotas, from the signed manifest (`shared_heap_limit`, `max_threads`,
//! `max_events`, `stack_size`; the loader enforces their bounds): set when an instance is made, read
//! lock-free where a domain asks for the resource.

use super::registry::MAX_DOMAINS;
use super::DomainId;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use loader::manifest::Manifest;

struct Quotas {
    shared_heap: [AtomicU32; MAX_DOMAINS],
    threads: [AtomicU32; MAX_DOMAINS],
    events: [AtomicU32; MAX_DOMAINS],
    stack: [AtomicU32; MAX_DOMAINS],
}

static QUOTAS: Quotas = Quotas {
    shared_heap: [const { AtomicU32::new(0) }; MAX_DOMAINS],
    threads: [const { AtomicU32::new(0) }; MAX_DOMAINS],
    events: [const { AtomicU32::new(0) }; MAX_DOMAINS],
    stack: [const { AtomicU32::new(0) }; MAX_DOMAINS],
};

/// Domain `d` runs with `m`'s quotas from now on.
pub fn set(d: DomainId, m: &Manifest) {
    let i = d as usize;
    if i < MAX_DOMAINS {
        QUOTAS.shared_heap[i].store(m.shared_heap_limit, Relaxed);
        QUOTAS.threads[i].store(m.max_threads, Relaxed);
        QUOTAS.events[i].store(m.max_events, Relaxed);
        QUOTAS.stack[i].store(m.stack_size, Relaxed);
        super::rref::refresh_limit(d);
    }
}

fn get(list: &[AtomicU32; MAX_DOMAINS], d: DomainId) -> usize {
    list.get(d as usize).map_or(0, |q| q.load(Relaxed) as usize)
}

/// Shared-heap bytes (as the registry charges them) `d` may own.
pub fn shared_heap(d: DomainId) -> usize {
    get(&QUOTAS.shared_heap, d)
}

/// Threads `d` may have at once.
pub fn threads(d: DomainId) -> usize {
    get(&QUOTAS.threads, d)
}

/// Bytes of stack each thread `d` spawns asks for (its manifest's `stack_size`; calls it
/// makes run on this stack, nested calls included). `services::spawn` keeps it between
/// 16 and 64 KiB.
pub fn stack(d: DomainId) -> usize {
    get(&QUOTAS.stack, d)
}

/// Events `d` may own.
pub fn events(d: DomainId) -> usize {
    get(&QUOTAS.events, d)
}
