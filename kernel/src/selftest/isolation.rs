//! Self tests of the isolation boundary: forged proxy calls, the services boundary under
//! random arguments, forged shared-heap addresses, and a driver domain crashed a thousand times without a byte of kernel
//! heap lost.

use super::{fail, pass};
use crate::domain::inspect;
use crate::info;
use crate::sched;
use interfaces::hello::{self, Hello};
use interfaces::RpcError;

/// Calls a trampoline (the moving one if `word` has `MOVING_CALL`) with a raw first
/// argument (`tag << 16 | slot << 8 | method`) and returns the proxy status it left.
fn raw_call(word: u64) -> u32 {
    let services = interfaces::services();
    let moving = word & interfaces::abi::MOVING_CALL != 0;
    // SAFETY: the kernel's trampolines with the generated proxies' calling convention; the
    // method called (if it is called at all) is `Hello::ping(u64) -> Ret<u64>`, whose
    // result comes back in registers; the status word is the thread's own.
    unsafe {
        let f: extern "C" fn(u64, u64) -> u64 = core::mem::transmute(if moving { services.proxy_call_moving } else { services.proxy_call });
        core::hint::black_box(f(word, 41));
        let status = core::ptr::read_volatile(services.proxy_status);
        core::ptr::write_volatile(services.proxy_status as *mut u32, 0);
        status
    }
}

/// The trampoline refuses a method index past the slot's table, a call made for another
/// interface through the slot, and a slot that is not the caller's; the test domain keeps
/// answering.
pub fn proxy_refuses_forged_calls(name: &str) -> ! {
    let proxy = match hello::import() {
        Ok(p) => p,
        Err(e) => fail(name, format_args!("cannot import Hello ({e})")),
    };
    let tag = hello::HASH[0] as u32 | (hello::HASH[1] as u32) << 8;
    let slot = proxy.slot();
    let methods = (core::mem::size_of::<hello::Table>() / 8) as u32;
    let not_allowed = RpcError::NotAllowed as u32;
    let moving = interfaces::abi::MOVING_CALL;
    let base = u64::from(tag << 16 | slot << 8);
    let moving_cases = [
        // Each method goes through one trampoline only: a method that takes an `RRef` through
        // the plain one would get a block nobody moved to the callee, and one taking nothing
        // through the moving one would move (or not) what it does not take.
        ("a method taking an RRef, through the plain trampoline", base | hello::method::take as u64),
        ("a method taking two RRefs, through the plain trampoline", base | hello::method::pair as u64),
        (
            "a method taking nothing, through the moving trampoline",
            moving | base | hello::method::ping as u64,
        ),
        (
            "another interface's tag, through the moving trampoline",
            moving | u64::from((tag ^ 1) << 16 | slot << 8) | hello::method::take as u64,
        ),
    ];
    let cases = [
        ("a method index past the table", tag << 16 | slot << 8 | methods),
        ("the largest method index", tag << 16 | slot << 8 | 0xff),
        ("another interface's tag", (tag ^ 1) << 16 | slot << 8),
        (
            "the Kernel interface's tag",
            (interfaces::kernel::HASH[0] as u32 | (interfaces::kernel::HASH[1] as u32) << 8) << 16 | slot << 8,
        ),
        ("a slot that is not the caller's", tag << 16 | ((slot + 1) & 0xff) << 8),
        // The trampoline checks tag and index as one unsigned range (word - tag << 16 |
        // slot << 8 < methods): the tags next to the slot's on both sides, the highest
        // tag, and the word just below the slot's first must all fall outside it.
        ("the tag one above", ((tag + 1) & 0xffff) << 16 | slot << 8),
        ("the tag one below", (tag.wrapping_sub(1) & 0xffff) << 16 | slot << 8 | 1),
        ("the highest tag", 0xffff << 16 | slot << 8),
        ("the word below the slot's first", (tag << 16 | slot << 8).wrapping_sub(1)),
    ];
    let cases = cases.map(|(what, word)| (what, u64::from(word)));
    for (what, word) in cases.iter().chain(moving_cases.iter()).copied() {
        let status = raw_call(word);
        if status != not_allowed {
            fail(
                name,
                format_args!("{what} (call word {word:#x}) ended with status {status}, not {not_allowed} (not allowed)"),
            );
        }
        info!("selftest {name}: {what}: refused");
    }
    match proxy.ping(41) {
        Ok(42) => pass(
            name,
            format_args!("{} forged calls refused as not allowed; hello ping 41: 42", cases.len() + moving_cases.len()),
        ),
        other => fail(name, format_args!("hello after the forged calls: {other:?}")),
    }
}

