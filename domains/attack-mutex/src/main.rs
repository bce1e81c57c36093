//! Attack domain (class: a loop inside `runtime::Mutex::with`). It takes relay's place and
//! exports `Relay`, so the shell's `relay panic|fault` calls reach it:
//! - `relay panic` (how 0): variants 1 and 2 loop forever inside `Mutex::with` in the call;
//!   variant 3 panics inside `Mutex::with` in the call.
//! - `relay fault` (how 4): calls `hello.fail(3)` (hello loops) while holding a `Mutex`:
//!   the callee must still be taken back by its CPU budget.
//!
//! Variant 1 also starts a thread of its own that loops forever inside `Mutex::with`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::hello::{self, Hello};
use runtime::interfaces::relay::{self, Relay};
use runtime::interfaces::{RpcError, RpcResult};
use runtime::Mutex;

struct Attack {
    hello: Mutex<Option<hello::Proxy>>,
    in_call: Mutex<u64>,
    in_thread: Mutex<u64>,
}

static ATTACK: Attack = Attack {
    hello: Mutex::new(None),
    in_call: Mutex::new(0),
    in_thread: Mutex::new(0),
};

fn variant() -> u32 {
    runtime::version().1
}

impl Relay for Attack {
    fn relay_fail(&self, how: u32) -> RpcResult<u32> {
        match (how, variant()) {
            (0, 3) => {
                runtime::println!("panicking inside Mutex::with in a call");
                self.in_call.with(|_| panic!("attack-mutex panics while holding its Mutex"))
            }
            (0, _) => {
                runtime::println!("looping inside Mutex::with in a call");
                self.in_call.with(|n| loop {
                    *n = core::hint::black_box(n.wrapping_add(1));
                })
            }
            _ => {
                let hello = self.hello.with(|h| *h).ok_or(RpcError::Unavailable)?;
                runtime::println!("calling hello.fail(3) while holding a Mutex");
                let outcome = self.in_call.with(|_| match hello.fail(3) {
                    Ok(_) => 0,
                    Err(RpcError::Crashed) => 1,
                    Err(_) => 2,
                });
                runtime::println!("hello.fail(3) under a Mutex ended with outcome {outcome}");
                Ok(outcome)
            }
        }
    }
}

fn init() -> Result<(), &'static str> {
    let h = hello::import().map_err(|_| "cannot import Hello")?;
    ATTACK.hello.with(|slot| *slot = Some(h));
    relay::export(&ATTACK).map_err(|_| "cannot export Relay")?;
    if variant() == 1 {
        runtime::spawn("spinner", || {
            runtime::sleep_ms(300);
            runtime::println!("thread loops inside Mutex::with from now on");
            ATTACK.in_thread.with(|n| loop {
                *n = core::hint::black_box(n.wrapping_add(1));
            })
        })
        .map_err(|_| "cannot spawn the spinner")?;
    }
    Ok(())
}

runtime::entry!(init);
