//! Test fixture: imports an interface its signed manifest does not declare.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::hello::{self, Hello};

fn init() -> Result<(), &'static str> {
    let h = hello::import().map_err(|_| "the kernel refused the undeclared import")?;
    let _ = h.ping(1);
    Ok(())
}

runtime::entry!(init);
