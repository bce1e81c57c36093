//! The shared heap: `RRef` blocks, each recorded with the domain that owns it. Blocks come
//! from the kernel heap; the registry frees a dead domain's blocks.

use super::DomainId;
use crate::sync::IrqLock;
use alloc::collections::BTreeMap;
use core::alloc::Layout;

struct Block {
    owner: DomainId,
    layout: Layout,
}

static REGISTRY: IrqLock<BTreeMap<usize, Block>> = IrqLock::new("shared heap", BTreeMap::new());

/// Upper bound on one block (a safety net against a confused caller).
const MAX_BLOCK: usize = 1 << 20;

pub fn alloc(owner: DomainId, size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(size.max(1), align.max(1)) else {
        return core::ptr::null_mut();
    };
    if layout.size() > MAX_BLOCK {
        return core::ptr::null_mut();
    }
    // SAFETY: non-zero size.
    let p = unsafe { alloc::alloc::alloc(layout) };
    if !p.is_null() {
        REGISTRY.lock().insert(p as usize, Block { owner, layout });
    }
    p
}

/// Frees a block its owner drops. Refuses (and reports) anything else.
pub fn free(by: DomainId, p: *mut u8) -> bool {
    let mut reg = REGISTRY.lock();
    match reg.get(&(p as usize)) {
        Some(b) if b.owner == by => {
            let layout = b.layout;
            reg.remove(&(p as usize));
            drop(reg);
            // SAFETY: allocated by `alloc` with this layout, and now unregistered.
            unsafe { alloc::alloc::dealloc(p, layout) };
            true
        }
        _ => false,
    }
}

/// Frees every block `d` owns (it died); returns (blocks, bytes).
pub fn free_all_owned_by(d: DomainId) -> (usize, usize) {
    let owned: alloc::vec::Vec<(usize, Layout)> = {
        let mut reg = REGISTRY.lock();
        let v: alloc::vec::Vec<(usize, Layout)> = reg.iter().filter(|(_, b)| b.owner == d).map(|(p, b)| (*p, b.layout)).collect();
        for (p, _) in &v {
            reg.remove(p);
        }
        v
    };
    let bytes = owned.iter().map(|(_, l)| l.size()).sum();
    for (p, layout) in &owned {
        // SAFETY: allocated by `alloc` with this layout and now unregistered; its owner is
        // dead, so nothing uses it.
        unsafe { alloc::alloc::dealloc(*p as *mut u8, *layout) };
    }
    (owned.len(), bytes)
}

/// (blocks, bytes) owned by `d`.
pub fn owned_by(d: DomainId) -> (usize, usize) {
    let reg = REGISTRY.lock();
    reg.values().filter(|b| b.owner == d).fold((0, 0), |(n, s), b| (n + 1, s + b.layout.size()))
}

/// Bytes on the shared heap, whoever owns them.
#[cfg_attr(not(feature = "selftest"), allow(dead_code))] // used by the selftests
pub fn total_bytes() -> usize {
    REGISTRY.lock().values().map(|b| b.layout.size()).sum()
}

/// Records `to` as the owner of `p` (a proxy moved it).
pub fn claim(to: DomainId, p: *mut u8) -> bool {
    match REGISTRY.lock().get_mut(&(p as usize)) {
        Some(b) => {
            b.owner = to;
            true
        }
        None => false,
    }
}

/// The size of block `p`, if it is on the shared heap.
pub fn size_of(p: *mut u8) -> Option<usize> {
    REGISTRY.lock().get(&(p as usize)).map(|b| b.layout.size())
}
