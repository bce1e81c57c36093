//! The `KernelServices` table: what a domain may ask of the kernel. Every function acts for
//! the domain the current thread is running (`current()`), never for one the caller names.
//! This is the ABI boundary: the kernel's typed results become the ABI's integer codes
//! here, and only here.

use super::continuation::{as_kernel, call_into, proxy_status_address};
use super::events::{self, Waited};
use super::instance::StateHooks;
use super::registry::{registry, State};
use super::unwind::unwind;
use super::{grants, recovery, rref};
use crate::sched::call_context::current_domain as current;
use interfaces::{DeviceGrant, KernelServices, RpcError, ABI_VERSION};

fn name(d: super::DomainId) -> alloc::string::String {
    registry().name(d)
}

pub fn table(domain: super::DomainId, heap_base: usize, heap_size: usize, version: [u32; 3]) -> KernelServices {
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
        proxy_status: proxy_status_address(),
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
        rref_alloc,
        rref_free,
        rref_claim,
    }
}

/// Borrows a domain-supplied string. The pointer comes from the trusted runtime or the
/// generated interface code (domains are safe Rust and cannot forge one).
fn text<'a>(ptr: *const u8, len: usize, max: usize) -> &'a str {
    if ptr.is_null() {
        return "";
    }
    // SAFETY: see above; the length is bounded.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len.min(max)) };
    core::str::from_utf8(bytes).unwrap_or("<not UTF-8>")
}

extern "C" fn log(ptr: *const u8, len: usize) {
    crate::info!("{}: {}", name(current()), text(ptr, len, 1024).trim_end());
}

extern "C" fn panic(ptr: *const u8, len: usize) -> ! {
    let d = current();
    // Handle the crash as the kernel: otherwise an interrupt meanwhile would find this
    // thread "inside" the dead domain and unwind it before the reclamation is done.
    let cause = alloc::format!("panicked: {}", text(ptr, len, 256));
    as_kernel(|| recovery::crashed(d, &cause));
    drop(cause);
    unwind(d, RpcError::Crashed as u32)
}

extern "C" fn export(name: *const u8, name_len: usize, hash: *const [u8; 32], table: *const (), state: *const ()) -> i32 {
    // SAFETY: `hash` points at the interface's `HASH` constant (generated code).
    let hash = unsafe { &*hash };
    let (d, name) = (current(), text(name, name_len, 64));
    let result = registry().export(d, name, hash, table as usize, state as usize);
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
    // SAFETY: as in `export`.
    let hash = unsafe { &*hash };
    let (d, name) = (current(), text(name, name_len, 64));
    let result = registry().import(d, name, hash);
    match result {
        Ok(slot) => slot as i64,
        Err(e) => {
            if e == interfaces::ImportError::NotDeclared {
                crate::warn!(
                    "domain {} rejected: imports {name}, which its signed manifest does not declare",
                    registry().name(d)
                );
            }
            e as i64
        }
    }
}

extern "C" fn slot_generation(slot: u32) -> u32 {
    registry().slot_generation(current(), slot)
}

struct ThreadCall {
    entry: extern "C" fn(usize),
    arg: usize,
}

unsafe extern "C" fn invoke_thread(data: *mut u8, _: *const (), _: *const ()) {
    // SAFETY: `data` is the `ThreadCall` of the spawning closure below.
    let call = unsafe { &*(data as *const ThreadCall) };
    (call.entry)(call.arg);
}

extern "C" fn spawn(entry: extern "C" fn(usize), arg: usize, name: *const u8, name_len: usize) -> i32 {
    let d = current();
    let name = alloc::format!("{}:{}", registry().name(d), text(name, name_len, 32));
    let thread_name = name.clone();
    let r = crate::sched::spawn(&thread_name, crate::sched::Priority::Normal, move || {
        let mut call = ThreadCall { entry, arg };
        if call_into(d, invoke_thread, &mut call as *mut ThreadCall as *mut u8, core::ptr::null(), core::ptr::null()) != 0 {
            crate::info!(
                "thread {name} ended: its domain {}",
                if registry().get(d).is_some_and(|x| x.state() == State::Retired) {
                    "was swapped out"
                } else {
                    "crashed"
                }
            );
        }
    });
    if r.is_ok() {
        0
    } else {
        -1
    }
}

extern "C" fn sleep_ms(ms: u64) {
    crate::sched::sleep_ms(ms)
}

extern "C" fn yield_now() {
    crate::sched::yield_now()
}

extern "C" fn uptime_ns() -> u64 {
    crate::time::uptime_ns()
}

extern "C" fn event_new() -> i64 {
    events::create(current()) as i64
}

extern "C" fn event_wait(event: u32, seen: u64) -> u64 {
    match events::wait(current(), event, seen, false) {
        Waited::Count(n) => n,
        _ => seen,
    }
}

extern "C" fn event_wait_restartable(event: u32, seen: u64) -> u64 {
    let d = current();
    match events::wait(d, event, seen, true) {
        Waited::Count(n) => n,
        // A hot swap cancelled the call: back to the caller's proxy, which makes it again.
        Waited::Reissue => unwind(d, interfaces::abi::STATUS_REISSUE),
        // The call's caller died: drop the call and the dead caller's frames with it.
        Waited::CallerDied(dead) => unwind(dead, interfaces::RpcError::Crashed as u32),
    }
}

extern "C" fn state_hooks(
    hash: *const [u8; 32],
    export: interfaces::abi::StateExportFn,
    export_context: usize,
    import: interfaces::abi::StateImportFn,
    import_context: usize,
) -> i32 {
    if hash.is_null() {
        return -1;
    }
    // SAFETY: `hash` points at a `SwapState::HASH` constant (the runtime passes it).
    let hash = unsafe { *hash };
    let hooks = StateHooks {
        hash,
        export,
        export_context,
        import,
        import_context,
    };
    if registry().set_state_hooks(current(), hooks) {
        0
    } else {
        -1
    }
}

extern "C" fn event_signal(event: u32) {
    events::signal(event)
}

extern "C" fn device(index: u32, out: *mut DeviceGrant) -> i32 {
    let Some(g) = grants::device(current(), index) else { return -1 };
    if !out.is_null() {
        // SAFETY: `out` is the runtime's `DeviceGrant` on its stack.
        unsafe { out.write(g) };
    }
    0
}

extern "C" fn irq_wait(index: u32) -> i32 {
    if grants::irq_wait(current(), index) {
        0
    } else {
        -1
    }
}

extern "C" fn irq_done(index: u32) {
    grants::irq_done(current(), index)
}

extern "C" fn rref_alloc(size: usize, align: usize) -> *mut u8 {
    rref::alloc(current(), size, align)
}

extern "C" fn rref_free(ptr: *mut u8) {
    if !rref::free(current(), ptr) {
        crate::warn!("{}: freed a shared-heap block it does not own; ignored", name(current()));
    }
}

extern "C" fn rref_claim(ptr: *mut u8) {
    rref::claim(current(), ptr);
}
