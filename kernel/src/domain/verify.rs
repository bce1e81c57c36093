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

/// SHA-256 of `bytes`: by the CPU's SHA-256 instructions where it has them (QEMU's
/// Cortex-A53), else by the loader's portable code (the Raspberry Pi 3's BCM2837).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    crate::arch::sha256::digest(bytes).unwrap_or_else(|| loader::sha256(bytes))
}

/// Verifies `envelope`; returns it verified, and what verifying it cost (PMU cycles:
/// instructions under QEMU `-icount shift=0`).
pub fn verify(envelope: &'static [u8]) -> Result<(VerifiedDomain<'static>, u64), LoadError> {
    let (ring, revoked) = keyring();
    let t0 = crate::arch::pmu::cycles();
    let v = loader::verify_with(envelope, &ring, &revoked, sha256)?;
    Ok((v, crate::arch::pmu::cycles() - t0))
}

/// The crypto floor of verifying initrd entry `entry`, for the bench: (instructions of the
/// SHA-256 of its ELF alone, of its Ed25519 signature check alone).
#[cfg(feature = "selftest")]
pub fn crypto_floor(entry: &str) -> Option<(u64, u64)> {
    let archive = super::registry::registry().initrd()?;
    let data = archive.entries().find(|e| e.name == entry)?.data;
    let env = loader::Envelope::parse(data).ok()?;
    let (ring, _) = keyring();
    let key = ring.get(&env.key_id)?;
    let t0 = crate::arch::pmu::cycles();
    let digest = core::hint::black_box(sha256(core::hint::black_box(env.elf)));
    let t1 = crate::arch::pmu::cycles();
    let signed = loader::check_signature(&env, key);
    let t2 = crate::arch::pmu::cycles();
    (digest == env.elf_digest && signed.is_ok()).then_some((t1 - t0, t2 - t1))
}
