//! Attack class 5: a domain declares a type holding a pointer as shared-heap data, so an
//! `RRef` of it would carry its pointer to another domain.
#![forbid(unsafe_code)]

#[derive(Clone, Copy)]
struct Pointer(usize, *const u8);

// SAFETY: a lie.
unsafe impl interfaces::RRefable for Pointer {}
// SAFETY: a lie.
unsafe impl Send for Pointer {}

fn main() {
    let _ = interfaces::RRef::new(Pointer(0, core::ptr::null()));
}
