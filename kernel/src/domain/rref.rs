//! The shared heap: `RRef` blocks, each recorded with the domain that owns it and, while it
//! is on its way back to a caller, that caller. Blocks are charged to their owner's quota
//! (its manifest's `shared_heap_limit`, less its DMA buffers); the registry frees a dead
//! domain's blocks.
//!
//! Blocks move in two ways. An argument moves in the trampoline (`move_arguments`, and the
//! moving trampoline's own fast path in continuation.s): as the call enters the callee, the
//! block's owner becomes the callee in one step, if the caller owns it and the callee's
//! quota has room; otherwise the call is refused and nothing moves. A result takes two
//! steps: the callee *returns* it (marks it sent to the caller of the call it serves), and
//! the caller *claims* it. A domain can claim only a block returned to it, and free only a
//! block it owns: naming another domain's block by its address gets nothing.
//!
//! Where blocks live (`slab.rs`): blocks of up to `slab::SLAB` bytes come from fixed-size
//! slots of one kernel-owned region, and their records (owner, where sent, charge, size) sit
//! in an array in kernel memory, found from the address by arithmetic; the region's bytes
//! are the blocks' only, so nothing a domain can write is trusted. Larger blocks (and small
//! ones when the region is full) come from the kernel heap, recorded in a map. Either way
//! the address a domain names must be exactly the start of a live block the kernel made,
//! or the call gets nothing. What each domain is charged, and may be, is kept per domain in
//! `QVQ_RREF_ACCOUNTS`, so allocating never scans; the lock only masks interrupts for the
//! few instructions of each step.

#[path = "../arch/aarch64/shared_heap.rs"]
mod fast;

use super::slab::{self, Head, Slabs};
use super::DomainId;
use crate::sync::IrqLock;
use alloc::collections::BTreeMap;
use core::alloc::Layout;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use interfaces::RpcError;

/// A block's `sent` as a record stores it: 0 (not sent), or this bit and the caller it goes
/// back to.
const SENT_CALLER: u32 = 1 << 31;
const SENT_VALUE: u32 = SENT_CALLER - 1;

/// The domain a block recorded as `sent` is on its way to now, if any.
#[inline]
fn receiver(sent: u32) -> Option<DomainId> {
    (sent & SENT_CALLER != 0).then_some(sent & SENT_VALUE)
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

/// Kernel-heap bytes (as charged) all domains' large blocks together may take: the rest of
/// the kernel heap stays the kernel's. (Slab blocks live in their own region.)
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

/// One domain's shared-heap account. Changed under the shared-heap lock, or by the moving
/// trampoline with IRQs masked (continuation.s reads both words with one `ldp`).
#[repr(C)]
pub struct Account {
    /// What its blocks cost, together.
    pub(super) charged: AtomicUsize,
    /// What they may cost: its quota less its DMA buffers (`refresh_limit`).
    pub(super) limit: AtomicUsize,
}

/// Per domain number. The kernel's own blocks (its log lines to the console domain, its
/// replies) are bounded by the kernel itself: its limit is `QUOTA_TOTAL`.
#[no_mangle]
#[link_section = ".data.qvq_hot.accounts"]
pub static QVQ_RREF_ACCOUNTS: [Account; DOMAINS] = {
    let mut all = [const {
        Account {
            charged: AtomicUsize::new(0),
            limit: AtomicUsize::new(0),
        }
    }; DOMAINS];
    all[super::KERNEL as usize] = Account {
        charged: AtomicUsize::new(0),
        limit: AtomicUsize::new(QUOTA_TOTAL),
    };
    all
};
const _: () = assert!(core::mem::size_of::<Account>() == 16 && core::mem::offset_of!(Account, limit) == 8);

/// Re-reads `d`'s limit from its quota and DMA buffers (both changed: `quota::set`,
/// `dma::account`).
pub fn refresh_limit(d: DomainId) {
    if d == super::KERNEL {
        return;
    }
    if let Some(a) = QVQ_RREF_ACCOUNTS.get(d as usize) {
        // Masked, so the trampoline never sees a limit half-way between two changes.
        let saved = crate::arch::cpu::irq_save();
        a.limit.store(super::quota::shared_heap(d).saturating_sub(super::dma::bytes_of(d)), Relaxed);
        crate::arch::cpu::irq_restore(saved);
    }
}

struct Registry {
    slabs: Slabs,
    big: BTreeMap<usize, Block>,
    /// What all kernel-heap blocks cost, together.
    big_total: usize,
}

/// Counts a block costing `charge` as `d`'s (`add`) or no longer (under the lock).
#[inline]
fn account(d: DomainId, charge: usize, add: bool) {
    if let Some(a) = QVQ_RREF_ACCOUNTS.get(d as usize) {
        let c = a.charged.load(Relaxed);
        a.charged.store(if add { c + charge } else { c - charge }, Relaxed);
    }
}

/// True if `d` may be charged `cost` more.
#[inline]
fn has_room(d: DomainId, cost: usize) -> bool {
    QVQ_RREF_ACCOUNTS
        .get(d as usize)
        .is_some_and(|a| a.charged.load(Relaxed) + cost <= a.limit.load(Relaxed))
}

impl Registry {
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
            account(owner, charge, false);
            return true;
        }
        self.release_big(p, by)
    }

    #[cold]
    #[inline(never)]
    fn release_big(&mut self, p: usize, by: Option<DomainId>) -> bool {
        match self.big.get(&p) {
            Some(b) if by.is_none_or(|d| d == b.owner && b.sent == 0) => {}
            _ => return false,
        }
        let Some(b) = self.big.remove(&p) else { return false };
        account(b.owner, b.charge, false);
        self.big_total -= b.charge;
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
        big_total: 0,
    },
);

