//! The checks behind QvQ's fuzz targets, one per parser of untrusted bytes.
//!
//! Each check feeds its input to a parser and asserts what must hold for *every* input
//! (it panics when a property breaks): no panic inside the parser, accepted input
//! re-encodes to the same bytes, decoded lengths stay within the format's limits, and the
//! parts agree with each other. The fuzz targets in `fuzz_targets/` call these functions;
//! so does the stable test `tests/seeds.rs`, which replays every seed in `corpus/` without
//! nightly or libFuzzer.

extern crate alloc;

mod elf;
mod elf_differential;
mod envelope;
mod fat_volume;
mod hostlink;
mod initrd;
mod manifest;

pub use elf::elf;
pub use elf_differential::elf_differential;
pub use envelope::{envelope, verify};
pub use fat_volume::{fat_volume, MemDisk, FUZZ_DISK_BYTES};

/// The FS domain's FAT code, compiled here as it is in the domain (it uses only `core` and
/// `alloc`), so the host can fuzz it and test it against dosfstools and mtools.
#[path = "../../domains/fs/src/fat/mod.rs"]
pub mod fat;
pub use hostlink::hostlink;
pub use initrd::initrd;
pub use manifest::manifest;

/// What the parser made of an input (the properties hold either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Refused,
}

impl Outcome {
    fn of(accepted: bool) -> Outcome {
        if accepted {
            Outcome::Accepted
        } else {
            Outcome::Refused
        }
    }
}

/// A fuzz target: its name (also its `fuzz_targets/<name>.rs` and `corpus/<name>/`), the
/// parser it drives, and its check.
pub struct Target {
    pub name: &'static str,
    pub parser: &'static str,
    pub check: fn(&[u8]) -> Outcome,
}

/// Every target whose check lives here.
pub const TARGETS: &[Target] = &[
    Target {
        name: "envelope",
        parser: "loader::envelope::Envelope::parse, statement, assemble",
        check: envelope,
    },
    Target {
        name: "manifest",
        parser: "loader::Manifest::decode, encode",
        check: manifest,
    },
    Target {
        name: "elf",
        parser: "loader::ElfImage::parse, load_into",
        check: elf,
    },
    Target {
        name: "elf_differential",
        parser: "loader::ElfImage::parse against goblin (qvq_sign::crosscheck)",
        check: elf_differential,
    },
    Target {
        name: "verify",
        parser: "loader::verify (envelope, key, digest, signature, manifest, ELF)",
        check: verify,
    },
    Target {
        name: "initrd",
        parser: "initrd::Archive::parse, entries, find; initrd::pack",
        check: initrd,
    },
    Target {
        name: "fat_volume",
        parser: "the FS domain's fat::Volume (mount, list, stat, read, write, mkdir, remove, usage)",
        check: fat_volume,
    },
    Target {
        name: "hostlink",
        parser: "pushlink::Decoder (byte by byte), pushlink::Begin::decode, encode",
        check: hostlink,
    },
];

/// The seed corpora's signing key (`corpus-key.txt`): public, trusted only by `verify`.
pub fn corpus_key() -> ed25519_dalek::SigningKey {
    let text = include_str!("../corpus-key.txt");
    let hex = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
    let mut secret = [0u8; 32];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .expect("corpus-key.txt holds 64 hex digits");
    }
    ed25519_dalek::SigningKey::from_bytes(&secret)
}
