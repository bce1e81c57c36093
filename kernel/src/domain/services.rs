//! The `KernelServices` table: what a domain may ask of the kernel. Every function acts for
//! the domain the current thread is running (`current()`), never for one the caller names,
//! and treats every argument as an allegation (`allegation.rs`): a pointer outside the
//! domain's own memory, or code that is not the domain's, crashes the domain — the trusted
//! crates never pass one, so only an attack does. Quotas (threads, events, shared heap) turn
//! exhaustion into that domain's error. This is the ABI boundary: the kernel's typed
//! results become the ABI's integer codes here, and only here.

use super::allegation::{copy_hash, copy_in, copy_out, copy_text, printable, Reach, Refusal};
use super::continuation::{as_kernel, call_into, caller_of_current_call, proxy_status_address, EntryKind};
use super::events::{self, Waited};
use super::instance::StateHooks;
use super::registry::{registry, ExportedTable, State, MAX_DOMAINS};
use super::unwind::unwind;
use super::{dma, grants, recovery, rref, DomainId};
use crate::sched::call_context::current_domain as current;
use alloc::string::String;
use core::sync::atomic::{AtomicU32, Ordering};
use interfaces::{DeviceGrant, DmaGrant, KernelServices, RpcError, ABI_VERSION};

/// Longest log line, thread name and interface name the kernel takes.
const MAX_LOG: usize = 1024;
const MAX_PANIC: usize = 256;
const MAX_THREAD_NAME: usize = 32;
const MAX_INTERFACE_NAME: usize = 64;
/// Most methods an interface table may have (the trampoline takes an 8-bit index).
const MAX_METHODS: u32 = 255;

/// Live threads per domain number.
static THREADS: [AtomicU32; MAX_DOMAINS] = [const { AtomicU32::new(0) }; MAX_DOMAINS];

pub fn table(domain: DomainId, heap_base: usize, heap_size: usize, version: [u32; 3]) -> KernelServices {
    KernelServices {
        abi_version: ABI_VERSION,
        domain_id: domain,
        heap_base,
        heap_size,
        version,
        log,
        panic,
        export,
        import,
        proxy_call: super::continuation::qvq_proxy_call as *const () as usize,
        proxy_call_moving: super::continuation::qvq_proxy_call_moving as *const () as usize,
        proxy_status: proxy_status_address(),
        stack_limit: crate::sched::call_context::live().stack_limit.as_ptr(),
        slot_generation,
        spawn,
        sleep_ms,
        yield_now,
        uptime_ns,
        event_new,
        event_wait,
        event_signal,
        event_wait_restartable,
        state_hooks,
        device,
        irq_wait,
        irq_done,
        rref_alloc: qvq_rref_alloc,
        rref_free: qvq_rref_free,
        rref_return,
        rref_claim,
        dma_alloc,
        dma_free,
    }
}

/// The calling domain, once it is sure to have the stack a service needs. A domain that
/// calls a service with less than `SERVICE_STACK` left has overflowed its stack: the
/// service touches the guard page, so the domain crashes from a clean trap (on the
/// exception stack) rather than deep inside the kernel with a lock held.
#[inline(always)]
fn enter() -> DomainId {
    let d = current();
    let ctx = crate::sched::call_context::live();
    let limit = ctx.stack_limit.load(Ordering::Relaxed);
    let sp = crate::arch::cpu::stack_pointer();
    if d != super::KERNEL && limit != 0 && sp.saturating_sub(limit) < interfaces::abi::SERVICE_STACK {
        // SAFETY: deliberately faults: the word just below the stack limit is the thread's
        // unmapped guard page. The trap handler crashes `d` and unwinds the thread.
        unsafe { core::ptr::read_volatile((limit - 8) as *const u64) };
    }
    d
}

fn name(d: DomainId) -> String {
    registry().name(d)
}

