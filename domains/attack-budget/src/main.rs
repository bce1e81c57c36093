//! Attack domain (class: a call that never ends while it spends its time outside itself).
//! It takes relay's place and exports `Relay`, so the shell's `relay panic` reaches it; its
//! `relay_fail` then loops forever:
//! - variant 1 logging (most of each iteration is in the kernel's log path and the console
//!   driver, not in the attacker);
//! - variant 2 calling `hello.ping` (most of each iteration is in hello, whose call count
//!   keeps moving).
//!
//! Either way the call's CPU budget counts the time it spends in what it calls: the
//! watchdog must end the call and crash the attacker.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::hint::black_box;
use runtime::interfaces::hello::{self, Hello};
use runtime::interfaces::relay::{self, Relay};
use runtime::interfaces::{RpcError, RpcResult};
use runtime::Mutex;

struct Attack {
    hello: Mutex<Option<hello::Proxy>>,
}

static ATTACK: Attack = Attack { hello: Mutex::new(None) };

impl Relay for Attack {
    fn relay_fail(&self, _how: u32) -> RpcResult<u32> {
        let start = runtime::uptime_ns();
        let ms = || (runtime::uptime_ns() - start) / 1_000_000;
        let mut n: u64 = 0;
        if runtime::version().1 == 1 {
            runtime::println!("looping forever in a call, logging");
            loop {
                n = black_box(n + 1);
                runtime::log::write_str(".");
                if n.is_multiple_of(100) {
                    runtime::println!("still inside the call after {n} writes, {} ms", ms());
                }
            }
        }
        let hello = self.hello.with(|h| *h).ok_or(RpcError::Unavailable)?;
        runtime::println!("looping forever in a call, calling hello.ping");
        loop {
            n = black_box(n + 1);
            let _ = black_box(hello.ping(n));
            if n.is_multiple_of(10000) {
                runtime::println!("still inside the call after {n} pings, {} ms", ms());
            }
        }
    }
}

fn init() -> Result<(), &'static str> {
    let h = hello::import().map_err(|_| "cannot import Hello")?;
    ATTACK.hello.with(|slot| *slot = Some(h));
    relay::export(&ATTACK).map_err(|_| "cannot export Relay")?;
    Ok(())
}

runtime::entry!(init);
