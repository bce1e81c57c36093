//! `verify`: from envelope bytes to a domain the kernel may load.

use crate::elf::{ElfError, ElfImage};
use crate::envelope::{Envelope, EnvelopeError, KeyId};
use crate::manifest::{Manifest, ManifestError};
use alloc::vec::Vec;
use core::fmt;
use ed25519_dalek::{Signature, VerifyingKey};

/// Public keys the verifier trusts.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Vec<(KeyId, VerifyingKey)>,
}

impl Keyring {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a raw 32-byte Ed25519 public key; returns its key id, or `None` if the bytes
    /// are not a valid curve point.
    pub fn add(&mut self, public_key: [u8; 32]) -> Option<KeyId> {
        let key = VerifyingKey::from_bytes(&public_key).ok()?;
        let id = crate::envelope::key_id(&public_key);
        if !self.keys.iter().any(|(k, _)| *k == id) {
            self.keys.push((id, key));
        }
        Some(id)
    }
    pub fn get(&self, id: &KeyId) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }
    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|(k, _)| k)
    }
}

/// Revoked key ids and revoked ELF digests.
#[derive(Clone, Default, Debug)]
pub struct Revocations {
    pub keys: Vec<KeyId>,
    pub digests: Vec<[u8; 32]>,
}

/// A domain whose envelope, signature, manifest and ELF all passed.
#[derive(Clone, Debug)]
pub struct VerifiedDomain<'a> {
    pub manifest: Manifest,
    pub key_id: KeyId,
    pub elf_digest: [u8; 32],
    pub elf: ElfImage<'a>,
}

/// Why a domain was refused. Each cause has its own variant and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    BadMagic,
    UnsupportedVersion(u16),
    ReservedNotZero,
    Truncated { need: usize, have: usize },
    TrailingBytes { extra: usize },
    LengthOverflow { field: &'static str, value: u32, max: u32 },
    UnknownKey(KeyId),
    RevokedKey(KeyId),
    DigestMismatch,
    RevokedDigest([u8; 32]),
    BadSignature,
    InvalidManifest(ManifestError),
    InvalidElf(ElfError),
}

/// Writes the first 8 bytes of an id in hex (enough to name a key in a log line).
pub struct Short<'a>(pub &'a [u8; 32]);
impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError::*;
        match self {
            BadMagic => write!(f, "bad magic: not a QvQ domain envelope"),
            UnsupportedVersion(v) => write!(f, "unsupported envelope format version {v}"),
            ReservedNotZero => write!(f, "malformed envelope: reserved header field is not zero"),
            Truncated { need, have } => write!(f, "truncated envelope: {have} bytes, need {need}"),
            TrailingBytes { extra } => write!(f, "malformed envelope: {extra} bytes after the signature"),
            LengthOverflow { field, value, max } => write!(f, "length overflow: {field} {value} exceeds {max}"),
            UnknownKey(id) => write!(f, "unknown key {}: not in the keyring", Short(id)),
            RevokedKey(id) => write!(f, "revoked key {}", Short(id)),
            DigestMismatch => write!(f, "digest mismatch: the ELF does not match the digest in the envelope"),
            RevokedDigest(d) => write!(f, "revoked domain digest {}", Short(d)),
            BadSignature => write!(f, "bad signature"),
            InvalidManifest(e) => write!(f, "invalid manifest: {e}"),
            InvalidElf(e) => write!(f, "invalid ELF: {e}"),
        }
    }
}

impl From<EnvelopeError> for LoadError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::Truncated { need, have } => LoadError::Truncated { need, have },
            EnvelopeError::BadMagic => LoadError::BadMagic,
            EnvelopeError::UnsupportedVersion(v) => LoadError::UnsupportedVersion(v),
            EnvelopeError::ReservedNotZero => LoadError::ReservedNotZero,
            EnvelopeError::LengthOverflow { field, value, max } => LoadError::LengthOverflow { field, value, max },
            EnvelopeError::TrailingBytes { extra } => LoadError::TrailingBytes { extra },
        }
    }
}

/// Checks an envelope end to end. Costs one SHA-256 pass over the ELF, one Ed25519
/// verification and one pass over the ELF's headers and relocations.
pub fn verify<'a>(bytes: &'a [u8], keyring: &Keyring, revoked: &Revocations) -> Result<VerifiedDomain<'a>, LoadError> {
    verify_with(bytes, keyring, revoked, crate::sha256)
}

/// [`verify`], with the ELF's SHA-256 computed by `sha256` (which must compute SHA-256:
/// the kernel passes one that uses the CPU's SHA-256 instructions where it has them).
pub fn verify_with<'a>(bytes: &'a [u8], keyring: &Keyring, revoked: &Revocations, sha256: fn(&[u8]) -> [u8; 32]) -> Result<VerifiedDomain<'a>, LoadError> {
    let env = Envelope::parse(bytes)?;
    if revoked.keys.contains(&env.key_id) {
        return Err(LoadError::RevokedKey(env.key_id));
    }
    let key = keyring.get(&env.key_id).ok_or(LoadError::UnknownKey(env.key_id))?;
    if sha256(env.elf) != env.elf_digest {
        return Err(LoadError::DigestMismatch);
    }
    if revoked.digests.contains(&env.elf_digest) {
        return Err(LoadError::RevokedDigest(env.elf_digest));
    }
    check_signature(&env, key)?;
    let manifest = Manifest::decode(env.manifest).map_err(LoadError::InvalidManifest)?;
    let elf = ElfImage::parse(env.elf).map_err(LoadError::InvalidElf)?;
    Ok(VerifiedDomain {
        manifest,
        key_id: env.key_id,
        elf_digest: env.elf_digest,
        elf,
    })
}

/// The Ed25519 check of `env`'s signature over its statement by `key` (what [`verify`]
/// adds to the SHA-256 pass; the kernel's bench measures it alone).
pub fn check_signature(env: &Envelope, key: &VerifyingKey) -> Result<(), LoadError> {
    let signature = Signature::from_bytes(&env.signature);
    key.verify_strict(&env.statement(), &signature).map_err(|_| LoadError::BadSignature)
}
