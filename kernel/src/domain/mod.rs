//! Domains: separately compiled, signed components loaded from the initrd.
//!
//! * `image`: a verified envelope becomes mapped, relocated code and data (W^X);
//! * `manager`: the domain table, boot order, import/export wiring, device grants;
//! * `services`: the `KernelServices` table each domain's entry receives;
//! * `proxy` (here): the trusted call path between domains, with continuations so that a
//!   crashing callee is unwound to its caller's proxy, which returns `Err(Crashed)`;
//! * `rref`: the shared-heap registry;
//! * `kernel_iface`: the `Kernel` interface the kernel itself exports.

mod image;
mod kernel_iface;
pub mod manager;
mod proxy;
pub mod push;
mod rref;
mod services;
pub mod swap;

pub use manager::boot;

use crate::arch::exception::TrapFrame;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use interfaces::RpcError;

/// A domain's number; 0 is the kernel.
pub type DomainId = u32;
pub const KERNEL: DomainId = 0;

/// The running thread's domain state, read and written by the proxy trampoline
/// (continuation.s) and saved/restored per thread by the scheduler. Layout shared with asm.
#[repr(C)]
pub struct Ctx {
    current: AtomicU32,
    /// Outcome of the thread's last proxy call: 0, or an `RpcError` code.
    status: AtomicU32,
    /// Innermost live `Continuation` of this thread, or 0.
    continuations: AtomicUsize,
    /// Watchdog: the call seen at the last tick (its continuation and the callee's call
    /// count) and for how many consecutive ticks it has been running.
    watch_cont: AtomicUsize,
    watch_calls: AtomicU64,
    watch_ticks: AtomicU32,
}

#[no_mangle]
static QVQ_DOMAIN_CTX: Ctx = Ctx {
    current: AtomicU32::new(KERNEL),
    status: AtomicU32::new(0),
    continuations: AtomicUsize::new(0),
    watch_cont: AtomicUsize::new(0),
    watch_calls: AtomicU64::new(0),
    watch_ticks: AtomicU32::new(0),
};

/// Where the generated proxies read their call's outcome.
pub fn proxy_status_address() -> *const u32 {
    QVQ_DOMAIN_CTX.status.as_ptr()
}

/// The domain whose code the current thread is running.
pub fn current() -> DomainId {
    QVQ_DOMAIN_CTX.current.load(Ordering::Relaxed)
}

/// Per-thread domain state, kept by the scheduler.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    domain: DomainId,
    status: u32,
    continuations: usize,
    watch_cont: usize,
    watch_calls: u64,
    watch_ticks: u32,
}

pub fn save_context() -> Context {
    let c = &QVQ_DOMAIN_CTX;
    Context {
        domain: c.current.load(Ordering::Relaxed),
        status: c.status.load(Ordering::Relaxed),
        continuations: c.continuations.load(Ordering::Relaxed),
        watch_cont: c.watch_cont.load(Ordering::Relaxed),
        watch_calls: c.watch_calls.load(Ordering::Relaxed),
        watch_ticks: c.watch_ticks.load(Ordering::Relaxed),
    }
}

pub fn restore_context(x: Context) {
    let c = &QVQ_DOMAIN_CTX;
    c.current.store(x.domain, Ordering::Relaxed);
    c.status.store(x.status, Ordering::Relaxed);
    c.continuations.store(x.continuations, Ordering::Relaxed);
    c.watch_cont.store(x.watch_cont, Ordering::Relaxed);
    c.watch_calls.store(x.watch_calls, Ordering::Relaxed);
    c.watch_ticks.store(x.watch_ticks, Ordering::Relaxed);
}

/// Runs `f` as the kernel (domain 0), e.g. to log through the console domain while the
/// thread is inside another domain's call.
pub fn as_kernel<R>(f: impl FnOnce() -> R) -> R {
    let saved = QVQ_DOMAIN_CTX.current.load(Ordering::Relaxed);
    QVQ_DOMAIN_CTX.current.store(KERNEL, Ordering::Relaxed);
    let r = f();
    QVQ_DOMAIN_CTX.current.store(saved, Ordering::Relaxed);
    r
}

/// Where a call into a domain resumes if that domain crashes: a frame the proxy
/// trampoline (or `call_into`) pushes on the caller's stack. Layout shared with
/// continuation.s.
#[repr(C)]
struct Continuation {
    fp_lr: [u64; 2],
    callee_saved: [u64; 10],
    /// The caller's `Ctx` at the call: current domain, status, continuation list. (The
    /// domain called is the next inner continuation's `caller`, or the current domain.)
    caller: DomainId,
    _caller_status: u32,
    prev: usize,
    /// `KERNEL_ENTRY` when the kernel entered the domain (not a call: no CPU budget).
    kind: u64,
    _unused: u64,
}

const KERNEL_ENTRY: u64 = 0x5254;

const _: () = assert!(core::mem::size_of::<Continuation>() == 128);