/// A new block for `owner`, or null when the size is unreasonable or a quota is used up.
#[inline]
pub fn alloc(owner: DomainId, size: usize, align: usize) -> *mut u8 {
    if let Some(class) = slab::class_of(size, align, MAX_ALIGN) {
        if let Some(p) = alloc_slab(owner, size.max(1), class) {
            return p;
        }
    }
    alloc_big(owner, size, align)
}

/// A slab block: `Some(null)` over the quota, `None` when the slab region has no slot left.
#[inline]
fn alloc_slab(owner: DomainId, size: usize, class: u8) -> Option<*mut u8> {
    let cost = slab::charge(class);
    let mut reg = REGISTRY.lock_quick();
    if !has_room(owner, cost) {
        return Some(core::ptr::null_mut());
    }
    let p = reg.slabs.take(class, owner, size)?;
    account(owner, cost, true);
    Some(p as *mut u8)
}

/// A block from the kernel heap.
#[cold]
#[inline(never)]
fn alloc_big(owner: DomainId, size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(size.max(1), align.max(1)) else {
        return core::ptr::null_mut();
    };
    if layout.size() > MAX_BLOCK || layout.align() > MAX_ALIGN {
        return core::ptr::null_mut();
    }
    let cost = charge(&layout);
    let mut reg = REGISTRY.lock();
    if reg.big_total + cost > QUOTA_TOTAL || !has_room(owner, cost) {
        return core::ptr::null_mut();
    }
    // SAFETY: non-zero size. The kernel heap allocator takes its own lock; one core, and
    // this lock only masks interrupts, so there is no lock-order problem.
    let p = unsafe { alloc::alloc::alloc(layout) };
    if !p.is_null() {
        account(owner, cost, true);
        reg.big_total += cost;
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

/// Frees a block its owner drops (on its way nowhere). Refuses (false) anything else.
#[inline]
pub fn free(by: DomainId, p: *mut u8) -> bool {
    REGISTRY.lock_quick().release(p as usize, Some(by))
}

/// Charges `bytes` of DMA memory to `d` if its quota has room: checked and charged under
/// the registry's lock, before the frames are allocated (a red-team finding: checked
/// first and charged after zeroing the frames, racing threads held twice the quota).
/// The caller gives the charge back (`dma::account`) if the allocation then fails.
pub fn reserve_dma(d: DomainId, bytes: usize) -> bool {
    let _reg = REGISTRY.lock();
    if !has_room(d, bytes) {
        return false;
    }
    super::dma::account(d, bytes, true);
    true
}

/// Marks `p`, owned by `by` and on its way nowhere, as on its way back to `caller` (the
/// result of the call `by` serves). False if `by` does not own it. A result for a caller
/// that died meanwhile is freed at once (a red-team finding: the caller's reclaim had run,
/// so nothing freed it, and it stayed charged to the callee; a caller can die at will).
#[inline]
pub fn give_back(by: DomainId, p: *mut u8, caller: DomainId) -> bool {
    let mut reg = REGISTRY.lock_quick();
    match reg.head(p as usize) {
        Some(h) if *h.owner == by && *h.sent == 0 => {
            *h.sent = SENT_CALLER | (caller & SENT_VALUE);
        }
        _ => return false,
    }
    // Under the lock: a crash marks its domain dead before its reclaim takes the lock, so
    // a caller that dies after this check has its reclaim free the block instead.
    if super::registry::is_dead(caller) {
        reg.release(p as usize, None);
    }
    true
}

/// `by` takes `p`, which was given back to it (or which it owns already). False otherwise.
#[inline]
pub fn claim(by: DomainId, p: *mut u8) -> bool {
    let mut reg = REGISTRY.lock_quick();
    let Some(h) = reg.head(p as usize) else { return false };
    let (from, sent, cost) = (*h.owner, *h.sent, h.charge);
    // Only a block returned to `by`: not one it owns that no call returned (a red-team
    // finding: a hostile callee returned the address of a block its caller still held, and
    // the caller's proxy claimed a second `RRef` to it). From now on it counts against the receiver, which must have room for it: a red-team
    // finding, a domain that kept what it was sent was charged past its quota while the
    // sender's charge went back, so the two held up to `QUOTA_TOTAL`. Refused, the
    // receiver's proxy code crashes it (over quota is the domain's error), and its reclaim
    // frees the block, on its way to it: nothing is stranded.
    if receiver(sent) != Some(by) || (from != by && !has_room(by, cost)) {
        return false;
    }
    *h.owner = by;
    *h.sent = 0;
    if from != by {
        account(from, cost, false);
        account(by, cost, true);
    }
    true
}

/// Moves a call's `RRef` arguments (`blocks`) from `caller` to `callee` as the call enters
/// (the moving trampoline's slow path: several blocks, or one from the kernel heap). Each
/// must be a live block the caller owns, each named once, and the callee's quota must have
/// room for them all; otherwise nothing moves.
pub fn move_arguments(caller: DomainId, callee: DomainId, blocks: &[usize]) -> Result<(), RpcError> {
    let mut reg = REGISTRY.lock_quick();
    // One block (the common case: a batch from the kernel heap): one lookup.
    if let [p] = blocks {
        let Some(h) = reg.head(*p).filter(|h| *h.owner == caller) else {
            return Err(RpcError::NotAllowed);
        };
        // (As the fast path does: the room is checked even for a domain calling itself.)
        if !has_room(callee, h.charge) {
            return Err(RpcError::NoRoom);
        }
        let cost = h.charge;
        *h.owner = callee;
        *h.sent = 0;
        account(caller, cost, false);
        account(callee, cost, true);
        return Ok(());
    }
    let mut cost = 0;
    for (i, &p) in blocks.iter().enumerate() {
        if blocks[..i].contains(&p) {
            return Err(RpcError::NotAllowed);
        }
        match reg.head(p) {
            Some(h) if *h.owner == caller && *h.sent == 0 => cost += h.charge,
            _ => return Err(RpcError::NotAllowed),
        }
    }
    if !has_room(callee, cost) {
        return Err(RpcError::NoRoom);
    }
    for &p in blocks {
        if let Some(h) = reg.head(p) {
            *h.owner = callee;
            *h.sent = 0;
        }
    }
    account(caller, cost, false);
    account(callee, cost, true);
    Ok(())
}

/// The kernel moves `p` from `from` to `to` (a hot swap's state block). False unless
/// `from` owns it and it is `size` bytes.
pub fn hand_over(from: DomainId, to: DomainId, p: *mut u8, size: usize) -> bool {
    let mut reg = REGISTRY.lock();
    let Some(h) = reg.head(p as usize) else { return false };
    if *h.owner != from || *h.sent != 0 || h.size != size.max(1) {
        return false;
    }
    let cost = h.charge;
    *h.owner = to;
    *h.sent = 0;
    account(from, cost, false);
    account(to, cost, true);
    true
}

/// Every live block: (address, owner, sent, size).
fn blocks(reg: &mut Registry) -> alloc::vec::Vec<(usize, DomainId, u32, usize)> {
    let mut all = reg.slabs.live();
    all.extend(reg.big.iter().map(|(p, b)| (*p, b.owner, b.sent, b.layout.size())));
    all
}

/// Domain `d` died: frees every block it owns, and every block on its way back to it and
/// never claimed (the result of a call it made); returns (blocks, bytes). A block `d`
/// returned to a live caller that has not claimed it yet goes to that caller instead (a
/// red-team finding, and a kernel panic on rpi3: the callee's reclaim, right after the
/// call returned, freed the result under the caller, whose claim then failed; with the
/// kernel as the caller, any callee could panic it by dying at the right moment).
pub fn free_all_owned_by(d: DomainId) -> (usize, usize) {
    let mut reg = REGISTRY.lock();
    let (mut n, mut bytes) = (0, 0);
    for (p, owner, sent, size) in blocks(&mut reg) {
        let to = receiver(sent);
        if owner == d {
            if let Some(caller) = to.filter(|c| *c != d && !super::registry::is_dead(*c)) {
                if let Some(h) = reg.head(p) {
                    // Still on its way to the caller, whose claim takes it.
                    let cost = h.charge;
                    *h.owner = caller;
                    account(d, cost, false);
                    account(caller, cost, true);
                }
                continue;
            }
        } else if to != Some(d) {
            continue;
        }
        if reg.release(p, None) {
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
