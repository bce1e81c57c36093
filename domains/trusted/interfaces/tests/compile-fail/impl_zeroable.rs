//! Attack class 5b: a domain declares its own type all-zero-valid, so
//! `RRef::try_new_zeroed` would make a value no safe code could (a reference of zero).
#![forbid(unsafe_code)]

#[derive(Clone, Copy)]
struct Reference(&'static u8);

// SAFETY: a lie.
unsafe impl interfaces::Zeroable for Reference {}

fn main() {}
