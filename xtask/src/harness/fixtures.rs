//! The initrds of the QEMU test setups that differ from the board's standard one.

use crate::board::Board;
use crate::domains::{self, build_domain_elf, RecipeEntry};
use crate::image;
use crate::paths::{self, out_dir};

/// Only the entries the recipe lists without a `version` (no second version to fall back to).
pub fn first_versions(board: Board, entries: Vec<(String, Vec<u8>)>) -> Result<Vec<(String, Vec<u8>)>, String> {
    let firsts: Vec<String> = crate::domains::recipe(board)?
        .iter()
        .filter(|e| e.version.is_none())
        .map(|e| e.file_name())
        .collect();
    Ok(entries.into_iter().filter(|e| firsts.contains(&e.0)).collect())
}

/// The board's domains followed by one domain for each way of being refused.
pub fn rejection_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = first_versions(board, image::initrd_entries(board)?)?;
    let hello_elf = std::fs::read(build_domain_elf("hello")?).map_err(|e| e.to_string())?;
    let manifest = domains::manifest("hello", None, true)?;
    let hello = entries
        .iter()
        .find(|e| e.0 == "hello.qvd")
        .map(|e| e.1.clone())
        .ok_or("no hello in the recipe")?;
    let mut tampered = hello.clone();
    tampered[84] ^= 0x01;
    let scratch = out_dir(board).join("throwaway");
    let (key, _, _) = qvq_sign::keygen(&scratch.join("wrong"), true)?;
    let wrong = qvq_sign::sign(&manifest, &hello_elf, &qvq_sign::read_signing_key(&key)?)?;
    let revoked = qvq_sign::sign(&manifest, &hello_elf, &qvq_sign::read_signing_key(&paths::revoked_test_key())?)?;
    let rogue_elf = std::fs::read(build_domain_elf("rogue")?).map_err(|e| e.to_string())?;
    let rogue = qvq_sign::sign(
        &domains::manifest("rogue", None, true)?,
        &rogue_elf,
        &qvq_sign::read_signing_key(&image::ensure_dev_key()?)?,
    )?;
    entries.extend([
        ("unsigned.qvd".to_string(), hello_elf),
        ("tampered.qvd".to_string(), tampered),
        ("wrongkey.qvd".to_string(), wrong),
        ("revoked.qvd".to_string(), revoked),
        ("malformed.qvd".to_string(), hello[..100].to_vec()),
        ("rogue.qvd".to_string(), rogue),
    ]);
    Ok(entries)
}

/// The swap fixtures: versions of hello each refused for its own reason.
pub fn swap_fixture_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = image::initrd_entries(board)?;
    let dev = qvq_sign::read_signing_key(&image::ensure_dev_key()?)?;
    let revoked = qvq_sign::read_signing_key(&paths::revoked_test_key())?;
    let hello_elf = std::fs::read(build_domain_elf("hello")?).map_err(|e| e.to_string())?;
    let version = |v: &str| RecipeEntry {
        name: "hello".into(),
        devices: vec![],
        restart: None,
        version: Some(v.into()),
    };
    let hello = |v: &str| domains::manifest("hello", Some(&version(v)), true);
    let mut badsig = qvq_sign::sign(&hello("0.3.0")?, &hello_elf, &dev)?;
    let last = badsig.len() - 1;
    badsig[last] ^= 0x01; // the signature's last byte
    let mut wrong_hash = hello("0.3.0")?;
    wrong_hash.exports[0].hash[0] ^= 0x01;
    let fixture = |name: &str| -> Result<Vec<u8>, String> {
        let elf = std::fs::read(build_domain_elf(name)?).map_err(|e| e.to_string())?;
        qvq_sign::sign(&domains::manifest(name, None, true)?, &elf, &dev)
    };
    entries.extend([
        ("hello-badsig.qvd".to_string(), badsig),
        ("hello-0.0.1.qvd".to_string(), qvq_sign::sign(&hello("0.0.1")?, &hello_elf, &dev)?),
        ("hello-revokedkey.qvd".to_string(), qvq_sign::sign(&hello("0.3.0")?, &hello_elf, &revoked)?),
        ("hello-wronghash.qvd".to_string(), qvq_sign::sign(&wrong_hash, &hello_elf, &dev)?),
        ("hello-initpanic.qvd".to_string(), fixture("swap-init-panics")?),
        ("hello-otherstate.qvd".to_string(), fixture("swap-other-state")?),
    ]);
    Ok(entries)
}

/// The board's domains with hello's restart policy set to `fatal`.
pub fn fatal_hello_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = image::initrd_entries(board)?;
    let elf = std::fs::read(build_domain_elf("hello")?).map_err(|e| e.to_string())?;
    let entry = RecipeEntry {
        name: "hello".into(),
        devices: vec![],
        restart: Some("fatal".into()),
        version: None,
    };
    let manifest = domains::manifest("hello", Some(&entry), true)?;
    let signed = qvq_sign::sign(&manifest, &elf, &qvq_sign::read_signing_key(&image::ensure_dev_key()?)?)?;
    for e in entries.iter_mut().filter(|e| e.0 == "hello.qvd") {
        e.1 = signed.clone();
    }
    Ok(entries)
}

/// An attack domain of the attack tests: crate `krate` signed as domain `name` with version
/// `0.<variant>.0` (the domain reads its variant from its version), restart policy
/// `restart`, the board's device grants, and optionally taking the place of a standard
/// domain (`replaces`, an initrd entry such as `relay.qvd`, so it can export its interface).
#[derive(Clone, Copy)]
pub struct Attacker {
    pub krate: &'static str,
    pub name: &'static str,
    pub variant: u32,
    pub restart: &'static str,
    pub virt_devices: &'static [&'static str],
    pub rpi3_devices: &'static [&'static str],
    pub replaces: Option<&'static str>,
}

/// The board's standard initrd plus the attack domains, each checked (safe Rust, allowed
/// dependencies), built and signed with the development key like any domain.
pub fn attack_entries(board: Board, attackers: &[Attacker]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = image::initrd_entries(board)?;
    let dev = qvq_sign::read_signing_key(&image::ensure_dev_key()?)?;
    for a in attackers {
        if let Some(r) = a.replaces {
            entries.retain(|e| e.0 != r);
        }
        let elf = std::fs::read(build_domain_elf(a.krate)?).map_err(|e| e.to_string())?;
        let devices = match board {
            Board::Virt => a.virt_devices,
            Board::Rpi3 => a.rpi3_devices,
        };
        let entry = RecipeEntry {
            name: a.krate.into(),
            devices: devices.iter().map(|d| d.to_string()).collect(),
            restart: Some(a.restart.into()),
            version: Some(format!("0.{}.0", a.variant)),
        };
        let mut manifest = domains::manifest(a.krate, Some(&entry), true)?;
        manifest.name = a.name.into();
        // Versioned entry names: two variants of one attacker are two versions of it (the
        // first boots; a later one can be swapped in).
        entries.push((format!("{}-0.{}.0.qvd", a.name, a.variant), qvq_sign::sign(&manifest, &elf, &dev)?));
    }
    Ok(entries)
}