/// Random calls of every kernel service, as the test domain, with hostile values; another
/// domain (relay, idle) must not change at all, and hello must answer afterwards.
/// Forged `RRef` addresses through relay's own services (relay owns a slot into hello):
/// every one is refused, hello's and relay's blocks stay theirs, and both keep answering.
pub fn rref_forgery(name: &str) -> ! {
    let (Some(hello_id), Some(relay_id)) = (inspect::exporter_of(hello::NAME), inspect::exporter_of(interfaces::relay::NAME)) else {
        fail(name, format_args!("hello and relay must both run"))
    };
    let refused = match inspect::forged_rrefs(relay_id, hello_id) {
        Ok(n) => n,
        Err(why) => fail(name, format_args!("{why}")),
    };
    let proxy = match hello::import() {
        Ok(p) => p,
        Err(e) => fail(name, format_args!("cannot import Hello ({e})")),
    };
    match proxy.ping(41) {
        Ok(42) => pass(name, format_args!("{refused} forged shared-heap requests refused; hello ping 41: 42")),
        other => fail(name, format_args!("hello after the forgeries: {other:?}")),
    }
}

/// Slab pinning through relay's own services: relay gives every slab a large size class
/// and frees everything; hello's small blocks must still come from the region.
pub fn rref_slab_pinning(name: &str) -> ! {
    let (Some(hello_id), Some(relay_id)) = (inspect::exporter_of(hello::NAME), inspect::exporter_of(interfaces::relay::NAME)) else {
        fail(name, format_args!("hello and relay must both run"))
    };
    let n = match inspect::slab_pinning(relay_id, hello_id) {
        Ok(n) => n,
        Err(why) => fail(name, format_args!("{why}")),
    };
    let proxy = match hello::import() {
        Ok(p) => p,
        Err(e) => fail(name, format_args!("cannot import Hello ({e})")),
    };
    match proxy.ping(41) {
        Ok(42) => pass(
            name,
            format_args!("{n} small blocks from the region after relay pinned every slab; hello ping 41: 42"),
        ),
        other => fail(name, format_args!("hello after the pinning: {other:?}")),
    }
}

/// Tiny kernel-heap blocks aligned to 4 KiB through relay's own services (the slab
/// region full): the kernel heap they take must be charged to relay's quota.
pub fn rref_aligned_blocks(name: &str) -> ! {
    let Some(relay_id) = inspect::exporter_of(interfaces::relay::NAME) else {
        fail(name, format_args!("relay must run"))
    };
    match inspect::aligned_blocks(relay_id) {
        Ok(n) => pass(name, format_args!("relay got {n} page-aligned blocks, within its quota")),
        Err(why) => fail(name, format_args!("{why}")),
    }
}

/// Relay passes blocks into hello, whose quota is full: the calls are refused before hello
/// runs and the blocks stay relay's, so the two never hold more than their quotas.
pub fn rref_quota_laundering(name: &str) -> ! {
    let (Some(hello_id), Some(relay_id)) = (inspect::exporter_of(hello::NAME), inspect::exporter_of(interfaces::relay::NAME)) else {
        fail(name, format_args!("hello and relay must both run"))
    };
    match inspect::quota_laundering(relay_id, hello_id) {
        Ok(n) => pass(
            name,
            format_args!("with hello's quota full ({n} blocks), relay's blocks were refused as no room and stayed relay's"),
        ),
        Err(why) => fail(name, format_args!("{why}")),
    }
}

pub fn services_fuzz(name: &str) -> ! {
    const ROUNDS: u32 = 3000;
    let (Some(hello_id), Some(relay_id)) = (inspect::exporter_of(hello::NAME), inspect::exporter_of(interfaces::relay::NAME)) else {
        fail(name, format_args!("hello and relay must both run"))
    };
    let relay_before = (inspect::memory_digest(relay_id), inspect::life_of(relay_id));
    let (calls, crashes) = match inspect::fuzz_services(hello_id, relay_id, ROUNDS, 0x9e37_79b9_7f4a_7c15) {
        Some(r) => r,
        None => fail(name, format_args!("hello did not come back after a crash")),
    };
    let relay_after = (inspect::memory_digest(relay_id), inspect::life_of(relay_id));
    if relay_before != relay_after || relay_after.0.is_none() {
        fail(name, format_args!("relay changed: {:?} -> {:?}", relay_before.1, relay_after.1));
    }
    let proxy = match hello::import() {
        Ok(p) => p,
        Err(e) => fail(name, format_args!("cannot import Hello ({e})")),
    };
    for _ in 0..200 {
        if proxy.ping(41) == Ok(42) {
            pass(
                name,
                format_args!("{calls} random service calls as hello, {crashes} of them crashed hello; relay unchanged; hello ping 41: 42"),
            );
        }
        sched::sleep_ms(10);
    }
    fail(name, format_args!("hello does not answer after the fuzzing"))
}

