//! The shared heap's fast store: one kernel-owned region (a static) cut into slabs of
//! `SLAB` bytes, each slab cut into equal slots of one size class (64 bytes to `SLAB`, powers
//! of two). A block's record lives in `records`, an array in kernel memory indexed by the
//! block's offset in the region divided by `UNIT`: finding it from an address is
//! arithmetic, and no domain can write it (the region holds the blocks' bytes only, which
//! their owners may write freely; the free lists are in the records too).
//!
//! An address names a block only if it lies in the region, on a `UNIT` boundary, and its
//! record says a live block starts there: an address inside a block, in a free slot, or
//! in a slab not handed out yet has a record of size 0 and gets nothing.
//!
//! Slabs are given a class when first needed and keep it (a freed block goes back on its
//! class's free list); when no slab is left, the shared heap falls back to the kernel heap.
//! There is one `Slabs`, inside the shared-heap lock (`rref.rs`): the records are reached
//! only through it, so only under that lock.

use super::DomainId;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

/// Smallest slot, and the grain of the record array.
const UNIT: usize = 64;
/// One slab, and the largest slot.
pub const SLAB: usize = 16 * 1024;
/// The region: `SLABS` slabs.
const SLABS: usize = 32;
const REGION: usize = SLAB * SLABS;
const UNITS: usize = REGION / UNIT;
/// Size classes: 64 << c for c in 0..CLASSES.
const CLASSES: usize = (SLAB / UNIT).trailing_zeros() as usize + 1;
/// End of a free list.
const NONE: u16 = u16::MAX;
const _: () = assert!(UNITS < NONE as usize);

/// The blocks' bytes. The kernel never reads or writes them through this static (only
/// through the `RRef`s it holds itself, like any domain): it only takes the address.
#[repr(C, align(16384))]
struct Region(UnsafeCell<[u8; REGION]>);
// SAFETY: no reference to the bytes is ever made from the static (see above); each block's
// bytes are accessed only by the one owner of its `RRef`.
unsafe impl Sync for Region {}
static REGION_BYTES: Region = Region(UnsafeCell::new([0; REGION]));
const _: () = assert!(core::mem::align_of::<Region>() == SLAB);

/// One `UNIT` of the region. A block's record is the one of its first unit; `size` is 0
/// where no live block starts. All zero: nothing there yet.
#[derive(Clone, Copy)]
struct Record {
    owner: DomainId,
    /// Where it was sent (`rref.rs` encodes it), or 0.
    sent: u32,
    size: u32,
    /// Free slot: the next free slot of its class (a unit index), or NONE.
    next: u16,
    /// The class of the slab it is in (set when the slab is handed out).
    class: u8,
}

struct Records(UnsafeCell<[Record; UNITS]>);
// SAFETY: reached only through the one `Slabs`, which lives inside the shared-heap lock.
unsafe impl Sync for Records {}
static RECORDS: Records = Records(UnsafeCell::new(
    [Record {
        owner: 0,
        sent: 0,
        size: 0,
        next: 0,
        class: 0,
    }; UNITS],
));

/// The fields of a live block's record that the shared heap reads and changes.
pub struct Head<'a> {
    pub owner: &'a mut DomainId,
    pub sent: &'a mut u32,
    pub size: usize,
    /// What it costs its owner's quota.
    pub charge: usize,
}

pub struct Slabs {
    /// Per class: the first free slot (unit index), or NONE.
    free: [u16; CLASSES],
    /// Slabs handed out so far (they are handed out in order).
    used: usize,
    /// Live blocks in each slab: a slab with none goes to another class that needs one
    /// when none is left (else a domain could give every slab a class no one else uses,
    /// by allocating and freeing, and push every other domain onto the kernel heap for good).
    live: [u16; SLABS],
}

/// The class of a block of `size` bytes aligned to `align` (both at least 1, `align` a
/// power of two), or `None` if it is larger than a slab.
#[inline]
pub fn class_of(size: usize, align: usize) -> Option<u8> {
    // The smallest class whose slot holds `size` and is a multiple of `align`.
    let last = (size.max(align) - 1) | (UNIT - 1);
    let class = (usize::BITS - last.leading_zeros()) as usize - UNIT.trailing_zeros() as usize;
    (class < CLASSES).then_some(class as u8)
}

fn slot_size(class: u8) -> usize {
    UNIT << class
}

