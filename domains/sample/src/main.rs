//! Test fixture for the signed-domain chain: the smallest useful domain ELF, with data
//! that holds pointers (so the linker emits R_AARCH64_RELATIVE relocations, some into
//! read-only data). It names its own entry point with `#[no_mangle]`, which is why it is
//! not `#![forbid(unsafe_code)]`: real domains get their entry from the trusted runtime.
#![no_std]
#![no_main]

static WORDS: [&str; 4] = ["signed", "verified", "relocated", "loaded"];
static GREETING: &str = "hello from a QvQ domain";

/// Entry point the loader jumps to; returns something that depends on relocated data.
#[no_mangle]
pub extern "C" fn _start(index: usize) -> usize {
    WORDS[index % WORDS.len()].len() + GREETING.len()
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
