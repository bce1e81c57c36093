//! Attack domain (class: a stack that overflows in code that is not the attacker's). A
//! thread of its own fills its stack close to the guard page, then, with only a few KiB
//! left:
//! - variant 1 calls `hello.ping(41)`: the call must be refused with
//!   `RpcError::StackExhausted` (the callee never runs, so hello is neither crashed nor
//!   counts a ping);
//! - variant 2 calls `RRef::try_new` for 64 bytes (the kernel's stackless fast path: it
//!   must just work) and then for 32 KiB (a kernel service in Rust), and variant 3
//!   `runtime::log::write_str`: the service must treat it as the attacker's own stack
//!   overflow (the attacker crashes, the kernel does not panic).
//!
//! The depth is found, not guessed: the thread recurses until
//! `interfaces::abi::stack_left_for_a_call` (safe) says
//! less than `CALL_STACK` is left, which places the stack limit to within one frame.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::hint::black_box;
use runtime::interfaces::abi::{stack_left_for_a_call, CALL_STACK};
use runtime::interfaces::hello::{self, Hello};
use runtime::interfaces::{RRef, RpcError};
use runtime::println;

/// The thread stack (four pages; the manifest's `stack_size`).
const STACK: usize = 16 * 1024;

#[inline(never)]
fn sp() -> usize {
    let x = 0u8;
    black_box(&x) as *const u8 as usize
}

/// Recurses until less than `CALL_STACK` is left (or below `floor`, if the kernel gave no
/// stack limit); returns the stack pointer there.
#[inline(never)]
fn probe(floor: usize) -> usize {
    let here = sp();
    if here > floor && stack_left_for_a_call() {
        black_box(probe(black_box(floor))) + black_box(0)
    } else {
        here
    }
}

/// Recurses with small frames until the stack pointer is at or below `target`, then runs
/// `leaf` there.
#[inline(never)]
fn dive(target: usize, leaf: &dyn Fn() -> u32) -> u32 {
    if sp() > target {
        black_box(dive(black_box(target), leaf)) + black_box(0)
    } else {
        leaf()
    }
}

/// The lowest usable stack address: found to within a frame below it, and it is the end
/// of the (page-aligned) guard page.
fn stack_limit() -> Option<usize> {
    let top = sp();
    let floor = top - STACK;
    let at = black_box(probe(floor));
    (at > floor).then(|| (at - CALL_STACK + 4095) & !4095)
}

const EXHAUSTED: u32 = 1;
const CRASHED: u32 = 2;
const OTHER_ERROR: u32 = 3;
const ANSWERED: u32 = 100;

fn outcome(code: u32) -> &'static str {
    match code {
        EXHAUSTED => "Err(StackExhausted)",
        CRASHED => "Err(Crashed)",
        OTHER_ERROR => "another error",
        _ => "Ok (the callee ran)",
    }
}

/// Bytes left above the stack limit at each attempt: all below `CALL_STACK`, the last ones
/// close to the guard page.
const LEFT: [usize; 5] = [8192, 6144, 4096, 3072, 2048];

fn call_with_no_stack_left(limit: usize) {
    let hello = match hello::import() {
        Ok(h) => h,
        Err(e) => {
            println!("ESCAPE? cannot import Hello: {e}");
            return;
        }
    };
    let before = hello.served();
    println!("hello.served() before: {before:?}");
    let leaf = move || -> u32 {
        match hello.ping(41) {
            Ok(x) => ANSWERED + x as u32,
            Err(RpcError::StackExhausted) => EXHAUSTED,
            Err(RpcError::Crashed) => CRASHED,
            Err(_) => OTHER_ERROR,
        }
    };
    let mut refused = 0;
    for left in LEFT {
        let r = black_box(dive(limit + left, &leaf));
        println!("hello.ping(41) with {left} bytes of stack left: {}", outcome(r));
        if r == EXHAUSTED {
            refused += 1;
        } else {
            println!("ESCAPE: hello.ping(41) with {left} bytes of stack left was not refused");
        }
    }
    let after = hello.served();
    println!("hello.served() after: {after:?}");
    println!("{refused} of {} calls refused with StackExhausted", LEFT.len());
    // With the whole stack, the same call works.
    println!("hello.ping(41) with the whole stack: {:?}", hello.ping(41));
}

fn service_with_no_stack_left(limit: usize, service: &str, leaf: &dyn Fn() -> u32) {
    // With more than the service's 6 KiB, it works.
    let r = black_box(dive(limit + 8192, leaf));
    println!("{service} with 8192 bytes of stack left: returned {r}");
    // The service's own check touches the word just below the limit.
    println!("{service} with 3072 bytes of stack left: it must touch the guard page at {:#x}", limit - 8);
    let r = black_box(dive(limit + 3072, leaf));
    println!("ESCAPE: {service} with 3072 bytes of stack left returned {r}");
}

fn attack() {
    let Some(limit) = stack_limit() else {
        println!("ESCAPE? the kernel gave this thread no stack limit");
        return;
    };
    println!("stack limit found at {limit:#x} (stack pointer {:#x})", sp());
    match runtime::version().1 {
        1 => call_with_no_stack_left(limit),
        // A 64-byte block comes from the kernel's fast path, which touches no stack at all
        // (so it needs no check); a 32 KiB one goes to the Rust service, which checks.
        2 => service_with_no_stack_left(limit, "RRef::try_new (64 B, then 32 KiB)", &|| {
            let small = RRef::try_new([7u64; 4]).map_or(0, |r| black_box(r[0]) as u32);
            let big = RRef::<[u64; 4096]>::try_new_zeroed().map_or(1000, |r| black_box(r[0]) as u32);
            small + big
        }),
        _ => service_with_no_stack_left(limit, "log::write_str", &|| {
            runtime::log::write_str("x");
            1
        }),
    }
}

fn init() -> Result<(), &'static str> {
    runtime::spawn("attack", attack).map_err(|_| "cannot spawn")?;
    Ok(())
}

runtime::entry!(init);
