//! The shared heap's fast store: one kernel-owned region (a static) cut into slabs of
//! `SLAB` bytes, each slab cut into equal slots of one size class (64 bytes to `SLAB`, powers
//! of two). A block's record lives in `records`, an array in kernel memory indexed by the
//! block's offset in the region divided by `UNIT`: finding it from an address is
//! arithmetic, and no domain can write it (the region holds the blocks' bytes only, which
//! their owners may write freely; the free lists are in the records too).
//!
//! An address names a block only if it lies in the region, on a `UNIT` boundary, and its
//! record says a live block starts there: an address inside a block, in a free slot, or
//! in a slab not handed out yet has a record of charge 0 and gets nothing.
//!
//! Slabs are given a class when first needed and keep it (a freed block goes back on its
//! class's free list); when no slab is left, the shared heap falls back to the kernel heap.
//! There is one `Slabs`, inside the shared-heap lock (`rref.rs`): the records are reached
//! only through it, so only under that lock, and by the moving trampoline (continuation.s),
//! which moves a block between owners with IRQs masked.

use super::DomainId;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

/// Smallest slot, and the grain of the record array.
pub const UNIT: usize = 64;
/// One slab, and the largest slot.
pub const SLAB: usize = 16 * 1024;
/// The region: `SLABS` slabs.
const SLABS: usize = 32;
pub const REGION: usize = SLAB * SLABS;
pub const UNITS: usize = REGION / UNIT;
/// Size classes: 64 << c for c in 0..CLASSES.
const CLASSES: usize = (SLAB / UNIT).trailing_zeros() as usize + 1;
/// End of a free list.
const NONE: u16 = u16::MAX;
const _: () = assert!(UNITS < NONE as usize && SLAB <= u16::MAX as usize);

/// One `UNIT` of the region. A block's record is the one of its first unit; `charge` is 0
/// where no live block starts. All zero: nothing there yet.
///
/// The moving trampoline (continuation.s) reads `owner` and `charge` with one `ldp` and
/// writes `owner` and `sent`: `trampoline.rs` passes their offsets in.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Record {
    pub(super) owner: DomainId,
    /// What the block costs its owner's quota (`charge`), or 0: no live block starts here.
    pub(super) charge: u32,
    /// Where it was sent (`rref.rs` encodes it), or 0.
    pub(super) sent: u32,
    /// The size asked for (at most `SLAB`).
    pub(super) size: u16,
    /// Free slot: the next free slot of its class (a unit index), or NONE.
    pub(super) next: u16,
}

/// The region's records, then its bytes, in one static: the fast paths (the moving
/// trampoline, `arch/aarch64/shared_heap.s`) find both from one `adrp` (the static is
/// aligned to a slab, so to a page). A block at byte offset `o` of the bytes has record
/// `o / UNIT`.
#[repr(C, align(16384))]
pub struct SlabHeap {
    records: UnsafeCell<[Record; UNITS]>,
    /// The blocks' bytes. The kernel never reads or writes them through this static (only
    /// through the `RRef`s it holds itself, like any domain): it only takes the address.
    bytes: UnsafeCell<[u8; REGION]>,
}
/// Bytes of records before the blocks' first byte.
pub const RECORDS_SIZE: usize = UNITS * core::mem::size_of::<Record>();
const _: () = {
    assert!(core::mem::size_of::<Record>() == 16);
    assert!(core::mem::offset_of!(SlabHeap, bytes) == RECORDS_SIZE && RECORDS_SIZE.is_multiple_of(SLAB));
    assert!(core::mem::offset_of!(Record, charge) == core::mem::offset_of!(Record, owner) + 4);
};
// SAFETY: the records are reached only through the one `Slabs`, which lives inside the
// shared-heap lock, and by the moving trampoline with IRQs masked (one core: never while
// the lock is held, whose holders mask IRQs and call no domain). No reference to the
// bytes is ever made from the static; each block's bytes are accessed only by the one
// owner of its `RRef`.
unsafe impl Sync for SlabHeap {}
#[no_mangle]
pub static QVQ_SLAB_HEAP: SlabHeap = SlabHeap {
    records: UnsafeCell::new(
        [Record {
            owner: 0,
            charge: 0,
            sent: 0,
            size: 0,
            next: 0,
        }; UNITS],
    ),
    bytes: UnsafeCell::new([0; REGION]),
};

