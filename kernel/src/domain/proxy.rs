//! The proxy's slot table, read by the trampoline in continuation.s without any lock.
//! Entries are written only by the manager (under its lock): when a domain imports an
//! interface, and when a callee stops (then its slots go dead, so calls fail at once).
//!
//! Calls in flight into a domain are not counted on the call path: they are exactly the
//! live continuations into it.
//!
//! A hot swap *pauses* the slots into the old version: the trampoline's refusal path sees
//! `paused` and parks the caller in `qvq_proxy_gate_wait` until the slots are re-pointed to
//! the new version and resumed; then the call is made again from the start. Nothing of
//! this is on the fast path. `calls` is a statistic bumped without masking interrupts:
//! if a caller is preempted between its load and store by another caller of the same slot,
//! one call goes uncounted.

use super::DomainId;
use crate::sched::{ThreadId, WaitQueue};
use crate::sync::IrqLock;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use interfaces::RpcError;

pub const MAX_SLOTS: usize = 256;

/// Layout shared with continuation.s (its offsets are passed in by `trampoline.rs`).
#[repr(C, align(64))]
pub struct Slot {
    pub(super) table: AtomicUsize,
    pub(super) state: AtomicUsize,
    /// Who may call through the slot now: `owner` while the callee runs, else NOBODY.
    pub(super) caller: AtomicU32,
    /// Right after `caller`: the trampoline loads both with one instruction.
    pub(super) callee: AtomicU32,
    pub(super) owner: AtomicU32,
    /// Non-zero while a hot swap holds callers at this slot.
    pub(super) paused: AtomicU32,
    pub(super) calls: AtomicU64,
    /// The call word a call through this slot starts with: the tag of the interface the
    /// slot was made for (the first two bytes of its hash) << 16 | the slot's index << 8;
    /// and the interface's number of methods. The trampoline subtracts the first from the
    /// call word and refuses what is not below the second: another tag, or a method index
    /// past the table.
    pub(super) call_base: AtomicU32,
    /// The methods that move nothing (the first entries of the table): the plain
    /// trampoline's range.
    pub(super) methods: AtomicU32,
    /// The moving trampoline's range: `call_base` + the first method that moves an `RRef`;
    /// how many of those move x1 only (its fast path: the trampoline checks the two with
    /// one `ldp`), and how many there are in all.
    pub(super) moving_base: AtomicU32,
    pub(super) x1_alone: AtomicU32,
    pub(super) moving: AtomicU32,
}

const NOBODY: u32 = u32::MAX;

/// The trampoline finds it 64 bytes after the call context (the linker script's
/// `.data.qvq_hot`).
#[no_mangle]
#[link_section = ".data.qvq_hot.slots"]
static QVQ_SLOTS: [Slot; MAX_SLOTS] = [const {
    Slot {
        table: AtomicUsize::new(0),
        state: AtomicUsize::new(0),
        caller: AtomicU32::new(NOBODY),
        callee: AtomicU32::new(NOBODY),
        owner: AtomicU32::new(NOBODY),
        paused: AtomicU32::new(0),
        calls: AtomicU64::new(0),
        call_base: AtomicU32::new(0),
        methods: AtomicU32::new(0),
        moving_base: AtomicU32::new(0),
        x1_alone: AtomicU32::new(0),
        moving: AtomicU32::new(0),
    }
}; MAX_SLOTS];

/// What a slot dispatches through, kept alive while it does: the kernel's copy of the
/// callee's table (the slot's `table` points into it) and each method's moves (the moving
/// trampoline's slow path reads the registers to move here).
struct Kept {
    /// Held, not read: the trampoline reads the table through the slot's pointer.
    _table: Arc<[usize]>,
    moves: Arc<[u8]>,
}

static SLOT_KEPT: IrqLock<[Option<Kept>; MAX_SLOTS]> = IrqLock::new("slot tables", [const { None }; MAX_SLOTS]);

/// One past the highest slot index ever filled: the registry hands out the lowest free
/// index, so the slots in use sit below it and the manager's scans stop there.
static SLOTS_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// The slots that may be in use (every other one is empty).
fn in_use() -> &'static [Slot] {
    &QVQ_SLOTS[..SLOTS_IN_USE.load(Relaxed).min(MAX_SLOTS)]
}

/// What a slot dispatches to: the callee's table (with its number of methods, each
/// method's moves, and the interface's tag) and state.
#[derive(Clone)]
pub struct Target {
    pub callee: DomainId,
    /// The kernel's copy of the callee's table.
    pub table: Arc<[usize]>,
    pub state: usize,
    pub tag: u32,
    pub methods: u32,
    /// Grouped as `interfaces::abi::dispatch_groups` says (`services::export` checked).
    pub moves: Arc<[u8]>,
}

/// The tag of the interface with `hash`, as the generated proxies pass it (16 bits).
pub fn tag_of(hash: &[u8; 32]) -> u32 {
    hash[0] as u32 | (hash[1] as u32) << 8
}

/// Fills slot `index` for `owner` (the registry only), and opens it. The trampoline's
/// range check needs at most 256 methods: exports are refused past 255 (`services`).
pub fn set_slot(index: usize, owner: DomainId, t: Target) -> bool {
    let Some(s) = QVQ_SLOTS.get(index) else { return false };
    let Some((plain, x1_alone)) = interfaces::abi::dispatch_groups(&t.moves) else {
        return false;
    };
    SLOTS_IN_USE.fetch_max(index + 1, Relaxed);
    s.table.store(t.table.as_ptr() as usize, Relaxed);
    s.state.store(t.state, Relaxed);
    let call_base = t.tag << 16 | (index as u32) << 8;
    s.call_base.store(call_base, Relaxed);
    s.methods.store(plain as u32, Relaxed);
    s.moving_base.store(call_base + plain as u32, Relaxed);
    s.moving.store(t.methods - plain as u32, Relaxed);
    s.x1_alone.store(x1_alone as u32, Relaxed);
    let previous = SLOT_KEPT.lock()[index].replace(Kept {
        _table: t.table.clone(),
        moves: t.moves.clone(),
    });
    // The table it pointed to before goes once no call can be dispatching through it: an
    // `Arc` of the export keeps it while the export lives.
    drop(previous);
    s.callee.store(t.callee, Relaxed);
    s.owner.store(owner, Relaxed);
    s.caller.store(owner, Relaxed);
    true
}