/// How the kernel itself enters a domain: `invoke(data, table, state)`.
pub type InvokeFn = unsafe extern "C" fn(data: *mut u8, table: *const (), state: *const ());

extern "C" {
    fn qvq_call_with_continuation(domain: DomainId, invoke: InvokeFn, data: *mut u8, table: *const (), state: *const ()) -> u32;
    fn qvq_resume_continuation(cont: *const Continuation, code: u32) -> !;
    /// The proxy trampoline; domains reach it through `KernelServices::proxy_call`.
    pub fn qvq_proxy_call();
    /// Labels inside the trampoline: where it pushes the continuation frame, and just after
    /// it switched the thread's context to the callee.
    fn qvq_proxy_frame();
    fn qvq_proxy_entered();
}

/// Runs `invoke(data, table, state)` as domain `domain`, behind a continuation. Returns 0,
/// or the error code the call was unwound with if `domain` crashed during it.
pub fn call_into(domain: DomainId, invoke: InvokeFn, data: *mut u8, table: *const (), state: *const ()) -> u32 {
    // SAFETY: the trampoline keeps the continuation on this stack for the whole call and
    // unlinks it on return; `invoke` matches `data`.
    let code = unsafe { qvq_call_with_continuation(domain, invoke, data, table, state) };
    // An unwind set the proxy status for a proxy to read; here the code is returned
    // instead, and a stale status would fail this thread's next proxy call.
    QVQ_DOMAIN_CTX.status.store(0, Ordering::Relaxed);
    code
}

/// Finds the innermost continuation into `domain` on this thread and makes it the point
/// to resume: the thread's context becomes the caller's, with proxy status `code`.
fn take_continuation(domain: DomainId, code: u32) -> Option<*const Continuation> {
    let ctx = &QVQ_DOMAIN_CTX;
    let mut c = ctx.continuations.load(Ordering::Relaxed) as *const Continuation;
    let mut called = ctx.current.load(Ordering::Relaxed);
    // SAFETY: the list links live `Continuation`s on this thread's stack, innermost first.
    while let Some(cont) = unsafe { c.as_ref() } {
        if called == domain {
            ctx.continuations.store(cont.prev, Ordering::Relaxed);
            ctx.current.store(cont.caller, Ordering::Relaxed);
            ctx.status.store(code, Ordering::Relaxed);
            ctx.watch_ticks.store(0, Ordering::Relaxed);
            return Some(c);
        }
        called = cont.caller;
        c = cont.prev as *const Continuation;
    }
    None
}

/// Unwinds the current thread to the innermost call into `domain`, making it return
/// `code`. Must be called with no kernel lock held.
fn unwind(domain: DomainId, code: u32) -> ! {
    match take_continuation(domain, code) {
        // SAFETY: a live continuation of this thread; everything between it and here
        // belongs to the crashed domain.
        Some(c) => unsafe { qvq_resume_continuation(c, code) },
        None => {
            crate::warn!("domain {domain}: no call to unwind to; ending the thread");
            crate::sched::exit()
        }
    }
}

/// Makes the trap return into the innermost continuation into `domain` instead of where
/// it was taken. False if the thread never entered `domain`.
fn redirect(frame: &mut TrapFrame, domain: DomainId, code: u32) -> bool {
    let Some(c) = take_continuation(domain, code) else { return false };
    frame.elr = qvq_resume_continuation as *const () as u64;
    frame.x[0] = c as u64;
    frame.x[1] = code as u64;
    // EL1t with interrupts masked; the resume path re-enables them.
    frame.spsr = crate::arch::exception::SPSR_EL1T_IRQS_ON | (0b11 << 6);
    true
}

/// A synchronous exception or the watchdog caught domain code: the current domain
/// crashed. Returns false (a kernel fault) if the kernel itself was running.
pub fn crash_in_trap(frame: &mut TrapFrame, cause: &str) -> bool {
    let d = current();
    if d == KERNEL {
        return false;
    }
    manager::crashed(d, cause);
    redirect(frame, d, RpcError::Crashed as u32)
}

/// On every return to a thread: a thread about to run code of a dead domain (it was
/// preempted or blocked inside it) is unwound to its call into that domain instead; a
/// thread caught between the trampoline's slot check and its switch into the callee starts
/// the call over, so it never acts on a slot that changed meanwhile (a crash, a swap).
pub fn before_resume(frame: &mut TrapFrame) {
    let (start, frame_pushed, entered) = (
        qvq_proxy_call as *const () as u64,
        qvq_proxy_frame as *const () as u64,
        qvq_proxy_entered as *const () as u64,
    );
    if (start..entered).contains(&frame.elr) {
        if frame.elr > frame_pushed {
            frame.sp += core::mem::size_of::<Continuation>() as u64; // pop the unfinished frame
        }
        frame.elr = start;
        return;
    }
    let d = current();
    if d != KERNEL && manager::is_dead(d) {
        redirect(frame, d, RpcError::Crashed as u32);
    }
}

