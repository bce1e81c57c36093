//! The shared heap: `RRef` blocks, each recorded with the domain that owns it and, while it
//! moves through a call, the domain it was sent to. Blocks come from the kernel heap,
//! charged to their owner's quota (its manifest's `shared_heap_limit`); the registry frees a dead domain's blocks.
//!
//! Moving a block takes two steps: its owner *sends* it (as an argument through one of its
//! slots, to that slot's callee; or as the result of the call it serves, to that call's
//! caller), and the receiver *claims* it. A domain can claim only a block sent to it, and
//! free only a block it owns: naming another domain's block by its address gets nothing.

use super::DomainId;
use crate::sync::IrqLock;
use alloc::collections::BTreeMap;
use core::alloc::Layout;

struct Block {
    owner: DomainId,
    layout: Layout,
    /// Where it was sent, until the receiver claims it.
    sent: Option<Sent>,
}

/// Where a block in flight goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Through the owner's slot: to whichever domain the slot dispatches to when the call
    /// arrives (a hot swap may re-point the slot and re-issue the call in between).
    Slot(u32),
    /// Back to this caller, as the result of a call it made.
    Caller(DomainId),
}

impl Block {
    /// The domain the block is on its way to now, if it is in flight.
    fn receiver(&self) -> Option<DomainId> {
        match self.sent? {
            Sent::Slot(s) => super::proxy::callee_of(self.owner, s),
            Sent::Caller(c) => Some(c),
        }
    }
}

/// What a block costs its owner's quota: its size, at least 64 bytes, plus the registry's
/// own bookkeeping, so that many tiny blocks cannot exhaust the kernel heap either.
fn charge(layout: &Layout) -> usize {
    layout.size().max(64) + 64
}

/// Shared-heap bytes all domains together may own: the rest of the kernel heap stays the
/// kernel's.
pub const QUOTA_TOTAL: usize = 4 * 1024 * 1024;
/// Upper bounds on one block's size and alignment (a larger alignment would waste kernel
/// heap the quota does not see).
const MAX_BLOCK: usize = 256 * 1024;
const MAX_ALIGN: usize = 4096;

struct Registry {
    blocks: BTreeMap<usize, Block>,
    charged_total: usize,
}

impl Registry {
    fn charged_to(&self, d: DomainId) -> usize {
        self.blocks.values().filter(|b| b.owner == d).map(|b| charge(&b.layout)).sum()
    }
}

static REGISTRY: IrqLock<Registry> = IrqLock::new(
    "shared heap",
    Registry {
        blocks: BTreeMap::new(),
        charged_total: 0,
    },
);

/// A new block for `owner`, or null when the size is unreasonable or a quota is used up.
pub fn alloc(owner: DomainId, size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(size.max(1), align.max(1)) else {
        return core::ptr::null_mut();
    };
    if layout.size() > MAX_BLOCK || layout.align() > MAX_ALIGN {
        return core::ptr::null_mut();
    }
    let mut reg = REGISTRY.lock();
    // DMA buffers count against the same quota (read under the registry's lock, which
    // `reserve_dma` charges them under, so neither can slip past the other's check).
    let dma = if owner == super::KERNEL { 0 } else { super::dma::bytes_of(owner) };
    let cost = charge(&layout);
    // The kernel's own blocks (its log lines to the console domain, its replies) are
    // bounded by the kernel itself.
    let quota = if owner == super::KERNEL {
        QUOTA_TOTAL
    } else {
        super::quota::shared_heap(owner)
    };
    if reg.charged_total + cost > QUOTA_TOTAL || reg.charged_to(owner) + dma + cost > quota {
        return core::ptr::null_mut();
    }
    // SAFETY: non-zero size. The kernel heap allocator takes its own lock; one core, and
    // this lock only masks interrupts, so there is no lock-order problem.
    let p = unsafe { alloc::alloc::alloc(layout) };
    if !p.is_null() {
        reg.charged_total += cost;
        reg.blocks.insert(p as usize, Block { owner, layout, sent: None });
    }
    p
}

fn release(reg: &mut Registry, p: usize) -> Option<Layout> {
    let b = reg.blocks.remove(&p)?;
    reg.charged_total -= charge(&b.layout);
    Some(b.layout)
}

