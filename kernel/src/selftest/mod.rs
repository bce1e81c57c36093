//! Boot-time self tests, chosen with `qvq.test=NAME` on the kernel command line. The QEMU
//! harness (`cargo xtask test`) boots one per test and judges the console and exit status.
//! Each prints `selftest NAME: PASS` and powers off with 0, or `... FAIL: why` and 1;
//! the fault tests end in the kernel's fault report (status 3) by design.

mod block;
mod fs;
mod isolation;
mod sha256;

use crate::sched::{self, Priority, WaitQueue};
use crate::{info, kprintln};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub const NAMES: &[&str] = &[
    "boot",
    "fault",
    "stack-overflow",
    "wx-write",
    "wx-exec",
    "domain-wx-write",
    "domain-wx-exec",
    "ticks",
    "threads",
    "priorities",
    "waitqueue",
    "sha256",
    "bench",
    "bench-growth",
    "bench-boot",
    "bench-hw",
    "crash-loop",
    "shadow",
    "threads-crash",
    "proxy-refuses-forged-calls",
    "services-fuzz",
    "rref-forgery",
    "rref-slab-pinning",
    "rref-aligned-blocks",
    "rref-quota-laundering",
    "rref-result-outlives-callee",
    "rref-claim-of-an-unreturned-block",
    "rref-sent-block-freed-or-passed-on",
    "rref-result-for-a-dead-caller",
    "export-table-rewritten-after-export",
    "console-crash-loop",
    "block-crash-writes",
    "block-swap-io",
    "fs-crash-writes",
];

/// True if `after` (free frames, kernel heap used, shared heap used, threads) holds on to
/// nothing that `before` did not: as many free frames or more, as little heap or less, as
/// few threads or fewer. (A thread of the last instance can still be on its way out at
/// the first reading; it never is at the second, which waits for the first state again.)
pub(crate) fn nothing_lost(before: (usize, usize, usize, usize), after: (usize, usize, usize, usize)) -> bool {
    after.0 >= before.0 && after.1 <= before.1 && after.2 <= before.2 && after.3 <= before.3
}

/// `measure()` once it equals `target` again, or its last reading after about 2 s.
pub(crate) fn back_to<T: PartialEq>(target: &T, measure: impl Fn() -> T) -> T {
    let mut now = measure();
    for _ in 0..100 {
        if now == *target {
            break;
        }
        sched::sleep_ms(20);
        now = measure();
    }
    now
}

pub(crate) fn pass(name: &str, detail: core::fmt::Arguments) -> ! {
    info!("selftest {name}: PASS ({detail})");
    crate::power::exit(0)
}

pub(crate) fn fail(name: &str, detail: core::fmt::Arguments) -> ! {
    info!("selftest {name}: FAIL: {detail}");
    crate::power::exit(1)
}

// Red team 4's shared-heap cases, each run on (relay, hello).
fn inspect_claim(relay: u32, hello: u32) -> Result<(), alloc::string::String> {
    crate::domain::inspect::claim_of_an_unreturned_block(relay, hello)
}
fn inspect_sent(relay: u32, hello: u32) -> Result<(), alloc::string::String> {
    crate::domain::inspect::sent_block_freed_or_passed_on(relay, hello)
}
fn inspect_dead_caller(relay: u32, hello: u32) -> Result<(), alloc::string::String> {
    crate::domain::inspect::result_for_a_dead_caller(relay, hello)
}

