//! The table of kernel services every domain's entry point receives. `#[repr(C)]`, so the
//! kernel and separately compiled domains agree on it; `ABI_VERSION` changes with it.
//!
//! Every service is an `unsafe extern "C" fn`: safe domain code cannot call one (only the
//! trusted crates do, through safe typed wrappers: `RRef`, the generated proxies and
//! `export`/`import`, the runtime's functions). The table is installed once, by the entry
//! point the kernel calls first; it cannot be replaced afterwards. The kernel still checks
//! every argument: a pointer must lie in the calling domain's own memory.

use core::sync::atomic::{AtomicPtr, Ordering};

pub const ABI_VERSION: u32 = 5;

/// Proxy status: a hot swap cancelled the call before it had any effect (the callee was
/// waiting in `event_wait_restartable`); the proxy makes the call again.
pub const STATUS_REISSUE: u32 = 5;

/// Saves a domain's state for the next version (runs in the old version): returns a
/// shared-heap block holding the state, or null.
pub type StateExportFn = extern "C" fn(context: usize) -> *mut u8;
/// Takes the state the previous version saved (runs in the new version, which owns the
/// block by then): 0, or a negative error that refuses the swap.
pub type StateImportFn = extern "C" fn(context: usize, state: *mut u8) -> i32;

/// A device granted by the domain's signed manifest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceGrant {
    pub mmio_base: usize,
    pub mmio_size: usize,
    /// 1 if the device's interrupt is delivered to this domain.
    pub has_irq: u32,
    /// What the device is (`DEVICE_PLAIN`, `DEVICE_VIRTIO_MMIO`, `DEVICE_FW_CFG`): it decides which
    /// registers the runtime keeps for its trusted code (those that take a DMA address).
    pub kind: u32,
}

/// A device whose registers the driver may all write.
pub const DEVICE_PLAIN: u32 = 0;
/// A virtio-mmio transport: its queue-address registers are written only by the runtime's
/// `VirtQueue`, with addresses of DMA memory it owns.
pub const DEVICE_VIRTIO_MMIO: u32 = 1;
/// QEMU's fw-cfg (`qemu,fw-cfg-mmio`): its DMA address register makes the device copy
/// into any memory, so no domain may write it (a red-team finding); the rest is plain.
pub const DEVICE_FW_CFG: u32 = 2;

/// A DMA buffer the kernel allocated for the calling domain (`dma_alloc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DmaGrant {
    /// The kernel's name for it (`dma_free`).
    pub handle: u32,
    pub _pad: u32,
    /// Where the CPU reaches it.
    pub addr: usize,
    /// What the device is given.
    pub device_address: u64,
    /// Bytes (whole pages).
    pub size: usize,
}

