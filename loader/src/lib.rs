//! QvQ's trusted loader, shared by the kernel and `qvq-sign`.
//!
//! * [`envelope`]: the signed envelope around a domain ELF (format in `FORMAT.md`);
//! * [`manifest`]: what a domain declares (name, version, interfaces, devices, limits);
//! * [`verify()`]: envelope + keyring + revocations → a [`VerifiedDomain`] or a specific
//!   [`LoadError`];
//! * [`policy`]: per-key trust policy, kernel-owned devices, rollback floors;
//! * [`elf`]: validation of position-independent AArch64 ELFs and their relocation.
//!
//! Every length and offset in the input is checked with checked arithmetic; no input can
//! make this crate panic, overflow, or write outside the buffer it is given.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod elf;
pub mod envelope;
pub mod manifest;
pub mod policy;
mod verify;

#[cfg(test)]
pub mod testkit;

pub use elf::{ElfError, ElfImage, Permission};
pub use envelope::{Envelope, KeyId, ENVELOPE_OVERHEAD, MAGIC, VERSION};
pub use manifest::{Manifest, ManifestError, RestartPolicy};
pub use verify::{check_signature, verify, verify_with, Keyring, LoadError, Revocations, VerifiedDomain};

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests;
