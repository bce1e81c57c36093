//! Verification: the one place an envelope is checked (signature by a trusted, unrevoked
//! key over the manifest and the ELF's digest; the ELF's structure), at boot and for a hot
//! swap alike. Nothing of an envelope is used before this accepts it.

use crate::sync::IrqLock;
use loader::{Keyring, LoadError, Revocations, VerifiedDomain};

/// The keyring, decoded once: decoding an Ed25519 public key (a point decompression) costs
/// a few hundred thousand instructions, and every verification needs every key.
static KEYRING: IrqLock<Option<(Keyring, Revocations)>> = IrqLock::new("keyring", None);

/// The keys the kernel trusts and the revocations, from `keys/` at build time.
fn keyring() -> (Keyring, Revocations) {
    let mut cached = KEYRING.lock();
    cached.get_or_insert_with(decode_keyring).clone()
}

fn decode_keyring() -> (Keyring, Revocations) {
    let mut ring = Keyring::new();
    for (_, key) in crate::keyring::TRUSTED_KEYS {
        ring.add(*key);
    }
    (
        ring,
        Revocations {
            keys: crate::keyring::REVOKED_KEYS.to_vec(),
            digests: crate::keyring::REVOKED_DIGESTS.to_vec(),
        },
    )
}

/// Verifies `envelope`; returns it verified, and what verifying it cost (PMU cycles:
/// instructions under QEMU `-icount shift=0`).
pub fn verify(envelope: &'static [u8]) -> Result<(VerifiedDomain<'static>, u64), LoadError> {
    let (ring, revoked) = keyring();
    let t0 = crate::arch::pmu::cycles();
    let v = loader::verify(envelope, &ring, &revoked)?;
    Ok((v, crate::arch::pmu::cycles() - t0))
}