/// What a block of `class` costs its owner's quota: its slot, plus 64 for the record.
#[inline]
pub fn charge(class: u8) -> usize {
    slot_size(class) + 64
}

fn base() -> usize {
    REGION_BYTES.0.get() as usize
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
    /// The one `Slabs` (the shared-heap lock's: see `Records`).
    pub(super) const fn new() -> Slabs {
        Slabs {
            free: [NONE; CLASSES],
            used: 0,
            live: [0; SLABS],
        }
    }

    #[inline]
    fn records(&mut self) -> &mut [Record; UNITS] {
        // SAFETY: `&mut self` is the one `Slabs`, held under the shared-heap lock, so this
        // is the only reference to the records while it lives.
        unsafe { &mut *RECORDS.0.get() }
    }

    /// The record index of the live block starting exactly at `p`.
    #[inline]
    fn index(&mut self, p: usize) -> Option<usize> {
        let off = p.wrapping_sub(base());
        if off >= REGION || !off.is_multiple_of(UNIT) {
            return None;
        }
        let i = off / UNIT;
        (self.records()[i].size != 0).then_some(i)
    }

    #[inline]
    pub fn head(&mut self, p: usize) -> Option<Head<'_>> {
        let i = self.index(p)?;
        let r = &mut self.records()[i];
        Some(Head {
            owner: &mut r.owner,
            sent: &mut r.sent,
            size: r.size as usize,
            charge: charge(r.class),
        })
    }

    /// A free slot of `class` for a new block of `owner` (`size` bytes), or `None` when
    /// the class has none and no slab is left.
    #[inline]
    pub fn take(&mut self, class: u8, owner: DomainId, size: usize) -> Option<usize> {
        let c = class as usize;
        if self.free[c] == NONE && !self.carve(class) {
            return None;
        }
        let i = self.free[c] as usize;
        let r = &mut self.records()[i];
        let next = r.next;
        r.owner = owner;
        r.sent = 0;
        r.size = size as u32;
        self.free[c] = next;
        self.live[i * UNIT / SLAB] += 1;
        Some(base() + i * UNIT)
    }

    /// Unrecords the live block at `p` if `by` owns it (`by` `None`: whoever does) and
    /// puts its slot back on its free list: (owner, size, charge), or `None`.
    #[inline]
    pub fn release(&mut self, p: usize, by: Option<DomainId>) -> Option<(DomainId, usize, usize)> {
        let i = self.index(p)?;
        let head = self.free[self.records()[i].class as usize];
        let r = &mut self.records()[i];
        if by.is_some_and(|d| d != r.owner) {
            return None;
        }
        let out = (r.owner, r.size as usize, charge(r.class));
        let class = r.class as usize;
        r.size = 0;
        r.sent = 0;
        r.next = head;
        self.free[class] = i as u16;
        self.live[i * UNIT / SLAB] -= 1;
        Some(out)
    }

    /// (address, owner, sent, size) of every live block.
    pub fn live(&mut self) -> Vec<(usize, DomainId, u32, usize)> {
        let mut out = Vec::new();
        for s in 0..self.used {
            let first = s * SLAB / UNIT;
            let step = slot_size(self.records()[first].class) / UNIT;
            for i in (first..first + SLAB / UNIT).step_by(step) {
                let r = self.records()[i];
                if r.size != 0 {
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
        let old = self.records()[lo].class as usize;
        let (mut prev, mut cur) = (NONE, self.free[old]);
        while cur != NONE {
            let next = self.records()[cur as usize].next;
            if (lo..hi).contains(&(cur as usize)) {
                if prev == NONE {
                    self.free[old] = next;
                } else {
                    self.records()[prev as usize].next = next;
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
        let s = if self.used < SLABS {
            self.used += 1;
            self.used - 1
        } else {
            // `class` has no free slot, so an empty slab is another class's.
            let Some(s) = (0..SLABS).find(|&s| self.live[s] == 0) else { return false };
            self.unlink(s);
            s
        };
        let step = slot_size(class) / UNIT;
        let c = class as usize;
        for i in (s * SLAB / UNIT..(s + 1) * SLAB / UNIT).step_by(step).rev() {
            let head = self.free[c];
            let r = &mut self.records()[i];
            r.class = class;
            r.next = head;
            self.free[c] = i as u16;
        }
        true
    }
}
