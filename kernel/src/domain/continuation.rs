//! Continuations: where a call into a domain resumes if that domain crashes. The proxy
//! trampoline (and `call_into`, the kernel's own way in) pushes one on the caller's stack
//! per call and links it into the thread's call context; this file walks those chains.

#[path = "../arch/aarch64/trampoline.rs"]
mod trampoline;

use super::registry::is_dead;
use super::{DomainId, KERNEL};
use crate::sched::call_context::{self, SavedContext};
use core::sync::atomic::Ordering::Relaxed;

/// A frame the trampoline pushes on the caller's stack for the duration of a call. Layout
/// shared with continuation.s (through `trampoline.rs`).
#[repr(C)]
pub(super) struct Continuation {
    fp_lr: [u64; 2],
    callee_saved: [u64; 10],
    /// The caller's call context at the call: current domain, status, continuation list.
    /// (The domain called is the next inner continuation's `caller`, or the current one.)
    caller: DomainId,
    _caller_status: u32,
    prev: usize,
    /// How the domain was entered: `EntryKind::Call` (0, a proxy call), or by the kernel.
    kind: u64,
    /// The CPU budget: timer ticks that found the thread running inside this call (itself,
    /// what it called, or kernel services on its behalf) since the thread last waited (low
    /// 32 bits), and the thread's wait count when they were counted (high 32 bits). Zeroed
    /// when the frame is pushed.
    ticks: u64,
}

/// How a domain was entered (`Continuation::kind`).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum EntryKind {
    /// A proxy call from another domain: a call in flight, under the CPU budget. (The
    /// trampoline does not write it: any value but the two below means a call.)
    #[allow(dead_code)]
    Call = 0,
    /// The kernel runs one of the domain's threads: no budget (threads may run forever).
    Thread = 0x5254,
    /// The kernel calls the domain (its initialisation, its state hooks): under the CPU
    /// budget like a call, so a looping `init` is crashed instead of hanging boot or a swap.
    Kernel = 0x5255,
}

const _: () = assert!(core::mem::size_of::<Continuation>() == 128);

impl Continuation {
    /// A proxy call (the trampoline leaves `kind` as it finds it, so anything but the two
    /// kernel kinds is a call).
    fn is_call(&self) -> bool {
        self.kind != EntryKind::Thread as u64 && self.kind != EntryKind::Kernel as u64
    }
}

/// How the kernel itself enters a domain: `invoke(data, table, state)`.
pub type InvokeFn = unsafe extern "C" fn(data: *mut u8, table: *const (), state: *const ());

extern "C" {
    fn qvq_call_with_continuation(domain: DomainId, invoke: InvokeFn, data: *mut u8, table: *const (), state: *const (), kind: u64) -> u32;
    fn qvq_resume_continuation(cont: *const Continuation, code: u32) -> !;
    /// The proxy trampoline; domains reach it through `KernelServices::proxy_call`.
    pub fn qvq_proxy_call();
    /// The trampoline for methods with `RRef` arguments (`proxy_call_moving`). It runs with
    /// IRQs masked up to its switch into the callee, so it needs no window of its own.
    pub fn qvq_proxy_call_moving();
    /// Labels inside the trampoline: where it pushes the continuation frame, and just after
    /// it switched the thread's context to the callee.
    fn qvq_proxy_frame();
    fn qvq_proxy_entered();
}

/// The trampoline's address range that must act as one step: from its start to its switch
/// into the callee; and where in it the continuation frame is pushed.
pub(super) fn trampoline_window() -> (u64, u64, u64) {
    (
        qvq_proxy_call as *const () as u64,
        qvq_proxy_frame as *const () as u64,
        qvq_proxy_entered as *const () as u64,
    )
}

/// Resumes the continuation `c` with `code`: the call that pushed it returns `code`.
///
/// # Safety
/// `c` must be a live continuation of the running thread, already unlinked from its chain
/// (`take_innermost_into`); everything on the stack below it is abandoned.
pub(super) unsafe fn resume(c: *const Continuation, code: u32) -> ! {
    // SAFETY: as the caller promises.
    unsafe { qvq_resume_continuation(c, code) }
}

