//! Admission: the trust policy a verified domain must meet before anything of it loads, at
//! boot, restart and swap alike (the rules are `loader::policy`; the data comes from
//! `keys/` through the keyring):
//!
//! * its key's policy allows its name, its exports and its device grants, and, if the
//!   build did not check it as safe Rust, unchecked domains;
//! * none of its devices is one the kernel keeps;
//! * its version is at or above the name's rollback floor: the larger of the compiled
//!   floor (`keys/floors.toml`) and the signed `min_version` of every version of that
//!   name that has run since boot.

use crate::sync::IrqLock;
use alloc::string::String;
use alloc::vec::Vec;
use loader::manifest::{Manifest, Version};
use loader::policy::PolicyError;
use loader::VerifiedDomain;

/// Floors raised at run time: (name, floor). Only ever raised.
static RAISED: IrqLock<Vec<(String, Version)>> = IrqLock::new("rollback floors", Vec::new());

/// The rollback floor of `name` now.
pub fn floor(name: &str) -> Version {
    let compiled = crate::keyring::FLOORS.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let raised = RAISED.lock().iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    compiled.into_iter().chain(raised).max().unwrap_or_default()
}

/// A version of `m.name` runs: nothing below its signed `min_version` loads any more.
pub fn raise_floor(m: &Manifest) {
    let mut raised = RAISED.lock();
    match raised.iter_mut().find(|(n, _)| *n == m.name) {
        Some((_, v)) if *v < m.min_version => *v = m.min_version.clone(),
        Some(_) => {}
        None => raised.push((m.name.clone(), m.min_version.clone())),
    }
}

/// Checks verified domain `v` against its key's policy, the kernel-owned devices and the
/// rollback floor.
pub fn admit(v: &VerifiedDomain) -> Result<(), PolicyError> {
    let policy = crate::keyring::KEY_POLICIES
        .iter()
        .find(|(id, _, _)| *id == v.key_id)
        .map(|(_, _, p)| p)
        .ok_or(PolicyError::NoPolicy)?;
    policy.allows(&v.manifest)?;
    loader::policy::check_floor(&v.manifest, &floor(&v.manifest.name))
}