/// Crashes the calling domain `d`, which passed `service` a value it does not own, and
/// unwinds the thread out of it.
fn refuse(d: DomainId, service: &str, why: Refusal) -> ! {
    let cause = alloc::format!(
        "its call of the kernel service {service} was refused: {}",
        match why {
            Refusal::NotOwned => "an address outside its own memory, or code that is not its own",
            Refusal::TooLong => "a length past the service's limit",
            Refusal::NoInstance => "it has no instance",
            Refusal::NotItsObject => "an event that is not its own",
            Refusal::NotGrouped => "an interface table not grouped by what its methods move",
        }
    );
    as_kernel(|| recovery::crashed(d, &cause));
    drop(cause);
    unwind(d, RpcError::Crashed as u32)
}

/// The value of an allegation, or the calling domain crashed.
fn checked<T>(d: DomainId, service: &str, r: Result<T, Refusal>) -> T {
    match r {
        Ok(v) => v,
        Err(why) => refuse(d, service, why),
    }
}

extern "C" fn log(ptr: *const u8, len: usize) {
    let d = enter();
    let text = checked(d, "log", copy_text(d, ptr, len, MAX_LOG));
    crate::info!("{}: {}", name(d), printable(text.trim_end(), false));
}

extern "C" fn panic(ptr: *const u8, len: usize) -> ! {
    let d = enter();
    let message = copy_text(d, ptr, len, MAX_PANIC).unwrap_or_else(|_| String::from("<its message was not in its own memory>"));
    // Handle the crash as the kernel: otherwise an interrupt meanwhile would find this
    // thread "inside" the dead domain and unwind it before the reclamation is done.
    let cause = alloc::format!("panicked: {}", printable(&message, true));
    drop(message);
    as_kernel(|| recovery::crashed(d, &cause));
    drop(cause);
    unwind(d, RpcError::Crashed as u32)
}

extern "C" fn export(name: *const u8, name_len: usize, hash: *const [u8; 32], given: *const (), moves: *const u8, state: *const (), methods: u32) -> i32 {
    let d = enter();
    let name = printable(&checked(d, "export", copy_text(d, name, name_len, MAX_INTERFACE_NAME)), false);
    let hash = checked(d, "export", copy_hash(d, hash));
    // The table must be the domain's own, and each entry a function of its own code: the
    // trampoline will jump there on its callers' behalf. (`state` is only handed back to
    // those functions.)
    if methods == 0 || methods > MAX_METHODS {
        refuse(d, "export", Refusal::TooLong);
    }
    let entries = checked(d, "export", copy_in(d, given as *const u8, methods as usize * 8, MAX_METHODS as usize * 8));
    // Which argument registers each entry takes `RRef`s in: the trampolines move those
    // blocks to this domain as a call enters, and only through the moving trampoline. The
    // table must list the entries grouped as both sides' generated code does.
    let moves = checked(d, "export", copy_in(d, moves, methods as usize, MAX_METHODS as usize));
    if interfaces::abi::dispatch_groups(&moves).is_none() {
        refuse(d, "export", Refusal::NotGrouped);
    }
    if let Some(reach) = checked(d, "export", Reach::of(d)) {
        let own_code = entries
            .chunks_exact(8)
            .all(|e| reach.is_code(usize::from_le_bytes(e.try_into().unwrap_or([0; 8]))));
        if !own_code {
            refuse(d, "export", Refusal::NotOwned);
        }
    }
    // The kernel dispatches from its own copy of the table, the one checked above (a
    // red-team finding: calls went through the exporter's heap, which it may rewrite after
    // exporting, to send its callers' calls anywhere).
    let table: alloc::sync::Arc<[usize]> = entries.chunks_exact(8).map(|e| usize::from_le_bytes(e.try_into().unwrap_or([0; 8]))).collect();
    let exported = ExportedTable {
        given: given as usize,
        table,
        moves: moves.into(),
        state: state as usize,
    };
    let result = registry().export(d, &name, &hash, exported);
    match result {
        Ok(()) => 0,
        Err(e) => {
            if e == interfaces::ExportError::NotDeclared {
                crate::warn!(
                    "domain {} rejected export {name}: not declared (with this hash) in its signed manifest",
                    registry().name(d)
                );
            }
            e as i32
        }
    }
}

