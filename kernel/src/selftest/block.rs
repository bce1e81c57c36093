//! `qvq.test=block-crash-writes`: continuous writes through the re-issuing `Block` shadow
//! while another thread crashes the board's block driver (`bsp::BLOCK_DRIVER`: virtio-blk
//! on virt, sdhci on rpi3) 100 times, each time while a batch is in flight. `qvq.test=block-swap-io`: reads and writes while this thread swaps the
//! driver 100 times between two versions. Every request must be acknowledged, every read
//! must find what was last written; the host then reads the image and finds every block
//! holding exactly its last write (`xtask/src/tests/block.rs`).

use super::{fail, pass};
use crate::bsp::BLOCK_DRIVER;
use crate::domain::inspect;
use crate::sched::{self, Priority};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use interfaces::block::{self, Block};
use interfaces::block_shadow::BlockShadow;
use interfaces::{block_op, block_status, BlockBatch, RRef};

/// Blocks written each round, from `FIRST_BLOCK`, in batches of `BATCH`.
pub const BLOCKS: u64 = 64;
/// The first block written: the default disk image's raw area after its FAT partition
/// (`RAW_FIRST_BLOCK` in xtask/src/disk.rs), so the file system stays intact.
pub const FIRST_BLOCK: u64 = 3840;
const BATCH: usize = 8;
/// Crashes injected.
const CRASHES: u32 = 100;

/// What block `lba` holds after round `round`: its number and the round, repeated.
pub fn pattern(round: u32, lba: u64, out: &mut [u8]) {
    let tag = alloc::format!("qvq block {lba:04} round {round:04};");
    for (i, b) in out.iter_mut().enumerate() {
        *b = tag.as_bytes()[i % tag.len()];
    }
}

static WRITING: AtomicBool = AtomicBool::new(false);
static BATCHES_IN_FLIGHT: AtomicU32 = AtomicU32::new(0);

pub fn crash_writes(name: &str) -> ! {
    let shadow = match block::import() {
        Ok(p) => BlockShadow::new(p),
        Err(e) => fail(name, format_args!("cannot import Block ({e}): is a disk attached?")),
    };
    let Some(mut batch) = RRef::<BlockBatch>::try_new_zeroed() else {
        fail(name, format_args!("no shared heap for a batch"))
    };
    WRITING.store(true, Relaxed);
    let crasher = sched::spawn("block-crasher", Priority::Normal, crash_the_driver);
    if crasher.is_err() {
        fail(name, format_args!("cannot start the crashing thread"));
    }
    let mut round = 0u32;
    let mut writes = 0u64;
    // Rounds until the crasher is done, then one more whole round: its writes are the ones
    // the host checks.
    let mut last = false;
    loop {
        if !WRITING.load(Relaxed) {
            last = true;
        }
        for first in (FIRST_BLOCK..FIRST_BLOCK + BLOCKS).step_by(BATCH) {
            batch.count = BATCH as u32;
            for (i, r) in batch.requests[..BATCH].iter_mut().enumerate() {
                r.op = block_op::WRITE;
                r.lba = first + i as u64;
                r.status = block_status::NOT_DONE;
                pattern(round, r.lba, &mut r.data);
            }
            BATCHES_IN_FLIGHT.fetch_add(1, Relaxed);
            batch = match shadow.submit(batch) {
                Ok(b) => b,
                Err(e) => fail(name, format_args!("round {round}, blocks {first}..: the shadow gave up ({e})")),
            };
            if let Some(bad) = batch.requests[..BATCH].iter().find(|r| r.status != block_status::OK) {
                fail(name, format_args!("round {round}: block {} ended with status {}", bad.lba, bad.status));
            }
            writes += BATCH as u64;
        }
        if last {
            break;
        }
        round += 1;
    }
    let restarts = inspect::restarts_of(BLOCK_DRIVER).unwrap_or(0);
    if restarts < CRASHES {
        fail(name, format_args!("only {restarts} restarts of the driver"));
    }
    pass(
        name,
        format_args!(
            "{CRASHES} crashes during {writes} writes, every one acknowledged; last round {round} over {BLOCKS} blocks from {FIRST_BLOCK}; {restarts} restarts"
        ),
    )
}

/// Crashes the driver `CRASHES` times, each once a batch submitted after the previous
/// crash is in flight.
fn crash_the_driver() {
    let mut seen = BATCHES_IN_FLIGHT.load(Relaxed);
    let mut crashed = 0;
    while crashed < CRASHES {
        let now = BATCHES_IN_FLIGHT.load(Relaxed);
        if now == seen {
            sched::yield_now();
            continue;
        }
        seen = now;
        if let Some(id) = inspect::exporter_of(block::NAME) {
            inspect::crash(id, "crash injected by selftest block-crash-writes");
            crashed += 1;
        }
        sched::sleep_ms(1);
    }
    WRITING.store(false, Relaxed);
}