/// Crashes the console driver domain (a UART grant with its interrupt, a receive thread,
/// events) 1000 times: free frames, kernel heap use and shared-heap use return exactly to
/// where they started.
pub fn console_crash_loop(name: &str) -> ! {
    const ROUNDS: u32 = 1000;
    let crash_and_wait = |round: u32| {
        let Some(id) = inspect::exporter_of(interfaces::console::NAME) else {
            fail(name, format_args!("round {round}: no console domain"))
        };
        let generation = inspect::life_of(id).map_or(0, |l| l.1);
        inspect::crash(id, "crash injected by selftest console-crash-loop");
        for _ in 0..300 {
            if inspect::life_of(id).is_some_and(|(state, g)| state == "running" && g > generation) {
                return;
            }
            sched::sleep_ms(5);
        }
        fail(name, format_args!("round {round}: the console did not come back"))
    };
    // Some rounds first, so every lazily grown kernel table has its final size.
    for round in 0..10 {
        crash_and_wait(round);
    }
    let measure = || {
        (
            crate::memory::free_frames(),
            crate::memory::heap::usage().0,
            inspect::shared_heap_bytes(),
            sched::stats().threads,
        )
    };
    let before = crate::sched::settled(measure);
    for round in 1..=ROUNDS {
        crash_and_wait(round);
    }
    let after = super::back_to(&before, measure);
    if super::nothing_lost(before, after) {
        pass(
            name,
            format_args!(
                "{ROUNDS} console crash-and-restart rounds; free frames {}, kernel heap {} bytes used, shared heap {} bytes: {}",
                after.0,
                after.1,
                after.2,
                if before == after {
                    "unchanged"
                } else {
                    "nothing lost (the first reading caught a thread of the previous instance on its way out)"
                }
            ),
        )
    } else {
        fail(
            name,
            format_args!("after {ROUNDS} rounds (free frames, kernel heap used, shared heap, threads) went from {before:?} to {after:?}"),
        )
    }
}

/// Relay returns a block to the kernel and dies before the kernel claims it: the block goes
/// to the kernel, which claims and frees it (no kernel panic, nothing leaked).
pub fn rref_result_outlives_callee(name: &str) -> ! {
    let Some(relay_id) = inspect::exporter_of(interfaces::relay::NAME) else {
        fail(name, format_args!("relay must run"))
    };
    match inspect::result_outlives_callee(relay_id) {
        Ok(n) => pass(name, format_args!("the {n}-byte block relay returned before it died was the kernel's to claim")),
        Err(why) => fail(name, format_args!("{why}")),
    }
}

/// Red team 4's shared-heap cases (`rref_attack.rs`), on relay and hello; hello must answer
/// afterwards.
pub fn rref_red_team_4(name: &str, case: fn(u32, u32) -> Result<(), alloc::string::String>) -> ! {
    let (Some(hello_id), Some(relay_id)) = (inspect::exporter_of(hello::NAME), inspect::exporter_of(interfaces::relay::NAME)) else {
        fail(name, format_args!("hello and relay must both run"))
    };
    if let Err(why) = case(relay_id, hello_id) {
        fail(name, format_args!("{why}"))
    }
    let proxy = match hello::import() {
        Ok(p) => p,
        Err(e) => fail(name, format_args!("cannot import Hello ({e})")),
    };
    match proxy.ping(41) {
        Ok(42) => pass(name, format_args!("refused as it should be; hello ping 41: 42")),
        other => fail(name, format_args!("hello afterwards: {other:?}")),
    }
}

/// Set by `not_hellos_code`, a kernel function no exported table may point at.
static KERNEL_CODE_RAN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// A kernel function with the signature of `Hello::nop`'s table entry.
unsafe extern "C" fn not_hellos_code(_state: *const ()) -> interfaces::Ret<()> {
    KERNEL_CODE_RAN.store(true, core::sync::atomic::Ordering::SeqCst);
    interfaces::Ret::Ok(())
}

/// Red team 4: `export` checks that every entry of the table is code of the exporter, but
/// the slot keeps the table's address in the exporter's own heap (`Box::leak` in the
/// generated `export`) and the trampoline reads the entry there at every call. A domain
/// (its trusted crates subverted) that rewrites its own table after exporting it sends its
/// callers' calls wherever it likes, here into kernel code, past the check. The kernel
/// should dispatch from its own copy of the table (the one it checked).
pub fn export_table_rewritten_after_export(name: &str) -> ! {
    let Some(table) = inspect::exported_table_in_domain(hello::NAME) else {
        fail(name, format_args!("hello must run"))
    };
    let proxy = match hello::import() {
        Ok(p) => p,
        Err(e) => fail(name, format_args!("cannot import Hello ({e})")),
    };
    let entry = (table as *mut usize).wrapping_add(hello::method::nop);
    // SAFETY: hello's exported table, in hello's heap, as hello itself could write it (the
    // attack modelled); restored right after the call.
    let saved = unsafe { core::ptr::read_volatile(entry) };
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(entry, not_hellos_code as *const () as usize) };
    let r = proxy.nop();
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(entry, saved) };
    if KERNEL_CODE_RAN.load(core::sync::atomic::Ordering::SeqCst) {
        fail(
            name,
            format_args!(
                "a call of hello's nop ran kernel code (not_hellos_code at {:#x}), after hello rewrote its exported table in its own heap; the call returned {r:?}",
                not_hellos_code as *const () as usize
            ),
        )
    }
    match proxy.ping(41) {
        Ok(42) => pass(name, format_args!("the rewritten table entry was not used (nop: {r:?}); hello ping 41: 42")),
        other => fail(name, format_args!("hello afterwards: {other:?}")),
    }
}
