//! Attack class 2: calling a kernel service through the services table directly, with
//! values the trusted wrappers would never pass: a panic message at an address of the attacker's choosing.
#![forbid(unsafe_code)]

fn main() {
    let s = interfaces::services();
    (s.panic)(0x4000_0000 as *const u8, 256);
}
