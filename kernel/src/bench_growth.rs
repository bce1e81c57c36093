//! `qvq.test=bench-growth` and `qvq.test=bench-boot`: how costs grow with their work, for
//! `cargo xtask bench` (xtask/src/bench_growth.rs prints the tables and judges the
//! growth). Prints `growth: <name>: <count>` lines, then powers off. Under QEMU
//! `-icount shift=0` the counts are guest instructions; on hardware (`cargo xtask dist
//! --bench`) PMU cycles.
//!
//! - proxy call against scalar argument count (0, 1, 2, 4, 6: `Growth::args*`), with the
//!   indirect call through the exported table beside it;
//! - the hot-swap window against the state handed over (8 B to 64 KiB: domains
//!   `growth-s<bytes>`, each swapped to its next version and back);
//! - verification against ELF size (initrd entries `growth-pad-<KiB>.qvd`: the growth
//!   domain's ELF with bytes appended that no segment loads);
//! - `bench-boot`: reset to all domains started, and each domain's verify + load (the
//!   initrd holds only N generated domains; the host boots it for several N).

use crate::arch::pmu::cycles;
use crate::kprintln;
use core::hint::black_box;
use interfaces::growth::{self, Growth};

const N: u64 = 1000;

/// State sizes of the `growth-s<bytes>` domains (their minor versions are 1 to 5).
pub const STATE_SIZES: [usize; 5] = [8, 64, 512, 4096, 65536];
/// Bytes appended to the growth ELF in the `growth-pad-<KiB>.qvd` entries, in KiB.
pub const PADS_KIB: [usize; 5] = [0, 16, 64, 256, 1024];

fn measure(mut f: impl FnMut(u64)) -> u64 {
    f(0); // warm up (first-touch effects)
    let t0 = cycles();
    for i in 0..N {
        f(i);
    }
    cycles() - t0
}

fn failed(what: core::fmt::Arguments) -> ! {
    crate::warn!("bench-growth: {what}");
    crate::power::exit(1)
}

/// Prints the growth figures, then powers off.
pub fn run() -> ! {
    measure_growth();
    crate::power::exit(0)
}

/// `qvq.test=bench-hw` (`cargo xtask dist --bench`): the CPU's clock, the figures of
/// `bench::calls` and the growth figures, on whatever counts PMU cycles: a real Cortex-A53
/// counts cycles, QEMU without `-icount` something that follows the host's time.
pub fn hardware() -> ! {
    let ready_cycles = cycles();
    // Cycles per second of the generic timer (busy: the counter stops in WFI).
    let (t0, c0) = (crate::time::uptime_ns(), cycles());
    while crate::time::uptime_ns() - t0 < 100_000_000 {
        core::hint::spin_loop();
    }
    let (t1, c1) = (crate::time::uptime_ns(), cycles());
    let hz = (c1 - c0) as u128 * 1_000_000_000 / (t1 - t0).max(1) as u128;
    kprintln!(
        "bench-hw: the figures below are PMU cycles (not QEMU instructions) at a CPU clock of {} MHz",
        hz / 1_000_000
    );
    kprintln!("bench-hw: kernel entry to all domains started, cycles: {ready_cycles}");
    crate::bench::calls();
    measure_growth();
    kprintln!("bench-hw: done");
    crate::power::exit(0)
}

