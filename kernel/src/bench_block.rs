//! `cargo xtask bench`, block part: instructions per 4 KiB request through the board's
//! block driver (virtio-blk on virt, sdhci on rpi3), read and write, at batch 1, 8 and 32,
//! three ways: direct (the driver runs its own batches: no cross-domain call), through the
//! proxy, and through the re-issuing block shadow (which keeps a journal of each batch, a
//! write's data included). The driver code, the data path and the device are the same in
//! all three; the difference is the isolation boundary (the call, and the batch's `RRef`
//! moving there and back).
//!
//! Not counted, in all three ways alike: the time the driver waits for the device's
//! interrupt, from its `irq_wait` call to that call's return (`sched::device_wait_cycles`),
//! and any time the CPU idles (`sched::idle_cycles`). QEMU completes a virtio-blk request in
//! a bottom half on its main loop thread, which runs beside the guest's CPU thread; so the
//! completion interrupt arrives at a point of the guest's instruction stream that follows
//! the host's thread timing: before the driver looks (no wait at all) or after it blocked
//! (a switch to the idle thread, the interrupt, the wake-up and a switch back: about 2,250
//! instructions more a batch), which moved the batch-1 figures by a third between runs.
//! What the wait costs is the device's latency and the scheduler's, not the request
//! path's; with it left out, the driver waiting for the interrupt before it reads the used
//! ring, and the interrupt taken only inside the wait (`domain::grants`), every instruction
//! counted runs the same way in every run. What is counted: the driver preparing the
//! batch, telling the device, acknowledging the interrupt and reading the completions,
//! and, through the proxy or a shadow, the crossing, the `RRef` moving and the shadow's
//! journal. (rpi3's SD driver polls its controller instead of waiting for the interrupt:
//! there nothing but idle time is left out, and QEMU completes each command inside the
//! register write that starts it.)

use crate::arch::pmu::cycles;
use crate::kprintln;
use crate::sched::{device_wait_cycles, idle_cycles};
use interfaces::block::{self, Block};
use interfaces::block_bench::{self, BlockBench};
use interfaces::{block_op, block_status, BlockBatch, RRef};

/// Requests measured per trial: rounds = this / batch.
const REQUESTS: u32 = 64;
/// Trials per figure (the least is reported).
const TRIALS: usize = 3;

/// Runs `rounds` batches through `dev` (a proxy or a shadow) after one warm-up round;
/// returns the cycles of the rounds, or `None` if a request failed.
fn through(dev: &impl Block, op: u32, batch: u32, rounds: u32) -> Option<u64> {
    let mut b = RRef::<BlockBatch>::try_new_zeroed()?;
    b.count = batch;
    for (i, r) in b.requests.iter_mut().enumerate() {
        r.op = op;
        r.lba = i as u64;
    }
    // The batch came back from the driver: its count is an allegation (a hostile driver
    // once made this slice panic the kernel); only the requests sent are looked at.
    let ok = |b: &BlockBatch| b.requests.iter().take(batch as usize).all(|r| r.status == block_status::OK);
    b = dev.submit(b).ok().filter(|b| ok(b))?;
    // `waited` outside the measured span, before it starts and after it ends.
    let waited0 = waited();
    let t0 = cycles();
    for _ in 0..rounds {
        b = dev.submit(b).ok()?;
    }
    let spent = cycles() - t0;
    let spent = spent.saturating_sub(waited() - waited0);
    ok(&b).then_some(spent)
}

/// Cycles this thread (the one the driver runs on, in all three ways) waited for the
/// device so far, and those the CPU idled: the device's time, not the request's
/// instructions (the module's docs).
fn waited() -> u64 {
    device_wait_cycles() + idle_cycles()
}

/// The driver's own measurement of `rounds` batches, less the waiting meanwhile.
fn direct_busy(direct: &impl BlockBench, op: u32, batch: u32, rounds: u32) -> Option<u64> {
    direct.direct(op, batch, 1).ok()?; // warm up, as `through` does
    let waited0 = waited();
    let spent = direct.direct(op, batch, rounds).ok()?;
    Some(spent.saturating_sub(waited() - waited0))
}

