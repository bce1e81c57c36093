//! Attack class 2: calling a kernel service through the services table directly, with
//! values the trusted wrappers would never pass: a raw shared-heap block, outside any RRef (no type, no owner discipline).
#![forbid(unsafe_code)]

fn main() {
    let s = interfaces::services();
    let p = (s.rref_alloc)(usize::MAX, 1 << 40); let _ = p;
}
