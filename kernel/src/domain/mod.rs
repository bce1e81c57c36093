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
mod proxy;
pub mod manager;
mod rref;
mod services;

pub use manager::boot;

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

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
}

#[no_mangle]
static QVQ_DOMAIN_CTX: Ctx = Ctx { current: AtomicU32::new(KERNEL), status: AtomicU32::new(0), continuations: AtomicUsize::new(0) };

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
}

pub fn save_context() -> Context {
    let c = &QVQ_DOMAIN_CTX;
    Context { domain: c.current.load(Ordering::Relaxed), status: c.status.load(Ordering::Relaxed), continuations: c.continuations.load(Ordering::Relaxed) }
}

pub fn restore_context(x: Context) {
    let c = &QVQ_DOMAIN_CTX;
    c.current.store(x.domain, Ordering::Relaxed);
    c.status.store(x.status, Ordering::Relaxed);
    c.continuations.store(x.continuations, Ordering::Relaxed);
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
    _unused: [u64; 2],
}

const _: () = assert!(core::mem::size_of::<Continuation>() == 128);

/// How the kernel itself enters a domain: `invoke(data, table, state)`.
pub type InvokeFn = unsafe extern "C" fn(data: *mut u8, table: *const (), state: *const ());

extern "C" {
    fn qvq_call_with_continuation(domain: DomainId, invoke: InvokeFn, data: *mut u8, table: *const (), state: *const ()) -> u32;
    fn qvq_resume_continuation(cont: *const Continuation, code: u32) -> !;
    /// The proxy trampoline; domains reach it through `KernelServices::proxy_call`.
    pub fn qvq_proxy_call();
}

/// Runs `invoke(data, table, state)` as domain `domain`, behind a continuation. Returns 0,
/// or the error code the call was unwound with if `domain` crashed during it.
pub fn call_into(domain: DomainId, invoke: InvokeFn, data: *mut u8, table: *const (), state: *const ()) -> u32 {
    // SAFETY: the trampoline keeps the continuation on this stack for the whole call and
    // unlinks it on return; `invoke` matches `data`.
    unsafe { qvq_call_with_continuation(domain, invoke, data, table, state) }
}

/// Unwinds the current thread to the innermost call into `domain`, making it return
/// `code`. Must be called with no kernel lock held. If the thread never entered `domain`
/// through a call (it cannot happen: every entry goes through `call_into`), ends it.
fn unwind(domain: DomainId, code: u32) -> ! {
    let ctx = &QVQ_DOMAIN_CTX;
    let mut c = ctx.continuations.load(Ordering::Relaxed) as *const Continuation;
    let mut called = ctx.current.load(Ordering::Relaxed);
    // SAFETY: the list links live `Continuation`s on this thread's stack, innermost first.
    while let Some(cont) = unsafe { c.as_ref() } {
        if called == domain {
            ctx.continuations.store(cont.prev, Ordering::Relaxed);
            ctx.current.store(cont.caller, Ordering::Relaxed);
            ctx.status.store(code, Ordering::Relaxed);
            // SAFETY: `cont` is live and was filled by qvq_call_with_continuation on this
            // thread; everything between it and here belongs to the crashed domain.
            unsafe { qvq_resume_continuation(cont, code) }
        }
        called = cont.caller;
        c = cont.prev as *const Continuation;
    }
    crate::warn!("domain {domain}: no call to unwind to; ending the thread");
    crate::sched::exit()
}
