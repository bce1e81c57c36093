//! `blk info | read LBA | write LBA TEXT... | flush | bench [BATCH] [ROUNDS]`: the block
//! device through the `Block` interface. It is imported when a command runs, not at start:
//! a board whose recipe has no block driver simply has none (`import_all` declares `Block`
//! in the shell's manifest only where some domain exports it).

use alloc::format;
use alloc::string::String;
use core::fmt::Write;
use runtime::interfaces::block::{self, Block};
use runtime::interfaces::block_shadow::BlockShadow;
use runtime::interfaces::{block_op, block_status, BlockBatch, ImportError, RRef, BLOCK_BATCH, BLOCK_SIZE};

const USAGE: &str = "usage: blk info | blk read LBA | blk write LBA TEXT... | blk flush | blk bench [BATCH] [ROUNDS]  (LBA: a 4 KiB block number; BATCH 1-32, default 8; ROUNDS default 16)\n";

/// Bytes of a block `blk read` shows.
const SHOWN: usize = 64;
/// At most this many requests in one `blk bench` submit.
const MAX_BATCH: u64 = BLOCK_BATCH as u64;
/// At most this many `blk bench` rounds.
const MAX_ROUNDS: u64 = 100_000;

/// Runs the `blk` command line `line` (the whole line, so `write` keeps its text's spaces);
/// returns what to print.
pub fn blk(line: &str) -> String {
    let (_, rest) = word(line); // "blk"
    let (cmd, rest) = word(rest);
    match cmd {
        "info" if rest.trim().is_empty() => info(),
        "read" => match word(rest) {
            (lba, more) if !lba.is_empty() && more.trim().is_empty() => match number(lba) {
                Some(lba) => read(lba),
                None => bad_lba("read", lba),
            },
            _ => String::from("usage: blk read LBA\n"),
        },
        "write" => {
            let (lba, text) = word(rest);
            let text = text.trim_start();
            match number(lba) {
                _ if text.is_empty() => String::from("usage: blk write LBA TEXT... (the rest of the line, zero-filled to 4096 bytes)\n"),
                Some(lba) => write(lba, text),
                None => bad_lba("write", lba),
            }
        }
        "flush" if rest.trim().is_empty() => flush(),
        "bench" => {
            let (b, more) = word(rest);
            let (r, more) = word(more);
            if !more.trim().is_empty() {
                return String::from("usage: blk bench [BATCH] [ROUNDS]\n");
            }
            let batch = if b.is_empty() { Some(8) } else { number(b) };
            let rounds = if r.is_empty() { Some(16) } else { number(r) };
            match (batch, rounds) {
                (Some(b @ 1..=MAX_BATCH), Some(r @ 1..=MAX_ROUNDS)) => bench(b as usize, r),
                (Some(_), Some(_)) => format!("blk bench: BATCH must be 1 to {BLOCK_BATCH} and ROUNDS 1 to {MAX_ROUNDS}\n"),
                _ => String::from("blk bench: BATCH and ROUNDS must be whole numbers (usage: blk bench [BATCH] [ROUNDS])\n"),
            }
        }
        _ => String::from(USAGE),
    }
}

/// The first word of `s` and what follows it.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// A whole number in decimal or `0x` hex.
fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn bad_lba(cmd: &str, lba: &str) -> String {
    if lba.is_empty() {
        return format!("usage: blk {cmd} LBA{}\n", if cmd == "write" { " TEXT..." } else { "" });
    }
    format!("blk {cmd}: bad LBA '{lba}': a block number in decimal or 0x hex\n")
}

/// The driver, or the line that says why there is none.
/// The block device, through the re-issuing shadow: a batch the driver crashed with is
/// issued again once it restarts, so `blk` commands ride out a driver crash.
fn device(cmd: &str) -> Result<BlockShadow, String> {
    block::import().map(BlockShadow::new).map_err(|e| match e {
        // `import_all` declares Block only on a board whose recipe has a domain exporting it.
        ImportError::NotDeclared => format!("blk {cmd}: no block device on this board (no domain in its recipe exports Block)\n"),
        ImportError::NotExported => format!("blk {cmd}: no block device on this board (its Block driver is not running)\n"),
        _ => format!("blk {cmd}: cannot import Block: {e}\n"),
    })
}

/// A zeroed batch on the shared heap (128 KiB: never on the stack).
fn new_batch(cmd: &str) -> Result<RRef<BlockBatch>, String> {
    RRef::<BlockBatch>::try_new_zeroed().ok_or_else(|| {
        format!(
            "blk {cmd}: no room on the shared heap for a batch ({} KiB; this domain's quota or the kernel's heap)\n",
            core::mem::size_of::<BlockBatch>() / 1024
        )
    })
}

/// A `block_status` value by name.
fn status_name(status: u32) -> String {
    String::from(match status {
        block_status::OK => "ok",
        block_status::IO_ERROR => "I/O error",
        block_status::UNSUPPORTED => "unsupported",
        block_status::OUT_OF_RANGE => "out of range",
        block_status::NOT_DONE => "not done",
        block_status::BAD_ANSWER => "bad answer",
        other => return format!("unknown status {other}"),
    })
}

