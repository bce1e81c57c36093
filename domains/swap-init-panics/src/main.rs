//! Test fixture: a version of hello whose initialisation panics (a swap must roll back).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

fn init() -> Result<(), &'static str> {
    panic!("this version of hello cannot start")
}

runtime::entry!(init);
