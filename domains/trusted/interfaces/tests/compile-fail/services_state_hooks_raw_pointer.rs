//! Attack class 2: calling a kernel service through the services table directly, with
//! values the trusted wrappers would never pass: a state hash at an address of the attacker's choosing.
#![forbid(unsafe_code)]

fn main() {
    let s = interfaces::services();
    extern "C" fn ex(_: usize) -> *mut u8 { 0x4000_0000 as *mut u8 } extern "C" fn im(_: usize, _: *mut u8) -> i32 { 0 } let _ = (s.state_hooks)(0x30 as *const [u8; 32], ex, 0, im, 0);
}