/// Runs the named test in the calling (init) thread. Never returns.
pub fn run(name: &str) -> ! {
    info!("selftest {name}: start");
    match name {
        "boot" => pass(name, format_args!("booted to the init thread")),
        "fault" => {
            // An address no page table maps: the kernel must print a decoded report.
            let p = core::ptr::dangling::<u64>();
            // SAFETY: deliberately unsound — this test exists to take a data abort.
            let v = unsafe { core::ptr::read_volatile(p) };
            fail(name, format_args!("read of an unmapped address returned {v}"))
        }
        "stack-overflow" => {
            #[allow(unconditional_recursion)]
            fn recurse(depth: u64) -> u64 {
                let pad = [depth; 64];
                core::hint::black_box(&pad);
                recurse(depth + 1) + pad[3]
            }
            let v = recurse(0);
            fail(name, format_args!("unbounded recursion returned {v}"))
        }
        "wx-write" => {
            let text = run as *const () as *mut u32;
            // SAFETY: deliberately unsound — kernel text is mapped read-only; this must fault.
            unsafe { core::ptr::write_volatile(text, 0xd503_201f) };
            fail(name, format_args!("a write to kernel text succeeded"))
        }
        "wx-exec" => {
            static mut DATA: [u32; 2] = [0xd65f_03c0, 0]; // `ret`
            let f = core::ptr::addr_of!(DATA) as usize;
            // SAFETY: deliberately unsound — data is mapped execute-never; this must fault.
            let f: extern "C" fn() = unsafe { core::mem::transmute(f) };
            f();
            fail(name, format_args!("code in a data page ran"))
        }
        "domain-wx-write" => match crate::domain::inspect::segment_of("hello", loader::Permission::RX) {
            Some(code) => {
                info!("selftest {name}: writing to the hello domain's code at {code:#x}");
                // SAFETY: deliberately unsound — domain code is mapped read-only; this must fault.
                unsafe { core::ptr::write_volatile(code as *mut u32, 0) };
                fail(name, format_args!("a write to domain code succeeded"))
            }
            None => fail(name, format_args!("the hello domain is not loaded")),
        },
        "domain-wx-exec" => match crate::domain::inspect::segment_of("hello", loader::Permission::RW) {
            Some(data) => {
                info!("selftest {name}: jumping into the hello domain's data at {data:#x}");
                // SAFETY: deliberately unsound — domain data is mapped execute-never; this must fault.
                let f: extern "C" fn() = unsafe { core::mem::transmute(data) };
                f();
                fail(name, format_args!("domain data ran as code"))
            }
            None => fail(name, format_args!("the hello domain is not loaded")),
        },
        "bench" => crate::bench::run(),
        "bench-growth" => crate::bench_growth::run(),
        "bench-boot" => crate::bench_growth::boot(),
        "bench-hw" => crate::bench_growth::hardware(),
        "crash-loop" => crash_loop(name),
        "block-crash-writes" => block::crash_writes(name),
        "block-swap-io" => block::swap_io(name),
        "fs-crash-writes" => fs::crash_writes(name),
        "shadow" => shadow(name),
        "threads-crash" => threads_crash(name),
        "proxy-refuses-forged-calls" => isolation::proxy_refuses_forged_calls(name),
        "services-fuzz" => isolation::services_fuzz(name),
        "rref-forgery" => isolation::rref_forgery(name),
        "rref-slab-pinning" => isolation::rref_slab_pinning(name),
        "rref-aligned-blocks" => isolation::rref_aligned_blocks(name),
        "rref-quota-laundering" => isolation::rref_quota_laundering(name),
        "rref-result-outlives-callee" => isolation::rref_result_outlives_callee(name),
        "rref-claim-of-an-unreturned-block" => isolation::rref_red_team_4(name, inspect_claim),
        "rref-sent-block-freed-or-passed-on" => isolation::rref_red_team_4(name, inspect_sent),
        "rref-result-for-a-dead-caller" => isolation::rref_red_team_4(name, inspect_dead_caller),
        "export-table-rewritten-after-export" => isolation::export_table_rewritten_after_export(name),
        "console-crash-loop" => isolation::console_crash_loop(name),
        "ticks" => {
            let t0 = crate::time::ticks();
            let c0 = crate::time::uptime_ns();
            sched::sleep_ms(200);
            let (t1, c1) = (crate::time::ticks(), crate::time::uptime_ns());
            let (ticks, ms) = (t1 - t0, (c1 - c0) / 1_000_000);
            if !crate::time::ticking() {
                fail(name, format_args!("the timer interrupt is not running"))
            } else if !(18..=40).contains(&ticks) || ms < 200 {
                fail(name, format_args!("{ticks} ticks in {ms} ms of sleep_ms(200)"))
            } else {
                pass(name, format_args!("{ticks} ticks during a 200 ms sleep, {ms} ms by the counter"))
            }
        }
        "threads" => threads(name),
        "priorities" => priorities(name),
        "waitqueue" => waitqueue(name),
        "sha256" => sha256::run(name),
        other => fail(other, format_args!("unknown test; known: {}", NAMES.join(", "))),
    }
}

