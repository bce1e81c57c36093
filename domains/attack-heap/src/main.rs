//! Attack domain (class: shared-heap exhaustion): leaks small `RRef`s without end. The
//! shared heap must charge them to this domain and refuse it at its quota (its
//! `RRef::new` then fails and it crashes); the kernel and other domains carry on.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::RRef;

fn init() -> Result<(), &'static str> {
    runtime::spawn("leaker", || {
        runtime::println!("leaking 64-byte shared-heap blocks");
        let mut n: u64 = 0;
        loop {
            core::mem::forget(RRef::new([n; 8]));
            n += 1;
            if n.is_power_of_two() && n >= 1024 {
                runtime::println!("{n} blocks leaked");
            }
        }
    })
    .map_err(|_| "cannot spawn the leaker")
}

runtime::entry!(init);
