//! AArch64: boot, exception vectors, MMU, generic timer, semihosting, PSCI.
pub mod cpu;
pub mod crc32;
pub mod exception;
pub mod mmu;
pub mod pmu;
pub mod psci;
pub mod semihosting;
pub mod sha256;
pub mod timer;

core::arch::global_asm!(include_str!("boot.s"));
core::arch::global_asm!(include_str!("vectors.s"));