/// Two busy threads of equal priority that never yield: only the tick can interleave them.
fn threads(name: &str) -> ! {
    const ROUNDS: usize = 6;
    let trace: Arc<crate::sync::IrqLock<Vec<u8>>> = Arc::new(crate::sync::IrqLock::new("trace", Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    for tag in [b'A', b'B'] {
        let (trace, done) = (trace.clone(), done.clone());
        let spawned = sched::spawn(if tag == b'A' { "spin-a" } else { "spin-b" }, Priority::Normal, move || {
            for round in 0..ROUNDS {
                // Spin ~25 ms by the counter, never yielding.
                let until = crate::time::uptime_ns() + 25_000_000;
                while crate::time::uptime_ns() < until {
                    core::hint::spin_loop();
                }
                trace.lock().push(tag);
                kprintln!("thread {} round {}", tag as char, round);
            }
            let d = done.load(Ordering::Relaxed);
            done.store(d + 1, Ordering::Relaxed);
        });
        if let Err(e) = spawned {
            fail(name, format_args!("spawn: {e}"));
        }
    }
    while done.load(Ordering::Relaxed) < 2 {
        sched::sleep_ms(20);
    }
    let trace = trace.lock().clone();
    let changes = trace.windows(2).filter(|w| w[0] != w[1]).count();
    let stats = sched::stats();
    if changes >= 2 && stats.preemptions > 0 {
        pass(
            name,
            format_args!(
                "order {}, {} alternations, {} preemptions",
                core::str::from_utf8(&trace).unwrap_or("?"),
                changes,
                stats.preemptions
            ),
        )
    } else {
        fail(
            name,
            format_args!(
                "no interleaving: order {}, {} preemptions",
                core::str::from_utf8(&trace).unwrap_or("?"),
                stats.preemptions
            ),
        )
    }
}

/// A high-priority thread preempts a busy normal one the tick it wakes; a low-priority
/// thread gets nothing while a normal one is runnable, even one that keeps yielding.
fn priorities(name: &str) -> ! {
    static HIGH_WOKE: AtomicBool = AtomicBool::new(false);
    static LOW_RAN: AtomicBool = AtomicBool::new(false);
    let high = sched::spawn("high", Priority::High, || {
        sched::sleep_ms(30);
        HIGH_WOKE.store(true, Ordering::Relaxed);
    });
    let low = sched::spawn("low", Priority::Low, || LOW_RAN.store(true, Ordering::Relaxed));
    if let Some(e) = high.err().or(low.err()) {
        fail(name, format_args!("spawn: {e}"));
    }
    // Busy for 100 ms, yielding all the while: only equal or higher priorities may run.
    let until = crate::time::uptime_ns() + 100_000_000;
    while crate::time::uptime_ns() < until {
        sched::yield_now();
    }
    let (high_ran, low_ran_early) = (HIGH_WOKE.load(Ordering::Relaxed), LOW_RAN.load(Ordering::Relaxed));
    sched::sleep_ms(20);
    let low_ran_later = LOW_RAN.load(Ordering::Relaxed);
    match (high_ran, low_ran_early, low_ran_later) {
        (true, false, true) => pass(name, format_args!("high preempted a busy normal thread; low ran only once normal slept")),
        _ => fail(
            name,
            format_args!("high ran: {high_ran}, low ran while normal was busy: {low_ran_early}, low ran after: {low_ran_later}"),
        ),
    }
}

/// Crashes the hello domain 1000 times (each restarted by policy) and checks that free
/// frames, kernel heap use and shared-heap use return exactly to where they started, and
/// that every restarted instance starts from its initial data: the count of pings it
/// served (a static of hello's, 3 or more when it crashed) is 1 after the first ping.
fn crash_loop(name: &str) -> ! {
    use interfaces::hello::{self, Hello};
    const ROUNDS: u32 = 1000;
    let proxy = match hello::import() {
        Ok(p) => p,
        Err(e) => fail(name, format_args!("cannot import Hello ({e})")),
    };
    let crash_and_wait = |round: u32| {
        // Written into hello's data by the instance about to crash; gone after the restart.
        for x in 0..2 {
            if proxy.ping(x) != Ok(x + 1) {
                fail(name, format_args!("round {round}: hello did not answer before the crash"));
            }
        }
        if proxy.fail(0) != Err(interfaces::RpcError::Crashed) {
            fail(name, format_args!("round {round}: the panicking call did not fail with Crashed"));
        }
        // The restarter (a higher-priority thread) brings it back once no thread is left
        // inside the dead instance; wait for it (up to 3 s).
        for _ in 0..300 {
            if proxy.ping(round as u64) == Ok(round as u64 + 1) {
                match proxy.served() {
                    Ok(1) => return,
                    other => fail(
                        name,
                        format_args!("round {round}: the restarted hello counts {other:?} pings served, not 1: its data is not as it was loaded"),
                    ),
                }
            }
            sched::sleep_ms(10);
        }
        fail(name, format_args!("round {round}: hello did not come back"))
    };
    // Some rounds first, so every lazily grown kernel table has its final size.
    for round in 0..10 {
        crash_and_wait(round);
    }
    let measure = || {
        (
            crate::memory::free_frames(),
            crate::memory::heap::usage().0,
            crate::domain::inspect::shared_heap_bytes(),
            sched::stats().threads,
        )
    };
    let before = sched::settled(measure);
    for round in 1..=ROUNDS {
        crash_and_wait(round);
    }
    let after = back_to(&before, measure);
    if nothing_lost(before, after) {
        pass(
            name,
            format_args!(
                "{ROUNDS} crash-and-restart rounds, each restarted instance's data as it was loaded; free frames {}, kernel heap {} bytes used, shared heap {} bytes: {}",
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

/// Three threads call the test domain in a loop; one of them makes it panic now and then,
/// and this thread crashes it five more times: every call ends with the right answer or an
/// error (never a hang or a wrong answer), and after the last restart every thread's calls
/// succeed again. (Errors are counted; the restarter usually wins the race, so the other
/// threads mostly see answers.)
fn threads_crash(name: &str) -> ! {
    use interfaces::hello::{self, Hello};
    use interfaces::RpcError;
    const THREADS: usize = 3;
    let Ok(proxy) = hello::import() else {
        fail(name, format_args!("cannot import Hello"))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(crate::sync::IrqLock::new("results", [(0u32, 0u32, 0u32); THREADS]));
    for t in 0..THREADS {
        let (stop, finished, results) = (stop.clone(), finished.clone(), results.clone());
        let spawned = sched::spawn("caller", Priority::Normal, move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = proxy.ping(i);
                let mut res = results.lock();
                match r {
                    Ok(v) if v == i + 1 => res[t].0 += 1,
                    Err(RpcError::Crashed) | Err(RpcError::Unavailable) => res[t].1 += 1,
                    _ => res[t].2 += 1,
                }
                drop(res);
                i += 1;
                // Thread 0 also crashes hello itself now and then (a panic inside its call).
                if t == 0 && i.is_multiple_of(200) && proxy.fail(0) == Err(RpcError::Crashed) {
                    results.lock()[t].1 += 1;
                }
                sched::yield_now();
            }
            // After the last restart, calls succeed again.
            for _ in 0..300 {
                if proxy.ping(7) == Ok(8) {
                    break;
                }
                sched::sleep_ms(10);
            }
            if proxy.ping(7) != Ok(8) {
                results.lock()[t].2 += 1;
            }
            let f = finished.load(Ordering::Relaxed);
            finished.store(f + 1, Ordering::Relaxed);
        });
        if let Err(e) = spawned {
            fail(name, format_args!("spawn: {e}"));
        }
    }
    for _ in 0..5 {
        sched::sleep_ms(60);
        if let Some(id) = crate::domain::inspect::exporter_of(hello::NAME) {
            crate::domain::inspect::crash(id, "crash injected by selftest threads-crash");
        }
    }
    sched::sleep_ms(60);
    stop.store(true, Ordering::Relaxed);
    for _ in 0..500 {
        if finished.load(Ordering::Relaxed) == THREADS {
            break;
        }
        sched::sleep_ms(10);
    }
    let res = *results.lock();
    let (ok, errors, wrong): (u32, u32, u32) = res.iter().fold((0, 0, 0), |a, r| (a.0 + r.0, a.1 + r.1, a.2 + r.2));
    if finished.load(Ordering::Relaxed) == THREADS && wrong == 0 && ok > 0 && errors > 0 {
        pass(
            name,
            format_args!("{THREADS} threads, 5 injected crashes and panics from one of them: {ok} calls answered, {errors} got an error, none wrong or hung"),
        )
    } else {
        fail(
            name,
            format_args!(
                "finished {} of {THREADS}; {ok} answered, {errors} errors, {wrong} wrong",
                finished.load(Ordering::Relaxed)
            ),
        )
    }
}

/// The test domain crashes; a plain proxy sees it, a shadow proxy does not (it waits for
/// the restart and calls again).
fn shadow(name: &str) -> ! {
    use interfaces::hello::{self, Hello};
    use interfaces::RpcError;
    let Ok(proxy) = hello::import() else {
        fail(name, format_args!("cannot import Hello"))
    };
    let shadow = hello::Shadow::new(proxy);
    if shadow.ping(1) != Ok(2) {
        fail(name, format_args!("the shadow's normal path failed"));
    }
    let Some(id) = crate::domain::inspect::exporter_of(hello::NAME) else {
        fail(name, format_args!("no hello"))
    };
    let generation_before = proxy.generation();
    // With interrupts masked nothing can switch to the restarter between the crash and the
    // plain call, so the plain proxy sees the failure window for certain.
    let masked = crate::arch::cpu::irq_save();
    crate::domain::inspect::crash(id, "crash injected by selftest shadow");
    let plain = proxy.ping(5);
    crate::arch::cpu::irq_restore(masked);
    let shadowed = shadow.ping(5);
    let generation_after = proxy.generation();
    if plain == Err(RpcError::Unavailable) && shadowed == Ok(6) && generation_after == generation_before + 1 {
        pass(
            name,
            format_args!("plain proxy: {plain:?}; shadow proxy: {shadowed:?} after the restart; handle generation {generation_before} -> {generation_after}"),
        )
    } else {
        fail(
            name,
            format_args!("plain proxy: {plain:?}; shadow proxy: {shadowed:?}; handle generation {generation_before} -> {generation_after}"),
        )
    }
}

/// A consumer blocks on a wait queue; a producer sleeps, then wakes it.
fn waitqueue(name: &str) -> ! {
    static QUEUE: WaitQueue = WaitQueue::new();
    static READY: AtomicBool = AtomicBool::new(false);
    let before = crate::time::ticks();
    if let Err(e) = sched::spawn("producer", Priority::Normal, || {
        sched::sleep_ms(50);
        READY.store(true, Ordering::Relaxed);
        QUEUE.wake_one();
    }) {
        fail(name, format_args!("spawn: {e}"));
    }
    QUEUE.wait_until(|| READY.load(Ordering::Relaxed).then_some(()));
    let waited = crate::time::ticks() - before;
    if waited >= 5 {
        pass(name, format_args!("blocked {waited} ticks until woken"))
    } else {
        fail(name, format_args!("woke after only {waited} ticks"))
    }
}
