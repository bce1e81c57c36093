//! The CPU half of the shared heap: the fast paths of the `rref_alloc` and `rref_free`
//! services in shared_heap.s, assembled with every layout offset and constant they rely on
//! passed in from the Rust definitions (`domain::slab`, `domain::rref`). Included by
//! `domain::rref` (`#[path]`), whose slow paths they fall back to.

use crate::domain::rref::Account;
use crate::domain::slab::{self, Record, SlabState};
use core::mem::{offset_of, size_of};

// The layouts the assembly relies on.
const _: () = {
    assert!(offset_of!(Record, charge) == offset_of!(Record, owner) + 4);
    assert!(offset_of!(Record, sent) == offset_of!(Record, charge) + 4);
    assert!(offset_of!(Record, size) == offset_of!(Record, sent) + 4 && size_of::<Record>() == 16);
    assert!(size_of::<Account>() == 1 << 4 && offset_of!(Account, limit) == 8);
    // A block's record index is its unit, and a slab's index its unit shifted by this.
    assert!(slab::UNIT == 1 << 6 && slab::SLAB == slab::UNIT << 8);
    // Unit indices are below 1 << 15, so a free list's end (NONE) is told by bit 15.
    assert!(slab::UNITS < 1 << 15);
};

core::arch::global_asm!(
    include_str!("shared_heap.s"),
    UNIT_SHIFT = const 6,
    SLAB_UNITS_SHIFT = const 8,
    UNITS = const slab::UNITS,
    SLAB = const slab::SLAB,
    RECORDS_SIZE = const slab::RECORDS_SIZE,
    RECORD_SHIFT = const 4,
    REC_NEXT = const offset_of!(Record, next),
    REC_SENT = const offset_of!(Record, sent),
    RECORD_CHARGE = const slab::charge(0) - slab::UNIT,
    ST_FREE = const offset_of!(SlabState, free),
    ST_CLASS = const offset_of!(SlabState, class),
    ST_LIVE = const offset_of!(SlabState, live),
    ACCOUNT_SHIFT = const 4,
);
