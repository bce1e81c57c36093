//! Attack domain (class: an initialisation that never returns). Boot must carry on: the
//! CPU budget takes the domain back, and the shell answers.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

fn init() -> Result<(), &'static str> {
    runtime::println!("init loops forever");
    let mut n: u64 = 0;
    loop {
        n = core::hint::black_box(n.wrapping_add(1));
    }
}

runtime::entry!(init);
