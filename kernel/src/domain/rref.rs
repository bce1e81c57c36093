//! The shared heap: `RRef` blocks, each recorded with the domain that owns it and, while it
//! moves through a call, the domain it was sent to. Blocks are charged to their owner's
//! quota (its manifest's `shared_heap_limit`); the registry frees a dead domain's blocks.
//!
//! Moving a block takes two steps: its owner *sends* it (as an argument through one of its
//! slots, to that slot's callee; or as the result of the call it serves, to that call's
//! caller), and the receiver *claims* it. A domain can claim only a block sent to it, and
//! free only a block it owns: naming another domain's block by its address gets nothing.
//!
//! Where blocks live (`slab.rs`): blocks of up to `slab::SLAB` bytes come from fixed-size
//! slots of one kernel-owned region, and their records (owner, where sent, size) sit in an
//! array in kernel memory, found from the address by arithmetic; the region's bytes are the
//! blocks' only, so nothing a domain can write is trusted. Larger blocks (and small ones
//! when the region is full) come from the kernel heap, recorded in a map. Either way the
//! address a domain names must be exactly the start of a live block the kernel made, or
//! the call gets nothing. What each domain is charged is kept as a counter, so allocating
//! never scans; the lock only masks interrupts for the few instructions of each step.

use super::slab::{self, Head, Slabs};
use super::DomainId;
use crate::sync::IrqLock;
use alloc::collections::BTreeMap;
use core::alloc::Layout;

/// Where a block in flight goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Through the owner's slot: to whichever domain the slot dispatches to when the call
    /// arrives (a hot swap may re-point the slot and re-issue the call in between).
    Slot(u32),
    /// Back to this caller, as the result of a call it made.
    Caller(DomainId),
}

/// `Sent` as a record stores it: 0 (not sent), or a tag bit and the slot or domain.
const SENT_SLOT: u32 = 1 << 30;
const SENT_CALLER: u32 = 1 << 31;
const SENT_VALUE: u32 = SENT_SLOT - 1;

fn encode(s: Sent) -> u32 {
    match s {
        Sent::Slot(n) => SENT_SLOT | (n & SENT_VALUE),
        Sent::Caller(d) => SENT_CALLER | (d & SENT_VALUE),
    }
}

/// The domain a block of `owner`, recorded as `sent`, is on its way to now, if any.
#[inline]
fn receiver(owner: DomainId, sent: u32) -> Option<DomainId> {
    if sent & SENT_CALLER != 0 {
        Some(sent & SENT_VALUE)
    } else if sent & SENT_SLOT != 0 {
        super::proxy::callee_of(owner, sent & SENT_VALUE)
    } else {
        None
    }
}

/// What a kernel-heap block costs its owner's quota: its size rounded up to its alignment
/// (first fit puts each block of a large alignment at the next boundary, and the holes
/// between fit only small objects: a red-team finding, 1-byte blocks aligned to 4 KiB were
/// charged 128 bytes each and one domain's quota spanned 8 MiB of the kernel heap), at
/// least 64 bytes, plus the registry's own bookkeeping, so that many tiny blocks cannot
/// exhaust the kernel heap either. (A slab block costs its slot's size, a power of two at
/// least its alignment, plus the same 64: `slab::charge`.)
fn charge(layout: &Layout) -> usize {
    layout.pad_to_align().size().max(64) + 64
}

/// Shared-heap bytes all domains together may own: the rest of the kernel heap stays the
/// kernel's.
pub const QUOTA_TOTAL: usize = 4 * 1024 * 1024;
/// Upper bounds on one block's size and alignment (a larger alignment would waste kernel
/// heap the quota does not see).
const MAX_BLOCK: usize = 256 * 1024;
const MAX_ALIGN: usize = 4096;

/// A kernel-heap block's record.
struct Block {
    owner: DomainId,
    layout: Layout,
    sent: u32,
    charge: usize,
}

const DOMAINS: usize = super::registry::MAX_DOMAINS;

struct Registry {
    slabs: Slabs,
    big: BTreeMap<usize, Block>,
    /// What each domain's blocks cost its quota, and all of them together.
    charged: [usize; DOMAINS],
    charged_total: usize,
}

impl Registry {
    /// Counts a block costing `charge` as `d`'s (`add`) or no longer.
    #[inline]
    fn account(&mut self, d: DomainId, charge: usize, add: bool) {
        if let Some(c) = self.charged.get_mut(d as usize) {
            if add {
                *c += charge;
            } else {
                *c -= charge;
            }
        }
        if add {
            self.charged_total += charge;
        } else {
            self.charged_total -= charge;
        }
    }