extern "C" fn import(name: *const u8, name_len: usize, hash: *const [u8; 32]) -> i64 {
    let d = enter();
    let name = printable(&checked(d, "import", copy_text(d, name, name_len, MAX_INTERFACE_NAME)), false);
    let hash = checked(d, "import", copy_hash(d, hash));
    let result = registry().import(d, &name, &hash);
    match result {
        Ok(slot) => slot as i64,
        Err(e) => {
            if e == interfaces::ImportError::NotDeclared {
                crate::warn!("domain {} may not import {name}: its signed manifest does not declare it", registry().name(d));
            }
            e as i64
        }
    }
}

extern "C" fn slot_generation(slot: u32) -> u32 {
    registry().slot_generation(enter(), slot)
}

struct ThreadCall {
    entry: extern "C" fn(usize),
    arg: usize,
}

unsafe extern "C" fn invoke_thread(data: *mut u8, _: *const (), _: *const ()) {
    // SAFETY: `data` is the `ThreadCall` of the spawning closure below; `entry` was checked
    // to be code of the domain this runs as.
    let call = unsafe { &*(data as *const ThreadCall) };
    (call.entry)(call.arg);
}

/// Most pages of stack a domain's thread gets (64 KiB), whatever its manifest's `stack_size`.
const MAX_THREAD_STACK_PAGES: usize = 16;

extern "C" fn spawn(entry: extern "C" fn(usize), arg: usize, name: *const u8, name_len: usize) -> i32 {
    let d = enter();
    let thread_name = checked(d, "spawn", copy_text(d, name, name_len, MAX_THREAD_NAME));
    if let Some(reach) = checked(d, "spawn", Reach::of(d)) {
        if !reach.is_code(entry as usize) {
            refuse(d, "spawn", Refusal::NotOwned);
        }
    }
    let Some(count) = THREADS.get(d as usize) else { return -1 };
    if count.load(Ordering::Relaxed) as usize >= super::quota::threads(d) {
        return -2;
    }
    count.fetch_add(1, Ordering::Relaxed);
    let name = alloc::format!("{}:{}", registry().name(d), printable(&thread_name, false));
    let thread_name = name.clone();
    // The manifest's stack size, never less than a kernel thread's and at most
    // `MAX_THREAD_STACK_PAGES` (so a domain's threads hold at most max_threads x 64 KiB).
    let pages = (super::quota::stack(d) / crate::memory::PAGE_SIZE).clamp(crate::sched::STACK_PAGES, MAX_THREAD_STACK_PAGES);
    let r = crate::sched::spawn_with_stack(&thread_name, crate::sched::Priority::Normal, pages, move || {
        let mut call = ThreadCall { entry, arg };
        let code = call_into(
            d,
            EntryKind::Thread,
            invoke_thread,
            &mut call as *mut ThreadCall as *mut u8,
            core::ptr::null(),
            core::ptr::null(),
        );
        THREADS[d as usize].fetch_sub(1, Ordering::Relaxed);
        if code != 0 {
            let retired = registry().get(d).is_some_and(|x| x.state() == State::Retired);
            crate::info!("thread {name} ended: its domain {}", if retired { "was swapped out" } else { "crashed" });
        }
    });
    if r.is_ok() {
        0
    } else {
        count.fetch_sub(1, Ordering::Relaxed);
        -1
    }
}

extern "C" fn sleep_ms(ms: u64) {
    enter();
    crate::sched::sleep_ms(ms)
}

extern "C" fn yield_now() {
    enter();
    crate::sched::yield_now()
}

extern "C" fn uptime_ns() -> u64 {
    enter();
    crate::time::uptime_ns()
}

extern "C" fn event_new() -> i64 {
    events::create(enter()).map_or(-1, |e| e as i64)
}

/// The end of a wait on an event the domain does not own.
fn not_owned_event(d: DomainId, service: &str) -> ! {
    refuse(d, service, Refusal::NotItsObject)
}

extern "C" fn event_wait(event: u32, seen: u64) -> u64 {
    let d = enter();
    match events::wait(d, event, seen, false) {
        Waited::Count(n) => n,
        Waited::NotOwned => not_owned_event(d, "event_wait"),
        Waited::Reissue | Waited::CallerDied(_) => seen,
    }
}

