//! The table of kernel services every domain's entry point receives. `#[repr(C)]`, so the
//! kernel and separately compiled domains agree on it; `ABI_VERSION` changes with it.

use core::sync::atomic::{AtomicPtr, Ordering};

pub const ABI_VERSION: u32 = 1;

/// A device granted by the domain's signed manifest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceGrant {
    pub mmio_base: usize,
    pub mmio_size: usize,
    /// 1 if the device's interrupt is delivered to this domain.
    pub has_irq: u32,
}

#[repr(C)]
pub struct KernelServices {
    pub abi_version: u32,
    pub domain_id: u32,
    /// The private heap (the manifest's `heap_limit` bytes).
    pub heap_base: usize,
    pub heap_size: usize,
    /// Writes one log line, prefixed with the domain's name.
    pub log: extern "C" fn(ptr: *const u8, len: usize),
    /// Reports a panic; the kernel unwinds to the caller of the current call.
    pub panic: extern "C" fn(ptr: *const u8, len: usize) -> !,
    /// Registers an export (must be in the manifest). 0 or a negative error.
    pub export: extern "C" fn(name: *const u8, name_len: usize, hash: *const [u8; 32], table: *const (), state: *const ()) -> i32,
    /// A slot for an import (must be in the manifest), or a negative error.
    pub import: extern "C" fn(name: *const u8, name_len: usize, hash: *const [u8; 32]) -> i64,
    /// Address of the kernel's proxy trampoline. Generated proxies call it as
    /// `extern "C" fn(slot << 8 | method index, the method's arguments...) -> the method's
    /// return type`; it checks the slot, pushes a continuation and calls the callee's
    /// table entry with the callee's state. Arguments: at most 6, each register-sized.
    pub proxy_call: usize,
    /// The calling thread's proxy status after a call: 0 done, else an `RpcError` code
    /// (then the returned value is garbage and must not be used).
    pub proxy_status: *const u32,
    /// The generation of the instance a slot of the caller's now reaches (it grows by one
    /// with every restart of the callee); 0 for a slot that is not the caller's.
    pub slot_generation: extern "C" fn(slot: u32) -> u32,
    /// Starts a thread of this domain running `entry(arg)`.
    pub spawn: extern "C" fn(entry: extern "C" fn(usize), arg: usize, name: *const u8, name_len: usize) -> i32,
    pub sleep_ms: extern "C" fn(ms: u64),
    pub yield_now: extern "C" fn(),
    pub uptime_ns: extern "C" fn() -> u64,
    /// Events: counters a thread can wait on until they move past a value it has seen.
    pub event_new: extern "C" fn() -> i64,
    pub event_wait: extern "C" fn(event: u32, seen: u64) -> u64,
    pub event_signal: extern "C" fn(event: u32),
    /// The `index`-th device grant; 0 or a negative error.
    pub device: extern "C" fn(index: u32, out: *mut DeviceGrant) -> i32,
    /// Blocks until the device's interrupt fires; the line stays masked until `irq_done`.
    pub irq_wait: extern "C" fn(index: u32) -> i32,
    pub irq_done: extern "C" fn(index: u32),
    /// The shared heap: blocks are recorded with their owning domain.
    pub rref_alloc: extern "C" fn(size: usize, align: usize) -> *mut u8,
    pub rref_free: extern "C" fn(ptr: *mut u8),
    /// Records the calling domain as the owner (called when an `RRef` crosses a call).
    pub rref_claim: extern "C" fn(ptr: *mut u8),
}

// SAFETY: the table is immutable after the kernel builds it; `proxy_status` points at a
// kernel static that only the running thread's proxies read and write.
unsafe impl Send for KernelServices {}
// SAFETY: as above.
unsafe impl Sync for KernelServices {}

static SERVICES: AtomicPtr<KernelServices> = AtomicPtr::new(core::ptr::null_mut());

/// Set once by the runtime's entry point (or by the kernel for itself).
pub fn set_services(s: &'static KernelServices) {
    SERVICES.store(s as *const KernelServices as *mut KernelServices, Ordering::Release);
}

/// The kernel services of this domain.
pub fn services() -> &'static KernelServices {
    let p = SERVICES.load(Ordering::Acquire);
    // SAFETY: only ever set from a `&'static KernelServices`.
    unsafe { p.as_ref() }.expect("kernel services used before the domain's entry point ran")
}

/// `services()` without the check, for the proxies' hot path: a proxy exists only in code
/// that runs after the entry point set the services (a domain) or after the kernel did.
#[inline(always)]
pub fn services_unchecked() -> &'static KernelServices {
    // SAFETY: see above; the pointer, once set, is a `&'static KernelServices`.
    unsafe { &*SERVICES.load(Ordering::Relaxed) }
}

/// The shadow proxies' retry: makes `call` again every few milliseconds while the callee is
/// unavailable (being restarted), for up to a second; returns the first other result. `call`
/// returns `None` if its arguments cannot be replayed.
#[cold]
pub fn await_restart<T>(mut call: impl FnMut() -> Option<crate::RpcResult<T>>) -> Option<crate::RpcResult<T>> {
    for _ in 0..200 {
        (services().sleep_ms)(5);
        match call()? {
            Err(crate::RpcError::Unavailable) => continue,
            r => return Some(r),
        }
    }
    None
}

/// The out-of-line end of a proxy call that failed with `status`: clears the status word,
/// and gives the arguments back to the caller unless the callee had them (it crashed).
#[cold]
#[inline(never)]
pub fn failed_call<A, T>(status: u32, args: core::mem::ManuallyDrop<A>) -> crate::RpcResult<T> {
    // SAFETY: the kernel's per-thread status word; the failure has been read.
    unsafe { core::ptr::write_volatile(services().proxy_status as *mut u32, 0) };
    let e = crate::RpcError::from_code(status);
    if e != crate::RpcError::Crashed {
        drop(core::mem::ManuallyDrop::into_inner(args));
    }
    Err(e)
}
