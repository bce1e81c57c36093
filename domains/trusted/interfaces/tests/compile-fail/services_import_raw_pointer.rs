//! Attack class 2: calling a kernel service through the services table directly, with
//! values the trusted wrappers would never pass: an import with a name and hash at addresses of the attacker's choosing.
#![forbid(unsafe_code)]

fn main() {
    let s = interfaces::services();
    let _ = (s.import)(0x10 as *const u8, 64, 0x20 as *const [u8; 32]);
}