/// Prints `bench: block ...` lines; says why not if no block driver runs.
pub fn run() {
    let (Ok(proxy), Ok(direct)) = (block::import(), block_bench::import()) else {
        kprintln!("bench: block: no block driver runs (attach a disk: cargo xtask bench does)");
        return;
    };
    let shadow = interfaces::block_shadow::BlockShadow::new(proxy);
    for (op, name) in [(block_op::READ, "read"), (block_op::WRITE, "write")] {
        for batch in [1u32, 8, 32] {
            let rounds = REQUESTS / batch;
            let per = |spent: Option<u64>| spent.map(|c| c / u64::from(rounds * batch));
            // The least of three trials: a trial that a timer tick or another thread's work
            // fell into is not the cost of a request.
            let best = |f: &dyn Fn() -> Option<u64>| {
                (0..TRIALS)
                    .map(|_| f())
                    .collect::<Option<alloc::vec::Vec<u64>>>()
                    .and_then(|v| v.into_iter().min())
            };
            let d = per(best(&|| direct_busy(&direct, op, batch, rounds)));
            let p = per(best(&|| through(&proxy, op, batch, rounds)));
            let s = per(best(&|| through(&shadow, op, batch, rounds)));
            let (Some(d), Some(p), Some(s)) = (d, p, s) else {
                kprintln!("bench: block {name} batch {batch}: a request failed");
                continue;
            };
            kprintln!("bench: block {name} batch {batch}, direct: {d}");
            kprintln!("bench: block {name} batch {batch}, through the proxy: {p}");
            kprintln!("bench: block {name} batch {batch}, through a shadow: {s}");
        }
    }
}

/// How long each throughput run lasts, and how often the crashing runs crash the driver
/// (virtual time: under `-icount shift=0` one instruction is one nanosecond).
const THROUGHPUT_NS: u64 = 1_000_000_000;
const CRASH_EVERY_MS: u64 = 100;

static CRASHING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static CRASHES: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
/// Which crashing run is on: a crasher of an earlier run that wakes late stops.
static CRASH_RUN: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Crashes the block driver every `CRASH_EVERY_MS` from `from_ns` (uptime) while
/// `CRASHING` holds for run `run`, and never at or past the run's end. Each crash is due
/// at its multiple of the period from `from_ns`, not a period after the one before: late
/// wake-ups (the tick's rounding, the benchmark thread's time slice) do not add up, so a
/// run has as many crashes every time (they used to push the last one out of the second
/// now and then: 8 crashes or 9, a tenth of the run's throughput).
fn crasher(from_ns: u64, run: u32) {
    use core::sync::atomic::Ordering::Relaxed;
    let on = || CRASHING.load(Relaxed) && CRASH_RUN.load(Relaxed) == run;
    let mut due = from_ns;
    while on() {
        due += CRASH_EVERY_MS * 1_000_000;
        let now = crate::time::uptime_ns();
        if due > now {
            crate::sched::sleep_ms((due - now).div_ceil(1_000_000));
        }
        if !on() || crate::time::uptime_ns() >= from_ns + THROUGHPUT_NS {
            break;
        }
        if let Some(id) = crate::domain::inspect::exporter_of(block::NAME) {
            crate::domain::inspect::crash(id, "crash injected by the block throughput benchmark");
            CRASHES.fetch_add(1, Relaxed);
        }
    }
}

/// Requests of `op` completed in `THROUGHPUT_NS` of virtual time through the re-issuing
/// shadow, batches of 32 over the first blocks; with the driver crashed every
/// `CRASH_EVERY_MS` if `crash`. (requests, crashes), or `None` if a batch failed.
fn throughput(shadow: &interfaces::block_shadow::BlockShadow, op: u32, crash: bool) -> Option<(u64, u32)> {
    use core::sync::atomic::Ordering::Relaxed;
    let mut b = RRef::<BlockBatch>::try_new_zeroed()?;
    b.count = 32;
    for (i, r) in b.requests.iter_mut().enumerate() {
        r.op = op;
        r.lba = i as u64;
    }
    CRASHES.store(0, Relaxed);
    let t0 = crate::time::uptime_ns();
    if crash {
        let run = CRASH_RUN.fetch_add(1, Relaxed) + 1;
        CRASHING.store(true, Relaxed);
        crate::sched::spawn("block-bench-crasher", crate::sched::Priority::Normal, move || crasher(t0, run)).ok()?;
    }
    let mut done = 0u64;
    while crate::time::uptime_ns() - t0 < THROUGHPUT_NS {
        b = shadow.submit(b).ok()?;
        if b.requests[..32].iter().any(|r| r.status != block_status::OK) {
            return None;
        }
        done += 32;
    }
    CRASHING.store(false, Relaxed);
    Some((done, CRASHES.load(Relaxed)))
}

/// Prints the throughput lines: each op without and with the driver crashed every
/// `CRASH_EVERY_MS`, in 4 KiB requests per virtual second.
pub fn run_throughput() {
    let Ok(proxy) = block::import() else { return };
    let shadow = interfaces::block_shadow::BlockShadow::new(proxy);
    for (op, name) in [(block_op::READ, "read"), (block_op::WRITE, "write")] {
        let (Some((calm, _)), Some((crashed, crashes))) = (throughput(&shadow, op, false), throughput(&shadow, op, true)) else {
            kprintln!("bench: block throughput {name}: a batch failed");
            continue;
        };
        kprintln!("bench: block {name} requests per virtual second, no crash: {calm}");
        kprintln!("bench: block {name} requests per virtual second, driver crashed every {CRASH_EVERY_MS} ms: {crashed}");
        kprintln!("bench: block {name} crashes in that second: {crashes}");
    }
}