/// The fields of a live block's record that the shared heap reads and changes.
pub struct Head<'a> {
    pub owner: &'a mut DomainId,
    pub sent: &'a mut u32,
    pub size: usize,
    /// What it costs its owner's quota.
    pub charge: usize,
}

/// The slabs' free lists and counts. `#[repr(C)]`: the shared heap's fast paths
/// (`arch/aarch64/shared_heap.s`) read and change them, with IRQs masked.
#[repr(C)]
pub struct SlabState {
    /// Per class: the first free slot (unit index), or NONE.
    pub(super) free: [u16; CLASSES],
    /// Per slab: its class (set when it is handed out).
    pub(super) class: [u8; SLABS],
    /// Live blocks in each slab: a slab with none goes to another class that needs one
    /// when none is left (else a domain could give every slab a class no one else uses,
    /// by allocating and freeing, and push every other domain onto the kernel heap for good).
    pub(super) live: [u16; SLABS],
    /// Slabs handed out so far (they are handed out in order).
    used: usize,
}

pub struct SlabCell(UnsafeCell<SlabState>);
// SAFETY: reached only through the one `Slabs`, inside the shared-heap lock, and by the
// fast paths with IRQs masked (one core: never while the lock is held, whose holders mask
// IRQs and call no domain).
unsafe impl Sync for SlabCell {}
#[no_mangle]
pub static QVQ_SLABS: SlabCell = SlabCell(UnsafeCell::new(SlabState {
    free: [NONE; CLASSES],
    class: [0; SLABS],
    live: [0; SLABS],
    used: 0,
}));

/// The right to reach the slab state and the records: there is one, inside the shared-heap
/// lock (`rref.rs`).
pub struct Slabs(());

/// The class of a block of `size` bytes aligned to `align`, or `None` if it is larger
/// than a slab or `align` is not a power of two (of at most `max_align`).
#[inline]
pub fn class_of(size: usize, align: usize, max_align: usize) -> Option<u8> {
    if !align.is_power_of_two() || align > max_align {
        return None;
    }
    // The smallest class whose slot holds `size` (at least 1) and is a multiple of `align`.
    let last = (size.max(align) - 1) | (UNIT - 1);
    let class = (usize::BITS - last.leading_zeros()) as usize - UNIT.trailing_zeros() as usize;
    (class < CLASSES).then_some(class as u8)
}

const fn slot_size(class: u8) -> usize {
    UNIT << class
}

/// What a block of `class` costs its owner's quota: its slot, plus 64 for the record.
#[inline]
pub const fn charge(class: u8) -> usize {
    slot_size(class) + 64
}

fn base() -> usize {
    QVQ_SLAB_HEAP.bytes.get() as usize
}

/// (first byte, size) of the region (the selftests).
#[cfg(feature = "selftest")]
pub fn region() -> (usize, usize) {
    (base(), REGION)
}

/// `p` lies in the region (a block there is found only here).
#[inline]
pub fn contains(p: usize) -> bool {
    p.wrapping_sub(base()) < REGION
}

impl Slabs {
    /// The one `Slabs` (the shared-heap lock's).
    pub(super) const fn new() -> Slabs {
        Slabs(())
    }

    /// The slab state and the records.
    #[inline]
    fn parts(&mut self) -> (&mut SlabState, &mut [Record; UNITS]) {
        // SAFETY: `&mut self` is the one `Slabs`, held under the shared-heap lock (IRQs
        // masked, so the fast paths do not run either), so these are the only references
        // to the state and the records while they live.
        unsafe { (&mut *QVQ_SLABS.0.get(), &mut *QVQ_SLAB_HEAP.records.get()) }
    }

    #[inline]
    fn records(&mut self) -> &mut [Record; UNITS] {
        self.parts().1
    }

    /// The record index of the live block starting exactly at `p`.
    #[inline]
    fn index(&mut self, p: usize) -> Option<usize> {
        let off = p.wrapping_sub(base());
        if off >= REGION || !off.is_multiple_of(UNIT) {
            return None;
        }
        let i = off / UNIT;
        (self.records()[i].charge != 0).then_some(i)
    }

