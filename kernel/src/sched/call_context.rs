//! The running thread's call context: which domain's code it runs, the outcome of its last
//! proxy call, the head of its continuation chain, and where its stack ends. The proxy
//! trampoline (arch/aarch64/continuation.s) reads and writes the live copy without a lock; the scheduler saves it with each thread and restores it on a switch.
//! Only the domain layer interprets it: here it is a register file.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};

/// A domain's number; 0 is the kernel.
pub type DomainId = u32;
/// The kernel's own domain number.
pub const KERNEL: DomainId = 0;

/// The live call context of the running thread. Layout shared with continuation.s (its
/// offsets are passed to the assembly from `offset_of!`).
#[repr(C)]
pub struct CallContext {
    pub current: AtomicU32,
    /// Outcome of the thread's last proxy call: 0, or an `RpcError` code.
    pub status: AtomicU32,
    /// Innermost live continuation of this thread (an address on its stack), or 0.
    pub continuations: AtomicUsize,
    /// The lowest usable address of this thread's stack (just above its guard page), or 0
    /// before threads run: callees and kernel services refuse to start with too little
    /// stack left above it.
    pub stack_limit: AtomicUsize,
    /// The lowest stack pointer a proxy call may start from: `stack_limit` plus the
    /// `CALL_STACK` a callee is guaranteed and the trampoline's `CALL_ENTRY` (0 while the
    /// limit is unknown). The trampoline compares the stack pointer with it.
    pub call_floor: AtomicUsize,
    /// How many times this thread has blocked or slept: a call's CPU budget counts only
    /// the time since the thread last waited (a call that waits is not hogging the CPU).
    pub waits: AtomicU32,
}

/// The one live context (one core). The symbol name is the assembly's; the linker script
/// puts the proxy's slot table right after it (`.data.qvq_hot`).
#[no_mangle]
#[link_section = ".data.qvq_hot.ctx"]
pub static QVQ_DOMAIN_CTX: CallContext = CallContext {
    current: AtomicU32::new(KERNEL),
    status: AtomicU32::new(0),
    continuations: AtomicUsize::new(0),
    stack_limit: AtomicUsize::new(0),
    call_floor: AtomicUsize::new(0),
    waits: AtomicU32::new(0),
};

/// A switched-out thread's copy of its call context.
#[derive(Clone, Copy, Debug, Default)]
pub struct SavedContext {
    pub domain: DomainId,
    pub status: u32,
    pub continuations: usize,
    pub stack_limit: usize,
    pub waits: u32,
}

/// The running thread's context.
pub fn live() -> &'static CallContext {
    &QVQ_DOMAIN_CTX
}

/// The domain whose code the current thread is running.
pub fn current_domain() -> DomainId {
    QVQ_DOMAIN_CTX.current.load(Relaxed)
}

pub fn save() -> SavedContext {
    let c = &QVQ_DOMAIN_CTX;
    SavedContext {
        domain: c.current.load(Relaxed),
        status: c.status.load(Relaxed),
        continuations: c.continuations.load(Relaxed),
        stack_limit: c.stack_limit.load(Relaxed),
        waits: c.waits.load(Relaxed),
    }
}

pub fn restore(x: SavedContext) {
    let c = &QVQ_DOMAIN_CTX;
    c.current.store(x.domain, Relaxed);
    c.status.store(x.status, Relaxed);
    c.continuations.store(x.continuations, Relaxed);
    c.stack_limit.store(x.stack_limit, Relaxed);
    let floor = match x.stack_limit {
        0 => 0,
        limit => limit + interfaces::abi::CALL_STACK + interfaces::abi::CALL_ENTRY,
    };
    c.call_floor.store(floor, Relaxed);
    c.waits.store(x.waits, Relaxed);
}

/// The running thread is about to block or sleep.
pub fn thread_waits() {
    let w = &QVQ_DOMAIN_CTX.waits;
    w.store(w.load(Relaxed).wrapping_add(1), Relaxed);
}