/// Swaps done by `swap_io`'s main thread; the I/O thread runs until they are.
static SWAPS_DONE: AtomicBool = AtomicBool::new(false);
static IO_ERROR: AtomicU32 = AtomicU32::new(0);
static IO_ROUNDS: AtomicU32 = AtomicU32::new(0);

/// Swaps requested between the driver's two kept versions.
const SWAPS: u32 = 100;

pub fn swap_io(name: &str) -> ! {
    if block::import().is_err() {
        fail(name, format_args!("cannot import Block: is a disk attached?"));
    }
    if sched::spawn("block-io", Priority::Normal, io_rounds).is_err() {
        fail(name, format_args!("cannot start the I/O thread"));
    }
    let mut swapped = 0;
    for i in 0..SWAPS {
        // Let some I/O run on each version.
        sched::sleep_ms(2);
        let version = if i % 2 == 0 { "0.2.0" } else { "0.1.1" };
        let entry = alloc::format!("{BLOCK_DRIVER}-{version}.qvd");
        let o = inspect::swap(BLOCK_DRIVER, &entry);
        if !o.swapped {
            fail(name, format_args!("swap {} to {entry} refused: {}", i + 1, o.message));
        }
        swapped += 1;
        if IO_ERROR.load(Relaxed) != 0 {
            break;
        }
    }
    SWAPS_DONE.store(true, Relaxed);
    while IO_ROUNDS.load(Relaxed) & DONE == 0 {
        sched::sleep_ms(5);
    }
    match IO_ERROR.load(Relaxed) {
        0 => pass(
            name,
            format_args!(
                "{swapped} swaps during {} rounds of writes and read-backs over {BLOCKS} blocks from {FIRST_BLOCK}; every request acknowledged, every read as last written",
                IO_ROUNDS.load(Relaxed) & !DONE
            ),
        ),
        e => fail(name, format_args!("the I/O thread failed: {}", io_error_text(e))),
    }
}

const DONE: u32 = 1 << 31;

fn io_error_text(e: u32) -> &'static str {
    match e {
        1 => "the shadow gave up on a write",
        2 => "a write ended with an error status",
        3 => "the shadow gave up on a read",
        4 => "a read ended with an error status",
        5 => "a block read back differs from what was written",
        _ => "no shared heap for a batch",
    }
}

/// Rounds of: write every block with the round's pattern, then read them all back and
/// compare; until the swaps are done, then one more round (what the host checks).
fn io_rounds() {
    let shadow = match block::import() {
        Ok(p) => BlockShadow::new(p),
        Err(_) => return IO_ERROR.store(6, Relaxed),
    };
    let Some(mut batch) = RRef::<BlockBatch>::try_new_zeroed() else {
        return IO_ERROR.store(6, Relaxed);
    };
    let mut expected = [0u8; 4096];
    let mut round = 0u32;
    let mut last = false;
    'rounds: loop {
        if SWAPS_DONE.load(Relaxed) {
            last = true;
        }
        for op in [block_op::WRITE, block_op::READ] {
            for first in (FIRST_BLOCK..FIRST_BLOCK + BLOCKS).step_by(BATCH) {
                batch.count = BATCH as u32;
                for (i, r) in batch.requests[..BATCH].iter_mut().enumerate() {
                    r.op = op;
                    r.lba = first + i as u64;
                    r.status = block_status::NOT_DONE;
                    if op == block_op::WRITE {
                        pattern(round, r.lba, &mut r.data);
                    } else {
                        r.data.fill(0);
                    }
                }
                batch = match shadow.submit(batch) {
                    Ok(b) => b,
                    Err(_) => {
                        IO_ERROR.store(if op == block_op::WRITE { 1 } else { 3 }, Relaxed);
                        break 'rounds;
                    }
                };
                for r in &batch.requests[..BATCH] {
                    if r.status != block_status::OK {
                        IO_ERROR.store(if op == block_op::WRITE { 2 } else { 4 }, Relaxed);
                        break 'rounds;
                    }
                    if op == block_op::READ {
                        pattern(round, r.lba, &mut expected);
                        if r.data != expected {
                            IO_ERROR.store(5, Relaxed);
                            break 'rounds;
                        }
                    }
                }
            }
        }
        IO_ROUNDS.store(round + 1, Relaxed);
        if last {
            break;
        }
        round += 1;
    }
    IO_ROUNDS.fetch_or(DONE, Relaxed);
}