/// Address of the resume routine, for a trap frame to return into.
pub(super) fn resume_address() -> u64 {
    qvq_resume_continuation as *const () as u64
}

/// Size of the frame the trampoline pushes.
pub(super) const FRAME_SIZE: u64 = core::mem::size_of::<Continuation>() as u64;

/// Runs `invoke(data, table, state)` as domain `domain`, behind a continuation of `kind`.
/// Returns 0, or the error code the call was unwound with if `domain` crashed during it.
pub fn call_into(domain: DomainId, kind: EntryKind, invoke: InvokeFn, data: *mut u8, table: *const (), state: *const ()) -> u32 {
    // The kernel's own calls (init, state hooks) also have a time limit (watchdog.rs).
    let deadline = (kind == EntryKind::Kernel).then(|| super::watchdog::kernel_call_begins(domain)).flatten();
    // SAFETY: the trampoline keeps the continuation on this stack for the whole call and
    // unlinks it on return; `invoke` matches `data`.
    let code = unsafe { qvq_call_with_continuation(domain, invoke, data, table, state, kind as u64) };
    super::watchdog::kernel_call_ends(deadline);
    // An unwind set the proxy status for a proxy to read; here the code is returned
    // instead, and a stale status would fail this thread's next proxy call.
    call_context::live().status.store(0, Relaxed);
    code
}

/// Where the generated proxies read their call's outcome.
pub fn proxy_status_address() -> *const u32 {
    call_context::live().status.as_ptr()
}

/// Runs `f` as the kernel (domain 0), e.g. to log through the console domain while the
/// thread is inside another domain's call.
pub fn as_kernel<R>(f: impl FnOnce() -> R) -> R {
    let ctx = call_context::live();
    let saved = ctx.current.load(Relaxed);
    ctx.current.store(KERNEL, Relaxed);
    let r = f();
    ctx.current.store(saved, Relaxed);
    r
}

/// The continuations of the chain that starts at `head`, innermost first, each with the
/// domain it called (the chain's innermost call went to `current`).
fn chain(current: DomainId, head: usize) -> impl Iterator<Item = (DomainId, &'static Continuation)> {
    let mut called = current;
    let mut c = head as *const Continuation;
    core::iter::from_fn(move || {
        // SAFETY: a chain links live `Continuation`s on one thread's stack, innermost
        // first: the running thread's own, or a switched-out thread's, which nothing
        // changes while it does not run. Each stays valid while the walk runs.
        let cont: &'static Continuation = unsafe { c.as_ref()? };
        let item = (called, cont);
        called = cont.caller;
        c = cont.prev as *const Continuation;
        Some(item)
    })
}

/// Finds the innermost continuation into `domain` on this thread and makes it the point
/// to resume: the thread's context becomes the caller's, with proxy status `code`.
pub(super) fn take_innermost_into(domain: DomainId, code: u32) -> Option<*const Continuation> {
    let ctx = call_context::live();
    let (_, cont) = chain(ctx.current.load(Relaxed), ctx.continuations.load(Relaxed)).find(|(called, _)| *called == domain)?;
    ctx.continuations.store(cont.prev, Relaxed);
    ctx.current.store(cont.caller, Relaxed);
    ctx.status.store(code, Relaxed);
    Some(cont as *const Continuation)
}

/// True if the thread whose saved context is `ctx` is running code of `d` or is in a
/// call chain that passes through `d` (it will be unwound before it runs again).
pub fn context_inside(ctx: &SavedContext, d: DomainId) -> bool {
    ctx.domain == d || chain(ctx.domain, ctx.continuations).any(|(_, c)| c.caller == d)
}

/// True if the thread whose saved context is `ctx` is inside a *call* into `d` (a proxy
/// call still in flight), as opposed to running one of `d`'s own threads or not in `d`.
pub fn context_in_call_to(ctx: &SavedContext, d: DomainId) -> bool {
    chain(ctx.domain, ctx.continuations).any(|(called, c)| called == d && c.is_call())
}

