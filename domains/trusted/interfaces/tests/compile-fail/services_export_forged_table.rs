//! Attack class 2: calling a kernel service through the services table directly, with
//! values the trusted wrappers would never pass: an export whose table, moves and state are
//! integers (every call into it jumps there).
#![forbid(unsafe_code)]

fn main() {
    let s = interfaces::services();
    let _ = (s.export)(
        b"Hello".as_ptr(),
        5,
        &interfaces::hello::HASH,
        0x1000 as *const (),
        0x3000 as *const u8,
        0x2000 as *const (),
        1,
    );
}