    /// The record of the live block starting exactly at `p`.
    #[inline]
    fn head(&mut self, p: usize) -> Option<Head<'_>> {
        if slab::contains(p) {
            return self.slabs.head(p);
        }
        self.head_big(p)
    }

    #[cold]
    #[inline(never)]
    fn head_big(&mut self, p: usize) -> Option<Head<'_>> {
        self.big.get_mut(&p).map(|b| Head {
            owner: &mut b.owner,
            sent: &mut b.sent,
            size: b.layout.size(),
            charge: b.charge,
        })
    }

    /// Unrecords the block at `p` if `by` owns it (`None`: whoever does) and gives its
    /// memory back; false if there is none.
    #[inline]
    fn release(&mut self, p: usize, by: Option<DomainId>) -> bool {
        if slab::contains(p) {
            let Some((owner, _, charge)) = self.slabs.release(p, by) else { return false };
            self.account(owner, charge, false);
            return true;
        }
        self.release_big(p, by)
    }

    #[cold]
    #[inline(never)]
    fn release_big(&mut self, p: usize, by: Option<DomainId>) -> bool {
        match self.big.get(&p) {
            Some(b) if by.is_none_or(|d| d == b.owner) => {}
            _ => return false,
        }
        let Some(b) = self.big.remove(&p) else { return false };
        self.account(b.owner, b.charge, false);
        // SAFETY: allocated by `alloc` with this layout, and now unregistered. The kernel
        // heap allocator takes its own lock; one core, and ours only masks interrupts.
        unsafe { alloc::alloc::dealloc(p as *mut u8, b.layout) };
        true
    }
}

static REGISTRY: IrqLock<Registry> = IrqLock::new(
    "shared heap",
    Registry {
        slabs: Slabs::new(),
        big: BTreeMap::new(),
        charged: [0; DOMAINS],
        charged_total: 0,
    },
);

/// A new block for `owner`, or null when the size is unreasonable or a quota is used up.
#[inline]
pub fn alloc(owner: DomainId, size: usize, align: usize) -> *mut u8 {
    let size = size.max(1);
    if let Some(class) = slab::class_of(size, align.max(1)).filter(|_| align <= MAX_ALIGN && align.is_power_of_two()) {
        if let Some(p) = alloc_slab(owner, size, class) {
            return p;
        }
    }
    alloc_big(owner, size, align)
}

/// What `owner` may be charged in all (its quota less its DMA buffers), or `None` for a
/// domain number past the table.
#[inline]
fn room(owner: DomainId) -> Option<usize> {
    if owner as usize >= DOMAINS {
        return None;
    }
    // The kernel's own blocks (its log lines to the console domain, its replies) are
    // bounded by the kernel itself.
    if owner == super::KERNEL {
        return Some(QUOTA_TOTAL);
    }
    // DMA buffers count against the same quota (read under the registry's lock, which
    // `reserve_dma` charges them under, so neither can slip past the other's check).
    Some(super::quota::shared_heap(owner).saturating_sub(super::dma::bytes_of(owner)))
}

/// A slab block: `Some(null)` over a quota, `None` when the slab region has no slot left.
#[inline]
fn alloc_slab(owner: DomainId, size: usize, class: u8) -> Option<*mut u8> {
    let cost = slab::charge(class);
    let mut reg = REGISTRY.lock_quick();
    let Some(room) = room(owner) else { return Some(core::ptr::null_mut()) };
    if reg.charged_total + cost > QUOTA_TOTAL || reg.charged[owner as usize] + cost > room {
        return Some(core::ptr::null_mut());
    }
    let p = reg.slabs.take(class, owner, size)?;
    reg.account(owner, cost, true);
    Some(p as *mut u8)
}

/// A block from the kernel heap.
#[cold]
#[inline(never)]
fn alloc_big(owner: DomainId, size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(size, align.max(1)) else {
        return core::ptr::null_mut();
    };
    if layout.size() > MAX_BLOCK || layout.align() > MAX_ALIGN {
        return core::ptr::null_mut();
    }
    let cost = charge(&layout);
    let mut reg = REGISTRY.lock();
    let Some(room) = room(owner) else { return core::ptr::null_mut() };
    if reg.charged_total + cost > QUOTA_TOTAL || reg.charged[owner as usize] + cost > room {
        return core::ptr::null_mut();
    }
    // SAFETY: non-zero size. The kernel heap allocator takes its own lock; one core, and
    // this lock only masks interrupts, so there is no lock-order problem.
    let p = unsafe { alloc::alloc::alloc(layout) };
    if !p.is_null() {
        reg.account(owner, cost, true);
        let b = Block {
            owner,
            layout,
            sent: 0,
            charge: cost,
        };
        reg.big.insert(p as usize, b);
    }
    p
}

/// Frees a block its owner drops. Refuses (false) anything else.
#[inline]
pub fn free(by: DomainId, p: *mut u8) -> bool {
    REGISTRY.lock_quick().release(p as usize, Some(by))
}

