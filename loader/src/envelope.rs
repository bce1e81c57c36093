//! The signed envelope (byte layout in `FORMAT.md`):
//!
//! ```text
//! 0    8  magic "QVQDOM\r\n"
//! 8    2  format version (1), little endian
//! 10   2  reserved, zero
//! 12   4  manifest length M
//! 16   4  ELF length E
//! 20  32  key id: SHA-256 of the signer's 32-byte Ed25519 public key
//! 52  32  SHA-256 of the ELF
//! 84   M  manifest
//! 84+M E  ELF
//! ..  64  Ed25519 signature over the statement
//! ```
//! Total length is exactly 148 + M + E. The statement the key signs is
//! `magic ‖ version ‖ reserved ‖ M ‖ E ‖ SHA-256(ELF) ‖ manifest` (84 - 32 + M bytes:
//! the header without the key id, then the manifest), which binds the manifest to the ELF.

use alloc::vec::Vec;

pub const MAGIC: [u8; 8] = *b"QVQDOM\r\n";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 84;
pub const SIGNATURE_LEN: usize = 64;
/// Bytes an envelope adds to manifest and ELF.
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + SIGNATURE_LEN;
pub const MAX_MANIFEST_LEN: u32 = 16 << 10;
pub const MAX_ELF_LEN: u32 = 64 << 20;

/// SHA-256 of a raw Ed25519 public key.
pub type KeyId = [u8; 32];

/// Key id of a raw 32-byte Ed25519 public key.
pub fn key_id(public_key: &[u8; 32]) -> KeyId {
    crate::sha256(public_key)
}

/// An envelope split into its fields (lengths checked; nothing verified yet).
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub key_id: KeyId,
    pub elf_digest: [u8; 32],
    pub manifest: &'a [u8],
    pub elf: &'a [u8],
    pub signature: [u8; 64],
}

/// Structural problems, before any cryptography.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    Truncated { need: usize, have: usize },
    BadMagic,
    UnsupportedVersion(u16),
    ReservedNotZero,
    LengthOverflow { field: &'static str, value: u32, max: u32 },
    TrailingBytes { extra: usize },
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Envelope<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() < ENVELOPE_OVERHEAD {
            return Err(EnvelopeError::Truncated {
                need: ENVELOPE_OVERHEAD,
                have: bytes.len(),
            });
        }
        if bytes[..8] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        let version = le16(bytes, 8);
        if version != VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        if le16(bytes, 10) != 0 {
            return Err(EnvelopeError::ReservedNotZero);
        }
        let (m, e) = (le32(bytes, 12), le32(bytes, 16));
        if m > MAX_MANIFEST_LEN {
            return Err(EnvelopeError::LengthOverflow {
                field: "manifest length",
                value: m,
                max: MAX_MANIFEST_LEN,
            });
        }
        if e > MAX_ELF_LEN {
            return Err(EnvelopeError::LengthOverflow {
                field: "ELF length",
                value: e,
                max: MAX_ELF_LEN,
            });
        }
        // Both are bounded above, so this cannot overflow.
        let total = ENVELOPE_OVERHEAD + m as usize + e as usize;
        if bytes.len() < total {
            return Err(EnvelopeError::Truncated {
                need: total,
                have: bytes.len(),
            });
        }
        if bytes.len() > total {
            return Err(EnvelopeError::TrailingBytes { extra: bytes.len() - total });
        }
        let manifest_end = HEADER_LEN + m as usize;
        let elf_end = manifest_end + e as usize;
        let arr = |r: core::ops::Range<usize>| -> [u8; 32] { bytes[r].try_into().unwrap_or([0; 32]) };
        Ok(Envelope {
            key_id: arr(20..52),
            elf_digest: arr(52..84),
            manifest: &bytes[HEADER_LEN..manifest_end],
            elf: &bytes[manifest_end..elf_end],
            signature: bytes[elf_end..].try_into().unwrap_or([0; 64]),
        })
    }

    /// The bytes the signature covers.
    pub fn statement(&self) -> Vec<u8> {
        statement(self.manifest, self.elf.len() as u32, &self.elf_digest)
    }
}

/// `magic ‖ version ‖ reserved ‖ M ‖ E ‖ SHA-256(ELF) ‖ manifest`.
pub fn statement(manifest: &[u8], elf_len: u32, elf_digest: &[u8; 32]) -> Vec<u8> {
    let mut s = Vec::with_capacity(52 + manifest.len());
    s.extend_from_slice(&MAGIC);
    s.extend_from_slice(&VERSION.to_le_bytes());
    s.extend_from_slice(&0u16.to_le_bytes());
    s.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    s.extend_from_slice(&elf_len.to_le_bytes());
    s.extend_from_slice(elf_digest);
    s.extend_from_slice(manifest);
    s
}

/// Assembles an envelope from its parts (the signature is made by the caller over
/// [`statement`]).
pub fn assemble(manifest: &[u8], elf: &[u8], key_id: &KeyId, signature: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + manifest.len() + elf.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    out.extend_from_slice(&(elf.len() as u32).to_le_bytes());
    out.extend_from_slice(key_id);
    out.extend_from_slice(&crate::sha256(elf));
    out.extend_from_slice(manifest);
    out.extend_from_slice(elf);
    out.extend_from_slice(signature);
    out
}
