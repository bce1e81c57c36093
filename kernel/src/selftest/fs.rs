//! `qvq.test=fs-crash-writes`: new files written through `Files` (the fs domain, over the
//! board's block driver) while another thread crashes the fs domain `CRASHES` times, each
//! time while the write of a new file is in flight (after a delay that varies, so the
//! crash lands at different points of the write: before its data, between data and
//! metadata, after). A write whose call ends because the domain crashed is sent again once
//! it restarts (writing a whole file from offset 0 gives the same file whether or not the
//! first attempt got through). Every file is then read back through `Files`. The host
//! checks the image afterwards (`xtask/src/tests/files.rs`): `fsck.fat -n` finds nothing
//! to fix, and the directory holds exactly the acknowledged files, each with its bytes.

use super::{fail, pass};
use crate::domain::inspect;
use crate::sched::{self, Priority};
use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use interfaces::files::{self, Files};
use interfaces::{fs_status, FileChunk, RRef, RpcError, Text};

/// Crashes injected.
const CRASHES: u32 = 30;
/// Attempts of one file's write before the test gives up.
const ATTEMPTS: u32 = 20;
/// The directory the files go into, and the file names' pattern (`F0000.TXT`...).
pub const DIR: &str = "/CRASHED";

/// File `n`'s bytes: its number, repeated past one 4 KiB block's worth of sectors so its
/// data spans several sectors and (in the middle of the volume) two blocks.
pub fn contents(n: u32) -> Vec<u8> {
    let line = format!("fs crash test file {n:04}\n");
    line.bytes().cycle().take(3000).collect()
}

static WRITING: AtomicBool = AtomicBool::new(false);
static FILES_STARTED: AtomicU32 = AtomicU32::new(0);

fn text(s: &str) -> Option<RRef<Text>> {
    RRef::try_new(Text::from_bytes(s.as_bytes()).0).ok()
}

/// True for a call that ended because the fs domain crashed or was restarting.
fn crashed(e: RpcError) -> bool {
    matches!(e, RpcError::Crashed | RpcError::Unavailable | RpcError::Interrupted)
}

/// Pages of the writing thread's stack: its calls nest (the fs domain calls the block
/// driver), and each callee is guaranteed `abi::CALL_STACK` (10 KiB) of it.
const WRITER_STACK_PAGES: usize = 16;

/// Starts the writer on a stack big enough for nested calls; this thread crashes the fs
/// domain. The writer ends the test (PASS or FAIL).
pub fn crash_writes(name: &str) -> ! {
    let owned = alloc::string::String::from(name);
    if sched::spawn_with_stack("fs-writer", Priority::Normal, WRITER_STACK_PAGES, move || write_files(&owned)).is_err() {
        fail(name, format_args!("cannot start the writing thread"));
    }
    crash_the_fs();
    loop {
        sched::sleep_ms(1000);
    }
}

fn write_files(name: &str) -> ! {
    let fs = match files::import() {
        Ok(p) => p,
        Err(e) => fail(name, format_args!("cannot import Files ({e}): is the fs domain running?")),
    };
    // The directory, made before the crashes start.
    match fs.mkdir(text(DIR).unwrap_or_else(|| fail(name, format_args!("no shared heap")))) {
        Ok(a) if a.status == fs_status::OK => {}
        Ok(a) => fail(name, format_args!("mkdir {DIR}: {}", fs_status::describe(a.status))),
        Err(e) => fail(name, format_args!("mkdir {DIR}: {e}")),
    }
    WRITING.store(true, Relaxed);
    let mut n = 0u32;
    let mut resent = 0u32;
    // Files until the crasher is done, then one more.
    let mut last = false;
    loop {
        if !WRITING.load(Relaxed) {
            last = true;
        }
        let path = format!("{DIR}/F{n:04}.TXT");
        let data = contents(n);
        FILES_STARTED.fetch_add(1, Relaxed);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > ATTEMPTS {
                fail(name, format_args!("{path}: not written after {ATTEMPTS} attempts"));
            }
            let Some(mut chunk) = RRef::<FileChunk>::try_new_zeroed() else {
                fail(name, format_args!("no shared heap for a chunk"))
            };
            chunk.bytes[..data.len()].copy_from_slice(&data);
            chunk.len = data.len() as u32;
            let Some(p) = text(&path) else { fail(name, format_args!("no shared heap")) };
            match fs.write(p, 0, chunk) {
                Ok(a) if a.status == fs_status::OK => break,
                Ok(a) => fail(
                    name,
                    format_args!(
                        "{path}: {} {}",
                        fs_status::describe(a.status),
                        core::str::from_utf8(a.detail.as_bytes()).unwrap_or("")
                    ),
                ),
                Err(e) if crashed(e) => {
                    resent += 1;
                    // Until the fs domain serves again (or a second passes).
                    let _ = interfaces::abi::await_restart(|| Some(fs.usage().map(drop)));
                }
                Err(e) => fail(name, format_args!("{path}: {e}")),
            }
        }
        n += 1;
        if last {
            break;
        }
    }
    // Most crashes must have ended a write call (else they tested nothing of the writes).
    if resent < CRASHES / 2 {
        fail(name, format_args!("only {resent} of {CRASHES} crashes ended a write call"));
    }
    let restarts = inspect::restarts_of("fs").unwrap_or(0);
    if restarts < CRASHES {
        fail(name, format_args!("only {restarts} restarts of the fs domain"));
    }
    // Every file reads back as written.
    for i in 0..n {
        let path = format!("{DIR}/F{i:04}.TXT");
        let Some(p) = text(&path) else { fail(name, format_args!("no shared heap")) };
        match fs.read(p, 0) {
            Ok(c) if c.status == fs_status::OK && c.bytes.get(..c.len as usize) == Some(&contents(i)[..]) => {}
            Ok(c) if c.status == fs_status::OK => fail(name, format_args!("{path} reads back {} bytes, not what was written", c.len)),
            Ok(c) => fail(name, format_args!("{path}: {}", fs_status::describe(c.status))),
            Err(e) => fail(name, format_args!("{path}: {e}")),
        }
    }
    pass(
        name,
        format_args!("{CRASHES} crashes during the writes of {n} files, every one acknowledged and read back; {resent} writes sent again; {restarts} restarts"),
    )
}

/// Crashes the fs domain `CRASHES` times, each once the write of a file started after the
/// previous crash is in flight, after a varying number of yields. Starts once the writer
/// has made the directory.
fn crash_the_fs() {
    while !WRITING.load(Relaxed) {
        sched::sleep_ms(1);
    }
    let mut seen = FILES_STARTED.load(Relaxed);
    let mut crashed = 0;
    while crashed < CRASHES {
        let now = FILES_STARTED.load(Relaxed);
        if now == seen {
            sched::yield_now();
            continue;
        }
        seen = now;
        for _ in 0..(crashed * 7) % 13 {
            sched::yield_now();
        }
        if let Some(id) = inspect::exporter_of(files::NAME) {
            inspect::crash(id, "crash injected by selftest fs-crash-writes");
            crashed += 1;
        }
        sched::sleep_ms(1);
    }
    WRITING.store(false, Relaxed);
}