    #[inline]
    pub fn head(&mut self, p: usize) -> Option<Head<'_>> {
        let i = self.index(p)?;
        let r = &mut self.records()[i];
        Some(Head {
            owner: &mut r.owner,
            sent: &mut r.sent,
            size: r.size as usize,
            charge: r.charge as usize,
        })
    }

    /// A free slot of `class` for a new block of `owner` (`size` bytes), or `None` when
    /// the class has none and no slab is left.
    pub fn take(&mut self, class: u8, owner: DomainId, size: usize) -> Option<usize> {
        let c = class as usize;
        if self.parts().0.free[c] == NONE && !self.carve(class) {
            return None;
        }
        let (st, records) = self.parts();
        let i = st.free[c] as usize;
        let r = &mut records[i];
        st.free[c] = r.next;
        r.owner = owner;
        r.sent = 0;
        r.size = size as u16; // at most `SLAB`
        r.charge = charge(class) as u32;
        st.live[i * UNIT / SLAB] += 1;
        Some(base() + i * UNIT)
    }

    /// Unrecords the live block at `p` if `by` owns it and it is on its way nowhere (`by`
    /// `None`: whoever owns it, wherever it goes) and puts its slot back on its free list:
    /// (owner, size, charge), or `None`.
    pub fn release(&mut self, p: usize, by: Option<DomainId>) -> Option<(DomainId, usize, usize)> {
        let i = self.index(p)?;
        let (st, records) = self.parts();
        let class = st.class[i * UNIT / SLAB] as usize;
        let r = &mut records[i];
        // Its owner frees it only while it is on its way nowhere (one returned to a caller
        // is the caller's to claim).
        if by.is_some_and(|d| d != r.owner || r.sent != 0) {
            return None;
        }
        let out = (r.owner, r.size as usize, r.charge as usize);
        r.charge = 0;
        r.sent = 0;
        r.next = st.free[class];
        st.free[class] = i as u16;
        st.live[i * UNIT / SLAB] -= 1;
        Some(out)
    }

    /// (address, owner, sent, size) of every live block.
    pub fn live(&mut self) -> Vec<(usize, DomainId, u32, usize)> {
        let mut out = Vec::new();
        let (st, records) = self.parts();
        for s in 0..st.used {
            let first = s * SLAB / UNIT;
            let step = slot_size(st.class[s]) / UNIT;
            for i in (first..first + SLAB / UNIT).step_by(step) {
                let r = records[i];
                if r.charge != 0 {
                    out.push((base() + i * UNIT, r.owner, r.sent, r.size as usize));
                }
            }
        }
        out
    }

    /// Takes the free slots of slab `s` (which has no live block) off its class's free list.
    #[cold]
    fn unlink(&mut self, s: usize) {
        let (lo, hi) = (s * SLAB / UNIT, (s + 1) * SLAB / UNIT);
        let (st, records) = self.parts();
        let old = st.class[s] as usize;
        let (mut prev, mut cur) = (NONE, st.free[old]);
        while cur != NONE {
            let next = records[cur as usize].next;
            if (lo..hi).contains(&(cur as usize)) {
                if prev == NONE {
                    st.free[old] = next;
                } else {
                    records[prev as usize].next = next;
                }
            } else {
                prev = cur;
            }
            cur = next;
        }
    }

    /// Hands the next slab to `class` (or, when all are handed out, one no block lives in,
    /// taken back from its class) and puts its slots on the class's free list. False when
    /// none is left.
    #[cold]
    #[inline(never)]
    fn carve(&mut self, class: u8) -> bool {
        let st = self.parts().0;
        let s = if st.used < SLABS {
            st.used += 1;
            st.used - 1
        } else {
            // `class` has no free slot, so an empty slab is another class's.
            let Some(s) = (0..SLABS).find(|&s| st.live[s] == 0) else { return false };
            self.unlink(s);
            s
        };
        let step = slot_size(class) / UNIT;
        let c = class as usize;
        let (st, records) = self.parts();
        st.class[s] = class;
        for i in (s * SLAB / UNIT..(s + 1) * SLAB / UNIT).step_by(step).rev() {
            records[i].next = st.free[c];
            st.free[c] = i as u16;
        }
        true
    }
}
