//! `qvq.test=bench`: instruction counts per operation, for `cargo xtask bench`. Under QEMU
//! `-icount shift=0` the PMU cycle counter counts guest instructions exactly, so every run
//! of the same image prints the same numbers. Each figure is (loop with the operation −
//! the same loop without it) / iterations.

use crate::arch::pmu::cycles;
use crate::kprintln;
use core::hint::black_box;
use interfaces::hello::{self, Hello};
use interfaces::{Numbers, RRef};

const N: u64 = 1000;

#[inline(never)]
fn direct(x: u64) -> u64 {
    black_box(x) + 1
}

fn per_op(with: u64, without: u64) -> u64 {
    with.saturating_sub(without) / N
}

fn measure(mut f: impl FnMut(u64)) -> u64 {
    f(0); // warm up (first-touch effects)
    let t0 = cycles();
    for i in 0..N {
        f(i);
    }
    cycles() - t0
}

/// Prints `bench: <name>: <instructions>` lines, then the block figures, then powers off.
pub fn run() -> ! {
    calls();
    crate::bench_block::run();
    crate::bench_block::run_throughput();
    crate::power::exit(0)
}

/// The `bench: <name>: <instructions>` lines of calls, crash recovery, loading and swaps
/// (also `qvq.test=bench-hw`, which leaves the block driver alone: on a board it is the
/// boot card).
pub fn calls() {
    let ready_at = crate::time::uptime_ns();
    let empty = measure(|i| {
        black_box(i);
    });
    let direct_call = per_op(
        measure(|i| {
            black_box(direct(black_box(i)));
        }),
        empty,
    );

    let Some((table, state)) = crate::domain::inspect::export_of(hello::NAME) else {
        crate::warn!("bench: the hello domain is not running");
        crate::power::exit(1)
    };
    // SAFETY: `table` is the Hello table the hello domain exported (generated code).
    let table = unsafe { &*(table as *const hello::Table) };
    let indirect = per_op(
        measure(|i| {
            // SAFETY: the exported table's own state pointer, as the proxy would pass it.
            black_box(unsafe { (table.nop)(black_box(state as *const ())) });
            black_box(i);
        }),
        empty,
    );
    let proxy = match hello::import() {
        Ok(p) => p,
        Err(e) => {
            crate::warn!("bench: cannot import Hello ({e})");
            crate::power::exit(1)
        }
    };
    // The figures mean something only if the calls succeed.
    let check = |what: &str, ok: bool| {
        if !ok {
            crate::warn!("bench: {what} failed");
            crate::power::exit(1)
        }
    };
    check("proxy call", proxy.nop() == Ok(()));
    check("proxy call with an argument", proxy.ping(41) == Ok(42));
    check("proxy call moving an RRef", proxy.sum(RRef::new(Numbers([1; 8]))) == Ok(8));
    let proxied = per_op(
        measure(|i| {
            let _ = black_box(proxy.nop());
            black_box(i);
        }),
        empty,
    );
    let rref_alone = per_op(
        measure(|i| {
            drop(black_box(RRef::new(Numbers([i; 8]))));
        }),
        empty,
    );
    check("proxy call taking an RRef", proxy.take(RRef::new(Numbers([1; 8]))) == Ok(()));
    check(
        "proxy call moving two RRefs",
        proxy.pair(RRef::new(Numbers([1; 8])), RRef::new(Numbers([2; 8]))) == Ok(24),
    );
    let with_rref = per_op(
        measure(|i| {
            let _ = black_box(proxy.take(RRef::new(Numbers([i; 8]))));
        }),
        empty,
    );
    let summed = per_op(
        measure(|i| {
            let _ = black_box(proxy.sum(RRef::new(Numbers([i; 8]))));
        }),
        empty,
    );
    let two = per_op(
        measure(|i| {
            let _ = black_box(proxy.pair(RRef::new(Numbers([i; 8])), RRef::new(Numbers([i; 8]))));
        }),
        empty,
    );
    let shadow = hello::Shadow::new(proxy);
    check("shadow call", shadow.nop() == Ok(()));
    let shadowed = per_op(
        measure(|i| {
            let _ = black_box(shadow.nop());
            black_box(i);
        }),
        empty,
    );
    let service = per_op(
        measure(|i| {
            // SAFETY: no arguments.
            black_box(unsafe { (interfaces::services().uptime_ns)() });
            black_box(i);
        }),
        empty,
    );

    kprintln!("bench: direct call: {direct_call}");
    kprintln!("bench: indirect call through an interface table: {indirect}");
    kprintln!("bench: cross-domain call through the proxy, no arguments: {proxied}");
    kprintln!("bench: proxy overhead over the indirect call: {}", proxied.saturating_sub(indirect));
    kprintln!("bench: cross-domain call moving one RRef (incl. its allocation and free): {with_rref}");
    kprintln!("bench: RRef allocation and free alone: {rref_alone}");
    // What moving the block adds to the call: the trampoline's move, and the argument
    // itself (the callee only drops it: its free is in the allocation and free).
    kprintln!(
        "bench: RRef transfer over a plain proxied call: {}",
        with_rref.saturating_sub(proxied).saturating_sub(rref_alone)
    );
    kprintln!("bench: cross-domain call moving one RRef that the callee sums (8 words): {summed}");
    kprintln!(
        "bench: cross-domain call moving two RRefs (the trampoline's slow path), less two allocations and frees: {}",
        two.saturating_sub(2 * rref_alone)
    );
    kprintln!("bench: cross-domain call through a shadow proxy, no arguments: {shadowed}");
    kprintln!("bench: kernel service call (uptime_ns): {service}");
    // Recovery: from the crash to the first call the restarted domain answers. Counts every
    // instruction on the core meanwhile (reclaiming, the restarter thread, re-initialising).
    let id = crate::domain::inspect::exporter_of(hello::NAME).unwrap_or(0);
    let t0 = cycles();
    crate::domain::inspect::crash(id, "crash injected by the benchmark");
    let mut tries = 0u32;
    while proxy.ping(1) != Ok(2) {
        tries += 1;
        if tries > 100_000 {
            crate::warn!("bench: hello did not come back");
            crate::power::exit(1)
        }
        // The restarter has a higher priority: a yield lets it run (no idle time counted).
        crate::sched::yield_now();
    }
    kprintln!("bench: crash to first successful call on the restarted domain: {}", cycles() - t0);
    let costs = crate::domain::inspect::boot_costs();
    for (name, verify, load) in &costs {
        kprintln!("bench: verify domain {name}: {verify}");
        kprintln!("bench: load domain {name}: {load}");
    }
    // The floor under verifying the shell: hashing its ELF and checking one signature, each
    // alone; verification over it is what the rest (parsing, ELF checks, copies) costs.
    let Some((sha, ed)) = crate::domain::inspect::crypto_floor("shell.qvd") else {
        crate::warn!("bench: the shell's initrd entry is missing or does not verify");
        crate::power::exit(1)
    };
    kprintln!("bench: SHA-256 of the shell's bytes alone: {sha}");
    kprintln!("bench: one Ed25519 verification alone: {ed}");
    let shell = costs.iter().find(|c| c.0 == "shell").map_or(0, |c| c.1);
    kprintln!(
        "bench: shell verification over the crypto floor, per mille: {}",
        shell * 1000 / (sha + ed).max(1)
    );
    // Hot swap: hello back and forth between 0.2.0 and 0.1.1 (signed as a downgrade). The window is from
    // pausing the slots to releasing the callers (hello's state is 8 bytes); end to end is
    // from the request (verification included) to the first call the new version answers.
    let (mut window, mut end_to_end, mut end_to_end_ns) = (u64::MAX, 0, 0);
    for round in 0..4 {
        let entry = if round % 2 == 0 { "0.2.0" } else { "0.1.1" };
        let (t0, ns0) = (cycles(), crate::time::uptime_ns());
        let o = crate::domain::inspect::swap("hello", entry);
        check("swap", o.swapped);
        check("a call to the swapped-in version", proxy.ping(1) == Ok(2));
        window = window.min(o.window);
        (end_to_end, end_to_end_ns) = (cycles() - t0, crate::time::uptime_ns() - ns0);
    }
    // The console driver, while the shell waits inside it for input (that call is
    // cancelled and made again on the new version) and with 516 bytes of state.
    let o = crate::domain::inspect::swap("console", "0.2.0");
    check("swapping the console", o.swapped);
    kprintln!("bench: swap window (slots paused to callers released): {window}");
    kprintln!("bench: swap window, console driver with a waiting reader: {}", o.window);
    kprintln!("bench: swap request to the first call the new version answers: {end_to_end}");
    kprintln!("bench: swap request to the new version serving, virtual ns: {end_to_end_ns}");
    kprintln!("bench: reset to all domains started: {}", ready_at);
}
