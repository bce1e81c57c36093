//! Compile-time attacks on the runtime (attack class 3), one per feature; each must fail
//! to compile in a domain that forbids `unsafe`:
//! - `runtime-start`: calls `runtime::start` again with the services table (a forged one
//!   would do as well): the private heap is initialised again over live allocations, so
//!   two owners get the same memory.
//! - `entry-start`: calls the `_start` that `runtime::entry!` generated, from the domain's
//!   own code, to the same effect.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

fn init() -> Result<(), &'static str> {
    let first = alloc::boxed::Box::new([1u8; 64]);
    #[cfg(feature = "runtime-start")]
    let _ = runtime::start(runtime::interfaces::services(), init);
    #[cfg(feature = "entry-start")]
    let _ = _start(runtime::interfaces::services());
    let second = alloc::boxed::Box::new([2u8; 64]);
    runtime::println!("first {} second {}", first[0], second[0]);
    Ok(())
}

runtime::entry!(init);