/// The callee of `owner`'s slot `index`, if the slot is theirs.
#[cfg_attr(not(feature = "selftest"), allow(dead_code))] // used by the selftests
pub fn callee_of(owner: DomainId, index: u32) -> Option<DomainId> {
    let s = QVQ_SLOTS.get(index as usize)?;
    (s.owner.load(Relaxed) == owner).then(|| s.callee.load(Relaxed))
}

/// Makes every slot into `callee` accept (or refuse) calls (manager only).
pub fn set_callee_live(callee: DomainId, live: bool) {
    for s in in_use().iter().filter(|s| s.callee.load(Relaxed) == callee) {
        s.caller.store(if live { s.owner.load(Relaxed) } else { NOBODY }, Relaxed);
    }
}

/// Calls served by `d` through its slots.
pub fn calls_served(d: DomainId) -> u64 {
    in_use().iter().filter(|s| s.callee.load(Relaxed) == d).map(|s| s.calls.load(Relaxed)).sum()
}

/// Frees slot `index` (its owner is gone): nobody may call through it.
pub fn clear_slot(index: usize) {
    if let Some(s) = QVQ_SLOTS.get(index) {
        s.caller.store(NOBODY, Relaxed);
        s.owner.store(NOBODY, Relaxed);
        s.callee.store(NOBODY, Relaxed);
        s.paused.store(0, Relaxed);
        s.calls.store(0, Relaxed);
        s.methods.store(0, Relaxed);
        s.moving.store(0, Relaxed);
        s.x1_alone.store(0, Relaxed);
        let kept = SLOT_KEPT.lock()[index].take();
        drop(kept);
    }
}

/// Callers parked by a hot swap, and the one thread doing the swap (it must never park).
static GATE: WaitQueue = WaitQueue::new();
static SWAPPER: IrqLock<Option<ThreadId>> = IrqLock::new("swapper", None);

/// Holds every new call into `callee` at its slots (the swap window opens). Returns how
/// many slots were paused. `swapper` is the thread doing it.
pub fn pause_callee(callee: DomainId, swapper: Option<ThreadId>) -> usize {
    *SWAPPER.lock() = swapper;
    let mut n = 0;
    for s in in_use().iter().filter(|s| s.callee.load(Relaxed) == callee) {
        s.paused.store(1, Relaxed);
        s.caller.store(NOBODY, Relaxed);
        n += 1;
    }
    n
}

/// Lets calls through every paused slot into `callee` again (re-pointed or not) and wakes
/// the callers parked at them (the swap window closes).
/// `live` false leaves the slots refusing calls (the callee died meanwhile).
pub fn resume_callee(callee: DomainId, live: bool) {
    for s in in_use().iter().filter(|s| s.callee.load(Relaxed) == callee && s.paused.load(Relaxed) != 0) {
        s.caller.store(if live { s.owner.load(Relaxed) } else { NOBODY }, Relaxed);
        s.paused.store(0, Relaxed);
    }
    *SWAPPER.lock() = None;
    GATE.wake_all();
}

/// Called by the trampoline's refusal path when the caller owns a paused slot: parks the
/// caller until the slot is resumed, then returns 1 (the trampoline makes the call again).
/// Returns 0 at once for the swapping thread itself (its call is refused as unavailable:
/// the kernel then writes its own log lines straight to the UART).
#[no_mangle]
extern "C" fn qvq_proxy_gate_wait(index: u32) -> u32 {
    let me = crate::sched::current();
    if me.is_some() && *SWAPPER.lock() == me {
        return 0;
    }
    let Some(s) = QVQ_SLOTS.get(index as usize) else { return 0 };
    GATE.wait_until(|| (s.paused.load(Relaxed) == 0).then_some(()));
    1
}

/// The moving trampoline's slow path (continuation.s), with IRQs masked, once its checks
/// passed: moves the `RRef` arguments of `method` (its table index) of slot `index` from
/// `caller` to `callee`, the arguments being x1..x6 in `args`; `known` is the method's
/// moves when the trampoline knows them (x1 alone), else 0. Returns 0, or the `RpcError`
/// code the call is refused with (nothing moved then).
#[no_mangle]
extern "C" fn qvq_proxy_move_arguments(index: u32, method: u32, caller: DomainId, callee: DomainId, args: &[usize; 6], known: u32) -> u32 {
    let moves = match known {
        0 => SLOT_KEPT
            .lock()
            .get(index as usize)
            .and_then(|k| k.as_ref()?.moves.get(method as usize).copied()),
        _ => Some(1),
    };
    let Some(moves) = moves else { return RpcError::NotAllowed as u32 };
    let mut blocks = [0usize; 6];
    let mut n = 0;
    for (i, a) in args.iter().enumerate() {
        if moves & 1 << i != 0 {
            blocks[n] = *a;
            n += 1;
        }
    }
    match super::rref::move_arguments(caller, callee, &blocks[..n]) {
        Ok(()) => 0,
        Err(e) => e as u32,
    }
}