/// True if the thread whose saved context is `ctx` is running code of `d` or is in a
/// call chain that passes through `d` (it will be unwound before it runs again).
pub fn context_inside(ctx: &Context, d: DomainId) -> bool {
    if ctx.domain == d {
        return true;
    }
    let mut c = ctx.continuations as *const Continuation;
    // SAFETY: a switched-out thread's continuation list links live frames on its stack,
    // which nothing changes while it does not run (we hold the scheduler's view of it).
    while let Some(cont) = unsafe { c.as_ref() } {
        if cont.caller == d {
            return true;
        }
        c = cont.prev as *const Continuation;
    }
    false
}

/// The innermost continuation into `d` in the chain that starts at `(domain, head)`, and
/// whether it was a proxy call (not the kernel entering `d` for init or a thread).
fn innermost_into(domain: DomainId, head: usize, d: DomainId) -> Option<bool> {
    let mut called = domain;
    let mut c = head as *const Continuation;
    // SAFETY: the chain links live `Continuation`s on one thread's stack, innermost first:
    // the running thread's own, or a switched-out thread's, which nothing changes meanwhile.
    while let Some(cont) = unsafe { c.as_ref() } {
        if called == d {
            return Some(cont.kind != KERNEL_ENTRY);
        }
        called = cont.caller;
        c = cont.prev as *const Continuation;
    }
    None
}

/// True if the thread whose saved context is `ctx` is inside a *call* into `d` (a proxy
/// call still in flight), as opposed to running one of `d`'s own threads or not in `d`.
pub fn context_in_call_to(ctx: &Context, d: DomainId) -> bool {
    let mut called = ctx.domain;
    let mut c = ctx.continuations as *const Continuation;
    // SAFETY: as in `innermost_into`.
    while let Some(cont) = unsafe { c.as_ref() } {
        if called == d && cont.kind != KERNEL_ENTRY {
            return true;
        }
        called = cont.caller;
        c = cont.prev as *const Continuation;
    }
    false
}

/// The innermost domain on the running thread's call chain (outside the current one) that
/// is dead: the thread is serving a call for a caller that no longer exists.
pub fn dead_caller_on_chain() -> Option<DomainId> {
    let mut c = QVQ_DOMAIN_CTX.continuations.load(Ordering::Relaxed) as *const Continuation;
    // SAFETY: the running thread's own continuation list (live frames on its stack).
    while let Some(cont) = unsafe { c.as_ref() } {
        if cont.caller != KERNEL && manager::is_dead(cont.caller) {
            return Some(cont.caller);
        }
        c = cont.prev as *const Continuation;
    }
    None
}

/// True if the running thread's innermost entry into `d` was a proxy call (so unwinding to
/// it returns to a caller's proxy, which can make the call again).
pub fn running_in_call_to(d: DomainId) -> bool {
    let ctx = &QVQ_DOMAIN_CTX;
    innermost_into(ctx.current.load(Ordering::Relaxed), ctx.continuations.load(Ordering::Relaxed), d) == Some(true)
}

/// Ticks a call may run before the watchdog ends it (100 ms at 100 Hz).
pub const CALL_BUDGET_TICKS: u32 = 10;
static WATCHDOG_FIRED: AtomicBool = AtomicBool::new(false);

/// From the timer tick, for the interrupted thread: counts how long the same call into a
/// domain has been running; past the budget, flags it for `watchdog_fired`.
pub fn watchdog_tick() {
    let ctx = &QVQ_DOMAIN_CTX;
    let d = ctx.current.load(Ordering::Relaxed);
    let head = ctx.continuations.load(Ordering::Relaxed);
    // SAFETY: `head` is this thread's innermost live continuation, if any.
    let in_call = d != KERNEL && !manager::is_dead(d) && unsafe { (head as *const Continuation).as_ref() }.is_some_and(|c| c.kind != KERNEL_ENTRY);
    if !in_call {
        ctx.watch_ticks.store(0, Ordering::Relaxed);
        return;
    }
    // The same call if neither the continuation nor the callee's call count changed.
    let calls = proxy::calls_served(d);
    if ctx.watch_cont.load(Ordering::Relaxed) == head && ctx.watch_calls.load(Ordering::Relaxed) == calls {
        let t = ctx.watch_ticks.load(Ordering::Relaxed) + 1;
        ctx.watch_ticks.store(t, Ordering::Relaxed);
        if t > CALL_BUDGET_TICKS {
            WATCHDOG_FIRED.store(true, Ordering::Relaxed);
        }
    } else {
        ctx.watch_cont.store(head, Ordering::Relaxed);
        ctx.watch_calls.store(calls, Ordering::Relaxed);
        ctx.watch_ticks.store(1, Ordering::Relaxed);
    }
}

/// True (once) if the watchdog flagged the interrupted thread's call.
pub fn watchdog_fired() -> bool {
    // Plain load and store: called from the IRQ path with interrupts masked.
    let fired = WATCHDOG_FIRED.load(Ordering::Relaxed);
    WATCHDOG_FIRED.store(false, Ordering::Relaxed);
    fired
}
