//! Attack domain (class: a `Kernel` importer racing the kernel's own checks). It imports
//! `Kernel` (as the shell does) and `Files`, reads `/DOMAINS/relay.qvd` from the disk into
//! one envelope per thread, and hands them to `Kernel::load_envelope` from `RACERS`
//! threads at once. `load` checks "one domain per name" and "one exporter per interface",
//! then picks the new record's number, instantiates and installs it: the racers all pass
//! the checks and may get the same domain number. The test wants at most one load to
//! succeed and the kernel intact.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use runtime::interfaces::files::{self, Files};
use runtime::interfaces::kernel::{self, Kernel};
use runtime::interfaces::{fs_status, Envelope, RRef, Text, ENVELOPE_MAX, FILE_CHUNK};

const RACERS: usize = 3;
const PATH: &str = "/DOMAINS/relay.qvd";

static READY: AtomicUsize = AtomicUsize::new(0);
static DONE: AtomicUsize = AtomicUsize::new(0);
static LOADED: AtomicUsize = AtomicUsize::new(0);

fn text(s: &str) -> RRef<Text> {
    RRef::new(Text::from_bytes(s.as_bytes()).0)
}

fn read_envelope() -> Result<RRef<Envelope>, &'static str> {
    let fs = files::import().map_err(|_| "cannot import Files")?;
    let stat = fs.stat(text(PATH)).map_err(|_| "stat failed")?;
    if stat.status != fs_status::OK || stat.size as usize > ENVELOPE_MAX {
        return Err("no envelope at /DOMAINS/relay.qvd");
    }
    let size = stat.size as usize;
    let mut env = RRef::<Envelope>::try_new_zeroed().ok_or("no shared heap for an envelope")?;
    let mut at = 0;
    while at < size {
        let c = fs.read(text(PATH), at as u64).map_err(|_| "read failed")?;
        let n = (c.len as usize).min(FILE_CHUNK).min(size - at);
        if c.status != fs_status::OK || n == 0 {
            return Err("short read");
        }
        env.bytes[at..at + n].copy_from_slice(&c.bytes[..n]);
        at += n;
    }
    env.len = size as u32;
    Ok(env)
}

fn racer(k: usize) {
    let env = match read_envelope() {
        Ok(e) => e,
        Err(why) => {
            runtime::println!("racer {k}: {why}");
            READY.fetch_add(1, SeqCst);
            DONE.fetch_add(1, SeqCst);
            return;
        }
    };
    READY.fetch_add(1, SeqCst);
    while READY.load(SeqCst) < RACERS {
        runtime::yield_now();
    }
    let Ok(kernel) = kernel::import() else {
        runtime::println!("racer {k}: cannot import Kernel");
        DONE.fetch_add(1, SeqCst);
        return;
    };
    match kernel.load_envelope(env, text("disk:/DOMAINS/relay.qvd")) {
        Ok(r) => {
            if r.swapped != 0 {
                LOADED.fetch_add(1, SeqCst);
            }
            let m = core::str::from_utf8(r.message.as_bytes()).unwrap_or("?");
            runtime::println!("racer {k}: swapped={} {m}", r.swapped);
        }
        Err(e) => runtime::println!("racer {k}: error {e}"),
    }
    DONE.fetch_add(1, SeqCst);
    if DONE.load(SeqCst) == RACERS {
        runtime::println!("load race over: {} of {RACERS} loads of relay succeeded", LOADED.load(SeqCst));
    }
}

fn init() -> Result<(), &'static str> {
    for k in 0..RACERS {
        runtime::spawn("racer", move || racer(k)).map_err(|_| "cannot spawn")?;
    }
    Ok(())
}

runtime::entry!(init);
