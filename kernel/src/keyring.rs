//! The keys the kernel trusts, the revocation list, each key's policy and the rollback
//! floors, compiled in from `keys/` by `kernel/build.rs`. The domain manager verifies
//! every envelope against these.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/keyring.rs"));
}
pub use generated::{FLOORS, KEY_POLICIES, REVOKED_DIGESTS, REVOKED_KEYS, TRUSTED_KEYS};

/// Logs what the kernel trusts.
pub fn log() {
    if TRUSTED_KEYS.is_empty() {
        crate::warn!("keyring: empty; no domain can be verified (run `cargo xtask build` to make a dev key)");
    }
    for (name, key) in TRUSTED_KEYS {
        let id = key_id(key);
        crate::info!(
            "keyring: trusts {name} (key id {:02x}{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}{:02x})",
            id[0],
            id[1],
            id[2],
            id[3],
            id[4],
            id[5],
            id[6],
            id[7]
        );
    }
    crate::info!(
        "keyring: {} revoked keys, {} revoked domain digests, {} key policies, {} rollback floors",
        REVOKED_KEYS.len(),
        REVOKED_DIGESTS.len(),
        KEY_POLICIES.len(),
        FLOORS.len()
    );
}

fn key_id(key: &[u8; 32]) -> [u8; 32] {
    loader::sha256(key)
}
