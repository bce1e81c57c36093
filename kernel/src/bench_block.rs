//! `cargo xtask bench`, block part: instructions per 4 KiB request through the virtio-blk
//! driver, read and write, at batch 1, 8 and 32, three ways: direct (the driver runs its
//! own batches: no cross-domain call), through the proxy, and through the re-issuing block
//! shadow (which keeps a journal of each batch, a write's data included). The
//! driver code, the DMA path and the device are the same in all three; the difference is
//! the isolation boundary (the call, and the batch's `RRef` moving there and back). Time
//! the CPU spends idle waiting for the device is not counted (`sched::idle_cycles`).

use crate::arch::pmu::cycles;
use crate::kprintln;
use crate::sched::idle_cycles;
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
    let ok = |b: &BlockBatch| b.requests[..b.count as usize].iter().all(|r| r.status == block_status::OK);
    b = dev.submit(b).ok().filter(|b| ok(b))?;
    let (t0, idle0) = (cycles(), idle_cycles());
    for _ in 0..rounds {
        b = dev.submit(b).ok()?;
    }
    let spent = busy(t0, idle0);
    ok(&b).then_some(spent)
}

/// Cycles since `t0` less those the CPU idled since `idle0` (waiting for the device: that
/// is the device's time, not the request's instructions).
fn busy(t0: u64, idle0: u64) -> u64 {
    (cycles() - t0).saturating_sub(idle_cycles() - idle0)
}

/// The driver's own measurement of `rounds` batches, less the CPU's idle time meanwhile.
fn direct_busy(direct: &impl BlockBench, op: u32, batch: u32, rounds: u32) -> Option<u64> {
    direct.direct(op, batch, 1).ok()?; // warm up, as `through` does
    let idle0 = idle_cycles();
    let spent = direct.direct(op, batch, rounds).ok()?;
    Some(spent.saturating_sub(idle_cycles() - idle0))
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
