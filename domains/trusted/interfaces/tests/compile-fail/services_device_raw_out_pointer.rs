//! Attack class 2: calling a kernel service through the services table directly, with
//! values the trusted wrappers would never pass: a raw out-pointer: the kernel writes a DeviceGrant wherever it points.
#![forbid(unsafe_code)]

fn main() {
    let s = interfaces::services();
    let _ = (s.device)(0, 0x4008_0000 as *mut interfaces::DeviceGrant);
}