extern "C" fn event_wait_restartable(event: u32, seen: u64) -> u64 {
    let d = enter();
    match events::wait(d, event, seen, true) {
        Waited::Count(n) => n,
        Waited::NotOwned => not_owned_event(d, "event_wait_restartable"),
        // A hot swap cancelled the call: back to the caller's proxy, which makes it again.
        Waited::Reissue => unwind(d, interfaces::abi::STATUS_REISSUE),
        // The call's caller died: drop the call and the dead caller's frames with it.
        Waited::CallerDied(dead) => unwind(dead, interfaces::RpcError::Crashed as u32),
    }
}

extern "C" fn event_signal(event: u32) {
    let d = enter();
    if !events::signal(d, event) {
        not_owned_event(d, "event_signal");
    }
}

extern "C" fn state_hooks(
    hash: *const [u8; 32],
    size: usize,
    export: interfaces::abi::StateExportFn,
    export_context: usize,
    import: interfaces::abi::StateImportFn,
    import_context: usize,
) -> i32 {
    let d = enter();
    let hash = checked(d, "state_hooks", copy_hash(d, hash));
    if let Some(reach) = checked(d, "state_hooks", Reach::of(d)) {
        if !reach.is_code(export as usize) || !reach.is_code(import as usize) {
            refuse(d, "state_hooks", Refusal::NotOwned);
        }
    }
    let hooks = StateHooks {
        hash,
        size,
        export,
        export_context,
        import,
        import_context,
    };
    if registry().set_state_hooks(d, hooks) {
        0
    } else {
        -1
    }
}

extern "C" fn device(index: u32, out: *mut DeviceGrant) -> i32 {
    let d = enter();
    let Some(g) = grants::device(d, index) else { return -1 };
    checked(d, "device", copy_out(d, out, g));
    0
}

extern "C" fn irq_wait(index: u32) -> i32 {
    if grants::irq_wait(enter(), index) {
        0
    } else {
        -1
    }
}

extern "C" fn irq_done(index: u32) {
    grants::irq_done(enter(), index)
}

extern "C" {
    /// The fast paths of `rref_alloc` and `rref_free` (`arch/aarch64/shared_heap.s`): a
    /// slab block, with no lock and no stack. They leave the rest to the two below.
    fn qvq_rref_alloc(size: usize, align: usize) -> *mut u8;
    fn qvq_rref_free(ptr: *mut u8);
}

#[no_mangle]
extern "C" fn qvq_rref_alloc_slow(size: usize, align: usize) -> *mut u8 {
    rref::alloc(enter(), size, align)
}

#[no_mangle]
extern "C" fn qvq_rref_free_slow(ptr: *mut u8) {
    let d = enter();
    if !rref::free(d, ptr) {
        crate::warn!("{}: freed a shared-heap block it does not own; ignored", name(d));
    }
}

extern "C" fn rref_return(ptr: *mut u8) -> i32 {
    let d = enter();
    match caller_of_current_call() {
        Some(caller) if rref::give_back(d, ptr, caller) => 0,
        _ => -1,
    }
}

extern "C" fn dma_alloc(bytes: usize, out: *mut DmaGrant) -> i32 {
    let d = enter();
    match dma::alloc(d, bytes) {
        Ok((handle, addr, size)) => {
            let grant = DmaGrant {
                handle,
                _pad: 0,
                addr,
                device_address: addr as u64,
                size,
            };
            // A bad `out` crashes `d`, which frees the buffer with everything else it held.
            checked(d, "dma_alloc", copy_out(d, out, grant));
            0
        }
        Err(_) => -1,
    }
}

extern "C" fn dma_free(handle: u32) {
    let d = enter();
    if !dma::free(d, handle) {
        crate::warn!("{}: gave back a DMA buffer it does not hold; ignored", name(d));
    }
}

extern "C" fn rref_claim(ptr: *mut u8) -> i32 {
    if rref::claim(enter(), ptr) {
        0
    } else {
        -1
    }
}