/// Charges `bytes` of DMA memory to `d` if its quota has room: checked and charged under
/// the registry's lock, before the frames are allocated (a red-team finding: checked
/// first and charged after zeroing the frames, racing threads held twice the quota).
/// The caller gives the charge back (`dma::account`) if the allocation then fails.
pub fn reserve_dma(d: DomainId, bytes: usize) -> bool {
    let reg = REGISTRY.lock();
    let charged = reg.charged.get(d as usize).copied().unwrap_or(0);
    if charged + super::dma::bytes_of(d) + bytes > super::quota::shared_heap(d) {
        return false;
    }
    super::dma::account(d, bytes, true);
    true
}

/// Marks `p`, owned by `by`, as sent `to`. False if `by` does not own it.
#[inline]
pub fn send(by: DomainId, p: *mut u8, to: Sent) -> bool {
    let mut reg = REGISTRY.lock_quick();
    match reg.head(p as usize) {
        Some(h) if *h.owner == by => {
            *h.sent = encode(to);
            true
        }
        _ => false,
    }
}

/// `by` takes `p`, which was sent to it (or which it owns already). False otherwise.
#[inline]
pub fn claim(by: DomainId, p: *mut u8) -> bool {
    let mut reg = REGISTRY.lock_quick();
    let Some(h) = reg.head(p as usize) else { return false };
    let (from, sent, cost) = (*h.owner, *h.sent, h.charge);
    if sent == 0 {
        return from == by;
    }
    if receiver(from, sent) != Some(by) {
        return false;
    }
    // From now on it counts against the receiver, which must have room for it: a red-team
    // finding, a callee that kept what it was sent was charged past its quota while each
    // claim gave the caller's quota back, so the two held up to `QUOTA_TOTAL`. Refused, the
    // receiver's proxy code crashes it (over quota is the domain's error), and its reclaim
    // frees the block, on its way to it: nothing is stranded.
    if from != by && by != super::KERNEL && room(by).is_none_or(|room| reg.charged[by as usize] + cost > room) {
        return false;
    }
    let Some(h) = reg.head(p as usize) else { return false };
    *h.owner = by;
    *h.sent = 0;
    if from != by {
        reg.account(from, cost, false);
        reg.account(by, cost, true);
    }
    true
}

/// The kernel moves `p` from `from` to `to` (a hot swap's state block). False unless
/// `from` owns it and it is `size` bytes.
pub fn hand_over(from: DomainId, to: DomainId, p: *mut u8, size: usize) -> bool {
    let mut reg = REGISTRY.lock();
    let Some(h) = reg.head(p as usize) else { return false };
    if *h.owner != from || h.size != size.max(1) {
        return false;
    }
    let cost = h.charge;
    *h.owner = to;
    *h.sent = 0;
    reg.account(from, cost, false);
    reg.account(to, cost, true);
    true
}

/// Every live block: (address, owner, sent, size).
fn blocks(reg: &mut Registry) -> alloc::vec::Vec<(usize, DomainId, u32, usize)> {
    let mut all = reg.slabs.live();
    all.extend(reg.big.iter().map(|(p, b)| (*p, b.owner, b.sent, b.layout.size())));
    all
}

/// Domain `d` died: frees every block it owns, and every block on its way to it and never
/// claimed (the sender's call failed and gave it up; a call a swap re-issues goes through a
/// slot already re-pointed to the new version, so its blocks stay); returns (blocks, bytes).
pub fn free_all_owned_by(d: DomainId) -> (usize, usize) {
    let mut reg = REGISTRY.lock();
    let (mut n, mut bytes) = (0, 0);
    for (p, owner, sent, size) in blocks(&mut reg) {
        if (owner == d || receiver(owner, sent) == Some(d)) && reg.release(p, None) {
            n += 1;
            bytes += size;
        }
    }
    (n, bytes)
}

/// (blocks, bytes) owned by `d`.
pub fn owned_by(d: DomainId) -> (usize, usize) {
    let all = blocks(&mut REGISTRY.lock());
    all.iter().filter(|b| b.1 == d).fold((0, 0), |(n, s), b| (n + 1, s + b.3))
}

/// Bytes on the shared heap, whoever owns them.
#[cfg_attr(not(feature = "selftest"), allow(dead_code))] // used by the selftests
pub fn total_bytes() -> usize {
    blocks(&mut REGISTRY.lock()).iter().map(|b| b.3).sum()
}

/// The owner of the block starting at `p`, if there is one (the selftests).
#[cfg(feature = "selftest")]
pub fn owner_of(p: usize) -> Option<DomainId> {
    REGISTRY.lock().head(p).map(|h| *h.owner)
}