#[repr(C)]
pub struct KernelServices {
    pub abi_version: u32,
    pub domain_id: u32,
    /// The private heap (the manifest's `heap_limit` bytes).
    pub heap_base: usize,
    pub heap_size: usize,
    /// The version in the domain's signed manifest: major, minor, patch.
    pub version: [u32; 3],
    /// Writes one log line, prefixed with the domain's name.
    pub log: unsafe extern "C" fn(ptr: *const u8, len: usize),
    /// Reports a panic; the kernel unwinds to the caller of the current call.
    pub panic: unsafe extern "C" fn(ptr: *const u8, len: usize) -> !,
    /// Registers an export (must be in the manifest): `table` holds `methods` entries, each
    /// a function of the exporting domain's code, in dispatch order (`dispatch_order`);
    /// `moves` holds, for each entry, the argument registers its method takes `RRef`s in
    /// (bit i: register x(i+1)). 0 or a negative `ExportError`.
    pub export: unsafe extern "C" fn(
        name: *const u8,
        name_len: usize,
        hash: *const [u8; 32],
        table: *const (),
        moves: *const u8,
        state: *const (),
        methods: u32,
    ) -> i32,
    /// A slot for an import (must be in the manifest), or a negative error.
    pub import: unsafe extern "C" fn(name: *const u8, name_len: usize, hash: *const [u8; 32]) -> i64,
    /// Address of the kernel's proxy trampoline. Generated proxies call it as
    /// `extern "C" fn(slot << 8 | method index, the method's arguments...) -> the method's
    /// return type`; it checks the slot, pushes a continuation and calls the callee's
    /// table entry with the callee's state. Arguments: at most 6, each register-sized.
    /// For methods that move nothing (no `RRef` argument).
    pub proxy_call: usize,
    /// The trampoline for methods with `RRef` arguments (the call word has `MOVING_CALL`
    /// set): on top of `proxy_call`'s checks, it moves each block from the caller to the
    /// callee as the call enters, or refuses the call (`NotAllowed`: a block the caller
    /// does not own; `NoRoom`: the callee's quota is full) with nothing moved.
    pub proxy_call_moving: usize,
    /// The calling thread's proxy status after a call: 0 done, else an `RpcError` code
    /// (then the returned value is garbage and must not be used).
    pub proxy_status: *const u32,
    /// The lowest usable address of the running thread's stack (0 if unknown).
    pub stack_limit: *const usize,
    /// The generation of the instance a slot of the caller's now reaches (it grows by one
    /// with every restart of the callee); 0 for a slot that is not the caller's.
    pub slot_generation: unsafe extern "C" fn(slot: u32) -> u32,
    /// Starts a thread of this domain running `entry(arg)`.
    pub spawn: unsafe extern "C" fn(entry: extern "C" fn(usize), arg: usize, name: *const u8, name_len: usize) -> i32,
    pub sleep_ms: unsafe extern "C" fn(ms: u64),
    pub yield_now: unsafe extern "C" fn(),
    pub uptime_ns: unsafe extern "C" fn() -> u64,
    /// Events: counters a thread can wait on until they move past a value it has seen.
    pub event_new: unsafe extern "C" fn() -> i64,
    pub event_wait: unsafe extern "C" fn(event: u32, seen: u64) -> u64,
    pub event_signal: unsafe extern "C" fn(event: u32),
    /// `event_wait` inside a call that has had no effect yet: a hot swap of this domain
    /// may cancel the call here (it never returns then) and make it again on the new version.
    pub event_wait_restartable: unsafe extern "C" fn(event: u32, seen: u64) -> u64,
    /// Declares how this domain hands its state to its next version in a hot swap: the
    /// state's type hash (`SwapState::HASH`) and size, and the two functions with their
    /// contexts.
    pub state_hooks: unsafe extern "C" fn(
        hash: *const [u8; 32],
        size: usize,
        export: StateExportFn,
        export_context: usize,
        import: StateImportFn,
        import_context: usize,
    ) -> i32,
    /// The `index`-th device grant; 0 or a negative error.
    pub device: unsafe extern "C" fn(index: u32, out: *mut DeviceGrant) -> i32,
    /// Blocks until the device's interrupt fires; the line stays masked until `irq_done`.
    pub irq_wait: unsafe extern "C" fn(index: u32) -> i32,
    pub irq_done: unsafe extern "C" fn(index: u32),
    /// The shared heap: blocks are recorded with their owning domain, charged to its
    /// quota; null when the quota or the heap is exhausted.
    pub rref_alloc: unsafe extern "C" fn(size: usize, align: usize) -> *mut u8,
    pub rref_free: unsafe extern "C" fn(ptr: *mut u8),
    /// Sends a block the caller owns to the caller of the call it is serving, as that
    /// call's result. 0, or -1 if refused. (Arguments move in the trampoline instead:
    /// `proxy_call_moving`.)
    pub rref_return: unsafe extern "C" fn(ptr: *mut u8) -> i32,
    /// Takes a block returned to the calling domain (see `rref_return`). 0, or -1 if refused.
    pub rref_claim: unsafe extern "C" fn(ptr: *mut u8) -> i32,
    /// Zeroed, physically contiguous memory a device may read and write, of at least
    /// `bytes` bytes, charged to the domain's shared-heap quota. 0, or -1 if refused.
    pub dma_alloc: unsafe extern "C" fn(bytes: usize, out: *mut DmaGrant) -> i32,
    /// Gives DMA buffer `handle` back (the caller's own; anything else is ignored).
    pub dma_free: unsafe extern "C" fn(handle: u32),
}

// SAFETY: the table is immutable after the kernel builds it; `proxy_status` points at a
// kernel static that only the running thread's proxies read and write.
unsafe impl Send for KernelServices {}
// SAFETY: as above.
unsafe impl Sync for KernelServices {}

/// Stack every call is guaranteed when it starts (bytes above the thread's stack limit):
/// the callee's own frames plus `SERVICE_STACK` for the kernel services it uses. A caller
/// that leaves less gets `RpcError::StackExhausted` and the callee does not run.
pub const CALL_STACK: usize = 10 * 1024;
/// Stack a kernel service needs when a domain calls it; with less left, the service
/// treats the call as the domain's stack overflow (the domain crashes, nothing else).
pub const SERVICE_STACK: usize = 6 * 1024;

/// Stack the kernel's trampoline adds to `CALL_STACK` in its check (its continuation, and
/// a margin): a call starts only with both left, else it fails with `StackExhausted`
/// before the callee runs, and the caller's proxy drops (frees) its arguments.
pub const CALL_ENTRY: usize = 1024;

/// Bytes of stack the running thread has left (`usize::MAX` where there is no limit).
#[inline(always)]
fn stack_left() -> usize {
    let here = 0u8;
    let sp = core::hint::black_box(&here) as *const u8 as usize;
    // SAFETY: the kernel's per-thread stack-limit word (a plain read).
    let limit = unsafe { core::ptr::read_volatile(services_unchecked().stack_limit) };
    if limit == 0 {
        usize::MAX
    } else {
        sp.saturating_sub(limit)
    }
}