/// The innermost domain on the running thread's call chain (outside the current one) that
/// is dead: the thread is serving a call for a caller that no longer exists.
pub fn dead_caller_on_chain() -> Option<DomainId> {
    let ctx = call_context::live();
    chain(ctx.current.load(Relaxed), ctx.continuations.load(Relaxed))
        .map(|(_, c)| c.caller)
        .find(|caller| *caller != KERNEL && is_dead(*caller))
}

/// True if the running thread's innermost entry into `d` was a proxy call (so unwinding to
/// it returns to a caller's proxy, which can make the call again).
pub fn running_in_call_to(d: DomainId) -> bool {
    let ctx = call_context::live();
    chain(ctx.current.load(Relaxed), ctx.continuations.load(Relaxed))
        .find(|(called, _)| *called == d)
        .is_some_and(|(_, c)| c.is_call())
}

/// The domain that made the call the running thread is serving now (the caller recorded
/// in its innermost continuation), if it is inside one.
pub(super) fn caller_of_current_call() -> Option<DomainId> {
    let ctx = call_context::live();
    chain(ctx.current.load(Relaxed), ctx.continuations.load(Relaxed)).next().map(|(_, c)| c.caller)
}

/// Counts one tick against every call on the running thread's chain that is under the CPU
/// budget (proxy calls and the kernel's calls of a domain; not domain threads). When one is
/// past `budget` ticks, returns the domain to blame: the innermost call within
/// `BLAME_SLACK` ticks of the budget — so a callee that loops is blamed, not its caller
/// whose call started a tick earlier, while a caller that loops over short calls (each
/// fresh) is blamed itself.
pub(super) fn charge_tick(budget: u64) -> Option<DomainId> {
    const BLAME_SLACK: u64 = 2;
    let ctx = call_context::live();
    let (current, head) = (ctx.current.load(Relaxed), ctx.continuations.load(Relaxed));
    let budgeted = |c: &Continuation| c.kind != EntryKind::Thread as u64;
    let set_ticks = |c: &Continuation, ticks: u64| {
        // SAFETY: a live continuation frame of the interrupted thread (the tick runs with
        // interrupts masked on its behalf); `ticks` is the kernel's own field in it, which
        // no domain code can reach.
        unsafe { core::ptr::addr_of!(c.ticks).cast_mut().write_volatile(ticks) }
    };
    let mut over = false;
    // The blamed call: (domain it entered, its frame's address, its ticks).
    let mut blame: Option<(DomainId, usize, u64)> = None;
    // Ticks counted before the thread last blocked or slept do not count: a call that waits
    // (for input, say, woken now and then) is not running past its budget.
    let waits = ctx.waits.load(Relaxed) as u64;
    for (called, c) in chain(current, head).filter(|(_, c)| budgeted(c)) {
        let before = if c.ticks >> 32 == waits { c.ticks & 0xffff_ffff } else { 0 };
        let ticks = before + 1;
        set_ticks(c, waits << 32 | ticks);
        over |= ticks > budget;
        if blame.is_none() && called != KERNEL && ticks + BLAME_SLACK > budget {
            blame = Some((called, c as *const Continuation as usize, ticks));
        }
    }
    let (d, frame, blamed_ticks) = blame.filter(|_| over)?;
    // End it only while the thread runs the blamed domain's own code (or a kernel service
    // for it): unwinding from inside another domain's call would cut that call short and
    // could leave that domain's state (a lock it holds) half-changed. Until then its ticks
    // keep counting.
    if d != current {
        return None;
    }
    // The calls around the blamed one are not charged for its time: that was its fault, and
    // they carry on once it is ended.
    let mut outside = false;
    for (_, c) in chain(current, head).filter(|(_, c)| budgeted(c)) {
        if outside {
            set_ticks(c, waits << 32 | (c.ticks & 0xffff_ffff).saturating_sub(blamed_ticks));
        }
        outside |= c as *const Continuation as usize == frame;
    }
    Some(d)
}
