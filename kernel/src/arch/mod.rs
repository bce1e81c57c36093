//! CPU-architecture code. QvQ supports one architecture; the indirection keeps CPU details
//! out of the subsystem modules (the rust-raspberrypi-OS-tutorials layout).
mod aarch64;
pub use aarch64::*;