/// True if the running thread has at least `CALL_STACK` bytes of stack left (what a
/// callee is guaranteed when its code starts).
#[inline(always)]
pub fn stack_left_for_a_call() -> bool {
    stack_left() >= CALL_STACK
}

/// Set in the call word of a method with `RRef` arguments (through `proxy_call_moving`),
/// so that a call parked by a hot swap is made again through the same trampoline.
pub const MOVING_CALL: u64 = 1 << 32;

/// The argument registers a method takes `RRef`s in (bit i: register x(i+1)), from whether
/// each argument, in order, is an `RRef` (`CrossDomain::MOVES`).
pub const fn moves(args: &[bool]) -> u8 {
    let mut mask = 0;
    let mut i = 0;
    while i < args.len() {
        if args[i] {
            mask |= 1 << i;
        }
        i += 1;
    }
    mask
}

/// The three groups of an exported table, in this order: methods that move nothing (the
/// plain trampoline's range), methods moving an `RRef` in x1 alone (the moving
/// trampoline's fast path), and the rest.
const fn group(moves: u8) -> u8 {
    match moves {
        0 => 0,
        1 => 1,
        _ => 2,
    }
}

/// Where each method (in declaration order, with the `moves` of each) sits in the exported
/// table: grouped as `group` says, in declaration order within a group. Both sides compute
/// it from the same declaration: the callee to lay out its table, the caller for the
/// method index it calls.
pub const fn dispatch_order<const N: usize>(moves: &[u8; N]) -> [u32; N] {
    let mut order = [0u32; N];
    let mut m = 0;
    while m < N {
        let g = group(moves[m]);
        let mut i = 0;
        while i < N {
            let gi = group(moves[i]);
            if gi < g || (gi == g && i < m) {
                order[m] += 1;
            }
            i += 1;
        }
        m += 1;
    }
    order
}

/// How many of `moves` (in dispatch order) move nothing, and how many move x1 alone: the
/// kernel's view of the three groups (it refuses a table that is not grouped so).
pub const fn dispatch_groups(moves: &[u8]) -> Option<(usize, usize)> {
    let (mut plain, mut x1_alone) = (0, 0);
    let mut last = 0;
    let mut i = 0;
    while i < moves.len() {
        let g = group(moves[i]);
        // Six argument registers at most; groups in order.
        if moves[i] >= 1 << 6 || g < last {
            return None;
        }
        match g {
            0 => plain += 1,
            1 => x1_alone += 1,
            _ => {}
        }
        last = g;
        i += 1;
    }
    Some((plain, x1_alone))
}

static SERVICES: AtomicPtr<KernelServices> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the kernel services, once: by the runtime's entry point, which the kernel calls
/// before any other code of the domain runs (or by the kernel for itself). Every later call
/// is refused (false), so no code can replace the table the kernel gave.
pub fn set_services(s: &'static KernelServices) -> bool {
    let new = s as *const KernelServices as *mut KernelServices;
    SERVICES
        .compare_exchange(core::ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
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
        // SAFETY: a plain value argument.
        unsafe { (services().sleep_ms)(5) };
        match call()? {
            Err(crate::RpcError::Unavailable) => continue,
            r => return Some(r),
        }
    }
    None
}

/// Clears the calling thread's proxy status word (a failure was read and handled).
pub fn clear_status() {
    // SAFETY: the kernel's per-thread status word.
    unsafe { core::ptr::write_volatile(services().proxy_status as *mut u32, 0) };
}

/// The out-of-line end of a proxy call that did not return normally. A call a hot swap
/// cancelled before it had any effect (`STATUS_REISSUE`) is made again through `again`
/// (which returns `None` if the arguments cannot be passed again); anything else fails.
#[cold]
#[inline(never)]
pub fn call_failed<A, T>(status: u32, args: core::mem::ManuallyDrop<A>, again: impl FnOnce(&A) -> Option<crate::RpcResult<T>>) -> crate::RpcResult<T> {
    if status == STATUS_REISSUE {
        clear_status();
        if let Some(r) = again(&args) {
            // The arguments went to the cancelled call's callee; the new call used copies.
            return r;
        }
    }
    failed_call(status, args)
}

/// The out-of-line end of a proxy call that failed with `status`: clears the status word,
/// and gives the arguments back to the caller unless the callee had them (it crashed).
#[cold]
#[inline(never)]
pub fn failed_call<A, T>(status: u32, args: core::mem::ManuallyDrop<A>) -> crate::RpcResult<T> {
    clear_status();
    let e = crate::RpcError::from_code(status);
    // A crashed or swapped-out callee had the arguments (and they went with it).
    if e != crate::RpcError::Crashed && e != crate::RpcError::Interrupted {
        drop(core::mem::ManuallyDrop::into_inner(args));
    }
    Err(e)
}
