//! Attack class 2: calling a kernel service through the services table directly, with
//! values the trusted wrappers would never pass: a pointer and length of the attacker's choosing (the kernel reads 4096 bytes at 0x8).
#![forbid(unsafe_code)]

fn main() {
    let s = interfaces::services();
    (s.log)(0x8 as *const u8, 4096);
}
