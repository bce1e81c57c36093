//! The CPU half of the domain call path: the proxy trampoline and the continuation code in
//! continuation.s, assembled with every layout offset and constant they rely on passed in
//! from the Rust definitions (`offset_of!`, the enums' values). Included by
//! `domain::continuation` (`#[path]`), whose types it describes.

use super::Continuation;
use crate::domain::proxy::{Slot, MAX_SLOTS};
use crate::domain::rref::Account;
use crate::domain::slab::{self, Record};
use crate::sched::call_context::CallContext;
use core::mem::{offset_of, size_of};
use interfaces::abi::MOVING_CALL;
use interfaces::RpcError;

// The assembly reads two neighbouring fields with one `ldp`/`stp`: keep them neighbours.
const _: () = {
    assert!(offset_of!(Continuation, fp_lr) == 0 && offset_of!(Continuation, callee_saved) == 16);
    assert!(offset_of!(Continuation, ticks) == offset_of!(Continuation, kind) + 8);
    assert!(offset_of!(CallContext, current) == 0 && offset_of!(CallContext, continuations) == 8);
    assert!(offset_of!(Slot, table) == 0 && offset_of!(Slot, state) == 8);
    assert!(offset_of!(Slot, methods) == offset_of!(Slot, call_base) + 4);
    assert!(offset_of!(Slot, callee) == offset_of!(Slot, caller) + 4);
    assert!(offset_of!(Slot, x1_alone) == offset_of!(Slot, moving_base) + 4);
    assert!(offset_of!(Record, charge) == offset_of!(Record, owner) + 4);
    assert!(size_of::<Account>() == 1 << 4 && offset_of!(Account, limit) == 8);
    // The moving trampoline's fast path: a block's unit is its offset rotated right by 6
    // (a misaligned one becomes huge), and its record the unit times 16.
    assert!(slab::UNIT == 1 << 6 && size_of::<Record>() == 1 << 4);
    assert!(MOVING_CALL == 1 << 32);
    // `stp`/`ldp` with writeback push and pop the whole continuation (imm7, scaled by 8).
    assert!(size_of::<Continuation>() <= 504 && size_of::<Continuation>().is_multiple_of(16));
    assert!(size_of::<Slot>() == 1 << 6);
    assert!(MAX_SLOTS == 1 << 8);
};

/// Where the slot table starts, from the call context (kernel.ld places and checks it).
const SLOTS_FROM_CTX: usize = 64;
const _: () = assert!(size_of::<CallContext>() <= SLOTS_FROM_CTX);

core::arch::global_asm!(
    include_str!("continuation.s"),
    CONT_SIZE = const size_of::<Continuation>(),
    CONT_CALLER = const offset_of!(Continuation, caller),
    CONT_KIND = const offset_of!(Continuation, kind),
    CONT_TICKS = const offset_of!(Continuation, ticks),
    CTX_STATUS = const offset_of!(CallContext, status),
    CTX_CONTINUATIONS = const offset_of!(CallContext, continuations),
    SLOT_SHIFT = const 6,
    SLOTS_FROM_CTX = const SLOTS_FROM_CTX,
    SLOT_INDEX_BITS = const 8,
    SLOT_CALLER = const offset_of!(Slot, caller),
    SLOT_OWNER = const offset_of!(Slot, owner),
    SLOT_PAUSED = const offset_of!(Slot, paused),
    SLOT_CALLS = const offset_of!(Slot, calls),
    SLOT_CALL_BASE = const offset_of!(Slot, call_base),
    SLOT_MOVING_BASE = const offset_of!(Slot, moving_base),
    SLOT_X1_ALONE = const offset_of!(Slot, x1_alone),
    SLOT_MOVING = const offset_of!(Slot, moving),
    MOVING_CALL_BIT = const MOVING_CALL.trailing_zeros(),
    RECORDS_SIZE = const slab::RECORDS_SIZE,
    SLAB_UNITS = const slab::UNITS,
    UNIT_SHIFT = const 6,
    RECORD_SHIFT = const 4,
    REC_OWNER = const offset_of!(Record, owner),
    REC_SENT = const offset_of!(Record, sent),
    ACCOUNT_SHIFT = const 4,
    ERR_NO_ROOM = const RpcError::NoRoom as u32,
    ERR_UNAVAILABLE = const RpcError::Unavailable as u32,
    ERR_NOT_ALLOWED = const RpcError::NotAllowed as u32,
    ERR_STACK_EXHAUSTED = const RpcError::StackExhausted as u32,
    CTX_CALL_FLOOR = const offset_of!(CallContext, call_floor),
);

// The continuation the trampoline pushes fits in the margin its stack check adds.
const _: () = assert!(size_of::<Continuation>() <= interfaces::abi::CALL_ENTRY);