/// Prints the proxy, swap-window and verification figures against their work.
fn measure_growth() {
    let empty = measure(|i| {
        black_box(i);
    });
    let per_op = |with: u64| with.saturating_sub(empty) / N;
    let Some((table, state)) = crate::domain::inspect::export_of(growth::NAME) else {
        failed(format_args!("the growth domain is not running"))
    };
    // SAFETY: `table` is the Growth table the growth domain exported (generated code).
    let table = unsafe { &*(table as *const growth::Table) };
    let state = state as *const ();
    let proxy = match growth::import() {
        Ok(p) => p,
        Err(e) => failed(format_args!("cannot import Growth ({e})")),
    };
    if proxy.args6(1, 2, 3, 4, 5, 6) != Ok(21) || proxy.args0() != Ok(0) {
        failed(format_args!("a Growth call failed"));
    }
    // Each indirect call below passes the exported table's own state pointer, as the
    // proxy would, and plain integers.
    let rows: [(u32, u64, u64); 5] = [
        (
            0,
            per_op(measure(|i| {
                // SAFETY: the table's own state pointer and integers (see above).
                let _ = black_box(unsafe { (table.args0)(black_box(state)) });
                black_box(i);
            })),
            per_op(measure(|i| {
                let _ = black_box(proxy.args0());
                black_box(i);
            })),
        ),
        (
            1,
            per_op(measure(|i| {
                let x = black_box(i);
                // SAFETY: the table's own state pointer and integers (see above).
                let _ = black_box(unsafe { (table.args1)(black_box(state), x) });
            })),
            per_op(measure(|i| {
                let x = black_box(i);
                let _ = black_box(proxy.args1(x));
            })),
        ),
        (
            2,
            per_op(measure(|i| {
                let x = black_box(i);
                // SAFETY: the table's own state pointer and integers (see above).
                let _ = black_box(unsafe { (table.args2)(black_box(state), x, x) });
            })),
            per_op(measure(|i| {
                let x = black_box(i);
                let _ = black_box(proxy.args2(x, x));
            })),
        ),
        (
            4,
            per_op(measure(|i| {
                let x = black_box(i);
                // SAFETY: the table's own state pointer and integers (see above).
                let _ = black_box(unsafe { (table.args4)(black_box(state), x, x, x, x) });
            })),
            per_op(measure(|i| {
                let x = black_box(i);
                let _ = black_box(proxy.args4(x, x, x, x));
            })),
        ),
        (
            6,
            per_op(measure(|i| {
                let x = black_box(i);
                // SAFETY: the table's own state pointer and integers (see above).
                let _ = black_box(unsafe { (table.args6)(black_box(state), x, x, x, x, x, x) });
            })),
            per_op(measure(|i| {
                let x = black_box(i);
                let _ = black_box(proxy.args6(x, x, x, x, x, x));
            })),
        ),
    ];
    for (args, indirect, proxied) in rows {
        kprintln!("growth: indirect call, {args} args: {indirect}");
        kprintln!("growth: proxy call, {args} args: {proxied}");
    }
    swap_windows();
    for kib in PADS_KIB {
        let entry = alloc::format!("growth-pad-{kib}.qvd");
        match crate::domain::inspect::verify_entry(&entry) {
            Some(cost) => kprintln!("growth: verify, {kib} KiB appended: {cost}"),
            None => failed(format_args!("{entry} is missing or refused")),
        }
    }
}

/// Each `growth-s<bytes>` domain swapped to its next version (0.k.2) and back (0.k.0, a
/// permitted downgrade); the smaller window of the two.
fn swap_windows() {
    for (k, bytes) in STATE_SIZES.iter().enumerate() {
        let name = alloc::format!("growth-s{bytes}");
        let mut window = u64::MAX;
        for patch in [2, 0] {
            let o = crate::domain::inspect::swap(&name, &alloc::format!("0.{}.{patch}", k + 1));
            if !o.swapped {
                failed(format_args!("the swap of {name} to 0.{}.{patch} was refused", k + 1));
            }
            window = window.min(o.window);
        }
        kprintln!("growth: swap window, {bytes} state bytes: {window}");
    }
}

/// `qvq.test=bench-boot`: reset to all domains started (the time the self test starts:
/// under `-icount shift=0`, virtual nanoseconds are instructions), the domains started,
/// and their verify and load costs in total.
pub fn boot() -> ! {
    let ready_at = crate::time::uptime_ns();
    let ready_cycles = cycles();
    let costs = crate::domain::inspect::boot_costs();
    let (verify, load) = costs.iter().fold((0, 0), |(v, l), c| (v + c.1, l + c.2));
    kprintln!("growth: domains started: {}", costs.len());
    kprintln!("growth: reset to all domains started, ns: {ready_at}");
    kprintln!("growth: reset to all domains started, cycles: {ready_cycles}");
    kprintln!("growth: verify, all domains: {verify}");
    kprintln!("growth: load, all domains: {load}");
    crate::power::exit(0)
}