/// Frees a block its owner drops. Refuses (false) anything else.
pub fn free(by: DomainId, p: *mut u8) -> bool {
    let layout = {
        let mut reg = REGISTRY.lock();
        match reg.blocks.get(&(p as usize)) {
            Some(b) if b.owner == by => release(&mut reg, p as usize),
            _ => None,
        }
    };
    match layout {
        Some(layout) => {
            // SAFETY: allocated by `alloc` with this layout, and now unregistered.
            unsafe { alloc::alloc::dealloc(p, layout) };
            true
        }
        None => false,
    }
}

/// Charges `bytes` of DMA memory to `d` if its quota has room: checked and charged under
/// the registry's lock, before the frames are allocated (a red-team finding: checked
/// first and charged after zeroing the frames, racing threads held twice the quota).
/// The caller gives the charge back (`dma::account`) if the allocation then fails.
pub fn reserve_dma(d: DomainId, bytes: usize) -> bool {
    let reg = REGISTRY.lock();
    if reg.charged_to(d) + super::dma::bytes_of(d) + bytes > super::quota::shared_heap(d) {
        return false;
    }
    super::dma::account(d, bytes, true);
    true
}

/// Marks `p`, owned by `by`, as sent `to`. False if `by` does not own it.
pub fn send(by: DomainId, p: *mut u8, to: Sent) -> bool {
    match REGISTRY.lock().blocks.get_mut(&(p as usize)) {
        Some(b) if b.owner == by => {
            b.sent = Some(to);
            true
        }
        _ => false,
    }
}

/// `by` takes `p`, which was sent to it (or which it owns already). False otherwise.
pub fn claim(by: DomainId, p: *mut u8) -> bool {
    let mut reg = REGISTRY.lock();
    let Some(b) = reg.blocks.get_mut(&(p as usize)) else { return false };
    match (b.sent, b.receiver()) {
        // From now on it counts against the receiver (one over its quota still gets what
        // it was sent: refusing would strand the block in flight).
        (Some(_), Some(to)) if to == by => {
            b.owner = by;
            b.sent = None;
            true
        }
        (None, _) => b.owner == by,
        _ => false,
    }
}

/// The kernel moves `p` from `from` to `to` (a hot swap's state block). False unless
/// `from` owns it and it is `size` bytes.
pub fn hand_over(from: DomainId, to: DomainId, p: *mut u8, size: usize) -> bool {
    match REGISTRY.lock().blocks.get_mut(&(p as usize)) {
        Some(b) if b.owner == from && b.layout.size() == size.max(1) => {
            b.owner = to;
            b.sent = None;
            true
        }
        _ => false,
    }
}

/// Domain `d` died: frees every block it owns, and every block on its way to it and never
/// claimed (the sender's call failed and gave it up; a call a swap re-issues goes through a
/// slot already re-pointed to the new version, so its blocks stay); returns (blocks, bytes).
pub fn free_all_owned_by(d: DomainId) -> (usize, usize) {
    let freed: alloc::vec::Vec<(usize, Layout)> = {
        let mut reg = REGISTRY.lock();
        let ps: alloc::vec::Vec<usize> = reg
            .blocks
            .iter()
            .filter(|(_, b)| b.owner == d || b.receiver() == Some(d))
            .map(|(p, _)| *p)
            .collect();
        ps.into_iter().filter_map(|p| release(&mut reg, p).map(|l| (p, l))).collect()
    };
    let bytes = freed.iter().map(|(_, l)| l.size()).sum();
    for (p, layout) in &freed {
        // SAFETY: allocated by `alloc` with this layout and now unregistered; its owner is
        // dead (or it was on its way to a dead domain), so nothing uses it.
        unsafe { alloc::alloc::dealloc(*p as *mut u8, *layout) };
    }
    (freed.len(), bytes)
}

/// (blocks, bytes) owned by `d`.
pub fn owned_by(d: DomainId) -> (usize, usize) {
    let reg = REGISTRY.lock();
    reg.blocks
        .values()
        .filter(|b| b.owner == d)
        .fold((0, 0), |(n, s), b| (n + 1, s + b.layout.size()))
}

/// Bytes on the shared heap, whoever owns them.
#[cfg_attr(not(feature = "selftest"), allow(dead_code))] // used by the selftests
pub fn total_bytes() -> usize {
    REGISTRY.lock().blocks.values().map(|b| b.layout.size()).sum()
}
