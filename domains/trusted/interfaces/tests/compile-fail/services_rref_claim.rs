//! Attack class 2: calling a kernel service through the services table directly, with
//! values the trusted wrappers would never pass: claiming a shared-heap block by address (another domain's).
#![forbid(unsafe_code)]

fn main() {
    let s = interfaces::services();
    (s.rref_claim)(0x4010_0000 as *mut u8);
}
