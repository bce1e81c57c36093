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
use interfaces::InvokeFn;

/// A domain's number; 0 is the kernel.
pub type DomainId = u32;
pub const KERNEL: DomainId = 0;

// The running thread's domain context. Plain loads/stores only; the scheduler saves and
// restores them on every switch (see `save_context`).
static CURRENT: AtomicU32 = AtomicU32::new(KERNEL);
static CONT_HEAD: AtomicUsize = AtomicUsize::new(0);

/// The domain whose code the current thread is running.
pub fn current() -> DomainId {
    CURRENT.load(Ordering::Relaxed)
}

/// Per-thread domain state, kept by the scheduler.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    domain: DomainId,
    continuations: usize,
}

impl Context {
    pub fn in_domain(domain: DomainId) -> Self {
        Context { domain, continuations: 0 }
    }
    pub fn domain(&self) -> DomainId {
        self.domain
    }
}

pub fn save_context() -> Context {
    Context { domain: CURRENT.load(Ordering::Relaxed), continuations: CONT_HEAD.load(Ordering::Relaxed) }
}

pub fn restore_context(c: Context) {
    CURRENT.store(c.domain, Ordering::Relaxed);
    CONT_HEAD.store(c.continuations, Ordering::Relaxed);
}

/// Runs `f` as the kernel (domain 0), e.g. to log through the console domain while the
/// thread is inside another domain's call.
pub fn as_kernel<R>(f: impl FnOnce() -> R) -> R {
    let saved = CURRENT.load(Ordering::Relaxed);
    CURRENT.store(KERNEL, Ordering::Relaxed);
    let r = f();
    CURRENT.store(saved, Ordering::Relaxed);
    r
}

/// Where a call into `domain` resumes if `domain` crashes. Lives on the caller's stack for
/// the duration of the call; the layout up to `daif` is shared with continuation.s.
#[repr(C)]
struct Continuation {
    regs: [u64; 12],
    sp: u64,
    daif: u64,
    domain: DomainId,
    caller: DomainId,
    prev: usize,
}

extern "C" {
    fn qvq_call_with_continuation(cont: *mut Continuation, invoke: InvokeFn, data: *mut u8, table: *const (), state: *const ()) -> u32;
    fn qvq_resume_continuation(cont: *const Continuation, code: u32) -> !;
}

/// Runs `invoke(data, table, state)` as domain `domain`. Returns 0, or the error code the
/// call was unwound with if `domain` crashed during it.
#[inline(always)]
pub fn call_into(domain: DomainId, invoke: InvokeFn, data: *mut u8, table: *const (), state: *const ()) -> u32 {
    let caller = CURRENT.load(Ordering::Relaxed);
    let prev = CONT_HEAD.load(Ordering::Relaxed);
    // The register part is filled by qvq_call_with_continuation before anything reads it.
    let mut cont = core::mem::MaybeUninit::<Continuation>::uninit();
    let c = cont.as_mut_ptr();
    // SAFETY: writes to fields of our own uninitialised local through a raw pointer.
    unsafe {
        core::ptr::addr_of_mut!((*c).domain).write(domain);
        core::ptr::addr_of_mut!((*c).caller).write(caller);
        core::ptr::addr_of_mut!((*c).prev).write(prev);
    }
    CONT_HEAD.store(c as usize, Ordering::Relaxed);
    CURRENT.store(domain, Ordering::Relaxed);
    // SAFETY: `cont` outlives the call (it is unlinked below, and a resume returns here);
    // `invoke` is either kernel code or a proxy's `invoke` matched to `data`.
    let code = unsafe { qvq_call_with_continuation(c, invoke, data, table, state) };
    CONT_HEAD.store(prev, Ordering::Relaxed);
    CURRENT.store(caller, Ordering::Relaxed);
    code
}

/// Unwinds the current thread to the innermost call into `domain`, making it return
/// `code`. Must be called with no kernel lock held. If the thread never entered `domain`
/// through a call (it cannot happen: every entry goes through `call_into`), ends it.
fn unwind(domain: DomainId, code: u32) -> ! {
    let mut c = CONT_HEAD.load(Ordering::Relaxed) as *const Continuation;
    // SAFETY: the list links live `Continuation`s on this thread's stack, innermost first.
    while let Some(cont) = unsafe { c.as_ref() } {
        if cont.domain == domain {
            CONT_HEAD.store(cont.prev, Ordering::Relaxed);
            CURRENT.store(cont.caller, Ordering::Relaxed);
            // SAFETY: `cont` is live and was filled by qvq_call_with_continuation on this
            // thread; everything between it and here belongs to the crashed domain.
            unsafe { qvq_resume_continuation(cont, code) }
        }
        c = cont.prev as *const Continuation;
    }
    crate::warn!("domain {domain}: no call to unwind to; ending the thread");
    crate::sched::exit()
}
