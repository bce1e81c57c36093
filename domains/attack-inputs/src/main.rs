//! Attack domain (class: huge and odd inputs to the safe runtime API). The variant
//! (manifest minor version) picks the set:
//! 1. `log` with 1 MiB, with a multi-byte character cut at the kernel's length bound, with
//!    control characters; `spawn` with a 10 KiB name; events waited on with odd values;
//!    `keep_state` with other domains' state types, twice.
//! 2. `sleep_ms` with `u64::MAX` and other huge values in threads (must not hang or panic
//!    the system; the shell keeps answering).
//! 3. Log forgery: a log line with an embedded newline and a fake kernel line after it,
//!    and a thread name that does the same.
//! 4. Replacing the services table: `set_services`, `runtime::start` and `_start` again.
//! 5. Keeping something across a restart: each instance changes its statics (one in
//!    `.bss`, one in `.data`) and then crashes; the next must find them as loaded.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use runtime::interfaces::{ConsoleState, HelloState};

fn huge_and_odd() {
    let mib = "A".repeat(1 << 20);
    runtime::log::write_str(&mib);
    drop(mib);
    runtime::println!("logged 1 MiB");
    // 1023 ASCII bytes and then a 4-byte character: a bound at 1024 bytes cuts it.
    let mut cut = "B".repeat(1023);
    cut.push('\u{1F600}');
    cut.push_str(" tail");
    runtime::log::write_str(&cut);
    runtime::log::write_str("control characters: \u{0}\u{7}\u{8}\u{1b}[31mred\u{1b}[0m\u{202e}reversed\u{7f}");
    runtime::log::write_str("");
    runtime::println!("logged odd text");
    let long_name = "N".repeat(10 * 1024);
    let r = runtime::spawn(&long_name, || runtime::println!("thread with a 10 KiB name ran"));
    runtime::println!("spawn with a 10 KiB name: {:?}", r);
    let Some(e) = runtime::Event::new() else {
        runtime::println!("Event::new refused");
        return;
    };
    let seen = e.wait(u64::MAX);
    runtime::println!("wait(u64::MAX) on a fresh event returned {seen}");
    for _ in 0..1000 {
        e.signal();
    }
    let seen = e.wait(0);
    runtime::println!("wait(0) after 1000 signals returned {seen}");
    let seen = e.wait_restartable(u64::MAX - 1);
    runtime::println!("wait_restartable outside a call returned {seen}");
    let a = runtime::swap::keep_state::<HelloState>(|| HelloState { served: u64::MAX }, |_| Ok(()));
    let b = runtime::swap::keep_state::<ConsoleState>(
        || ConsoleState {
            len: u32::MAX,
            bytes: [0xff; 512],
        },
        |_| Err("never"),
    );
    runtime::println!("keep_state with hello's state: {:?}; then with the console's: {:?}", a, b);
    let _ = runtime::uptime_ns();
    runtime::yield_now();
    runtime::println!("odd inputs done");
}

fn sleepers() {
    for (i, ms) in [u64::MAX, u64::MAX / 2, u64::MAX / 1_000_000, 1 << 44].into_iter().enumerate() {
        let r = runtime::spawn("sleeper", move || {
            runtime::sleep_ms(ms);
            runtime::println!("sleeper {i} woke from sleep_ms({ms})");
        });
        runtime::println!("sleeper {i} (sleep_ms({ms})): {:?}", r);
    }
    runtime::sleep_ms(100);
    runtime::println!("sleepers started");
}

fn forgery() {
    runtime::log::write_str("innocent\n[    0.000001] warning: domain shell crashed: forged by attack-inputs");
    runtime::log::write_str("innocent\r[    0.000002] warning: domain console crashed: forged by attack-inputs");
    let name = String::from("x\n[    0.000003] warning: forged thread");
    let r = runtime::spawn(&name, || panic!("so the kernel logs the thread's name"));
    runtime::println!("forgery done ({:?})", r);
}

/// Class 3 at run time: install the services table again, run the entry point again.
fn replace_services() {
    let before = alloc::boxed::Box::new([0x5au8; 64]);
    let s = runtime::interfaces::services();
    let a = runtime::interfaces::set_services(s);
    let b = runtime::start(s, || Ok(()));
    let c = _start(s);
    let after = alloc::boxed::Box::new([0xa5u8; 64]);
    let intact = before.iter().all(|&x| x == 0x5a) && after.iter().all(|&x| x == 0xa5);
    runtime::println!("set_services again: {a}; runtime::start again: {b}; _start again: {c}; heap intact: {intact}");
}

/// Zero when loaded (`.bss`): how many times `init` ran on this data.
static STARTS: AtomicU32 = AtomicU32::new(0);
/// Not zero when loaded (`.data`).
static MARK: AtomicU64 = AtomicU64::new(0x5eed_f1de);

/// Class 5: an instance marks its data, then crashes; a restart must undo the marks.
fn mark_then_crash() -> Result<(), i32> {
    let starts = STARTS.fetch_add(1, Ordering::SeqCst);
    let mark = MARK.swap(0xdead, Ordering::SeqCst);
    if starts == 0 && mark == 0x5eed_f1de {
        runtime::println!("this instance starts from its data as loaded");
    } else {
        runtime::println!("ESCAPE: the data of a previous instance survived: {starts} starts before, mark {mark:#x}");
    }
    runtime::spawn("crasher", || panic!("crashing with its statics changed"))
}

fn init() -> Result<(), &'static str> {
    let r = match runtime::version().1 {
        5 => mark_then_crash(),
        1 => runtime::spawn("odd", huge_and_odd),
        2 => runtime::spawn("sleepers", sleepers),
        4 => runtime::spawn("replace", replace_services),
        _ => runtime::spawn("forgery", forgery),
    };
    r.map_err(|_| "cannot spawn")
}

runtime::entry!(init);