/// Sends the first `count` requests of `batch`; gives it back, or what to print: the RPC
/// error, or the first request that did not end OK (by name).
fn submit(cmd: &str, dev: &BlockShadow, mut batch: RRef<BlockBatch>, count: usize) -> Result<RRef<BlockBatch>, String> {
    batch.count = count as u32;
    let sent: [u64; BLOCK_BATCH] = core::array::from_fn(|i| batch.requests[i].lba);
    let batch = dev.submit(batch).map_err(|e| format!("blk {cmd}: error: {e}\n"))?;
    for (i, r) in batch.requests[..count].iter().enumerate() {
        if r.status != block_status::OK {
            return Err(format!("blk {cmd}: block {}: {}\n", sent[i], status_name(r.status)));
        }
        if r.lba != sent[i] {
            return Err(format!(
                "blk {cmd}: the driver answered request {i} for block {} instead of {}\n",
                r.lba, sent[i]
            ));
        }
    }
    Ok(batch)
}

fn info() -> String {
    let dev = match device("info") {
        Ok(d) => d,
        Err(e) => return e,
    };
    match dev.info() {
        Ok(i) => format!(
            "blk info: {} blocks of {} bytes ({} KiB), {}, {}, up to {} requests a batch\n",
            i.blocks,
            i.block_size,
            i.blocks.saturating_mul(i.block_size as u64) / 1024,
            if i.read_only == 1 { "read-only" } else { "writable" },
            if i.can_flush == 1 { "flush reaches the device" } else { "no flush needed" },
            i.max_batch
        ),
        Err(e) => format!("blk info: error: {e}\n"),
    }
}

fn read(lba: u64) -> String {
    let (dev, mut batch) = match device("read").and_then(|d| Ok((d, new_batch("read")?))) {
        Ok(x) => x,
        Err(e) => return e,
    };
    batch.requests[0].op = block_op::READ;
    batch.requests[0].lba = lba;
    let batch = match submit("read", &dev, batch, 1) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let data = &batch.requests[0].data[..SHOWN];
    let mut out = format!("blk read {lba}: |");
    out.extend(data.iter().map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '.' }));
    out.push_str("|\n");
    for (row, chunk) in data.chunks(16).enumerate() {
        let _ = write!(out, "{:04x} ", row * 16);
        for b in chunk {
            let _ = write!(out, " {b:02x}");
        }
        out.push('\n');
    }
    out
}

fn write(lba: u64, text: &str) -> String {
    let (dev, mut batch) = match device("write").and_then(|d| Ok((d, new_batch("write")?))) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let bytes = &text.as_bytes()[..text.len().min(BLOCK_SIZE)];
    let r = &mut batch.requests[0];
    r.op = block_op::WRITE;
    r.lba = lba;
    r.data[..bytes.len()].copy_from_slice(bytes); // the rest is zero already
    match submit("write", &dev, batch, 1) {
        Ok(_) => format!("blk write {lba}: wrote {} bytes of text, zero-filled to {BLOCK_SIZE}\n", bytes.len()),
        Err(e) => e,
    }
}

fn flush() -> String {
    let (dev, mut batch) = match device("flush").and_then(|d| Ok((d, new_batch("flush")?))) {
        Ok(x) => x,
        Err(e) => return e,
    };
    batch.requests[0].op = block_op::FLUSH;
    match submit("flush", &dev, batch, 1) {
        Ok(_) => String::from("blk flush: done\n"),
        Err(e) => e,
    }
}

/// `rounds` submits of `size` reads of consecutive blocks (moving on through the device
/// from block 0 and wrapping), timed with the runtime's clock and its cycle counter (wall
/// time includes waiting for the device; `cargo xtask bench` counts instructions alone).
fn bench(size: usize, rounds: u64) -> String {
    let dev = match device("bench") {
        Ok(d) => d,
        Err(e) => return e,
    };
    let blocks = match dev.info() {
        Ok(i) => i.blocks,
        Err(e) => return format!("blk bench: error: {e}\n"),
    };
    if blocks < size as u64 {
        return format!("blk bench: the device has {blocks} blocks, fewer than a batch of {size}\n");
    }
    let mut batch = match new_batch("bench") {
        Ok(b) => b,
        Err(e) => return e,
    };
    let starts = blocks - size as u64 + 1;
    let began = runtime::uptime_ns();
    let cycles0 = runtime::cycles();
    for round in 0..rounds {
        let first = (round * size as u64) % starts;
        for (i, r) in batch.requests[..size].iter_mut().enumerate() {
            r.op = block_op::READ;
            r.status = block_status::NOT_DONE;
            r.lba = first + i as u64;
        }
        batch = match submit("bench", &dev, batch, size) {
            Ok(b) => b,
            Err(e) => return format!("{}(in round {} of {rounds})\n", e, round + 1),
        };
    }
    let ns = runtime::uptime_ns().saturating_sub(began).max(1) as u128;
    let cycles = runtime::cycles().saturating_sub(cycles0) as u128;
    let requests = rounds as u128 * size as u128;
    let per = ns / requests;
    let kib_s = requests * BLOCK_SIZE as u128 * 1_000_000_000 / ns / 1024;
    format!(
        "blk bench: {requests} requests ({rounds} rounds of {size} reads) in {}.{:03} ms: {}.{:03} us a request, {} KiB/s, {} cycles a request\n",
        ns / 1_000_000,
        ns / 1000 % 1000,
        per / 1000,
        per % 1000,
        kib_s,
        cycles / requests
    )
}
