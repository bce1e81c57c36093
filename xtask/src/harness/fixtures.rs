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

/// hello's ELF signed with `key` under hello's manifest changed by `change`.
fn hello_as(key: &std::path::Path, change: impl FnOnce(&mut qvq_sign::loader::Manifest)) -> Result<Vec<u8>, String> {
    let elf = std::fs::read(build_domain_elf("hello")?).map_err(|e| e.to_string())?;
    let mut m = domains::manifest("hello", None, true)?;
    change(&mut m);
    qvq_sign::sign(&m, &elf, &qvq_sign::read_signing_key(key)?)
}

/// The board's first versions plus one domain for each trust-policy rule: unchecked, a
/// name and an export outside the limited test key's policy, kernel-owned devices, and an
/// export the kernel makes.
pub fn policy_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = first_versions(board, image::initrd_entries(board)?)?;
    let (dev, limited) = (image::ensure_dev_key()?, paths::limited_test_key());
    let renamed = |name: &'static str| {
        move |m: &mut qvq_sign::loader::Manifest| {
            m.name = name.into();
            m.exports.clear();
        }
    };
    let interrupt_controller = match board {
        Board::Virt => "arm,cortex-a15-gic",
        Board::Rpi3 => "brcm,bcm2836-l1-intc",
    };
    let kernel_hash = qvq_sign::idl_hash("Kernel").ok_or("the IDL has no Kernel interface")?;
    entries.extend([
        (
            "unchecked.qvd".to_string(),
            hello_as(&dev, |m| {
                renamed("unchecked")(m);
                m.safe_rust_checked = false;
            })?,
        ),
        ("outside.qvd".to_string(), hello_as(&limited, renamed("console"))?),
        (
            "limited-export.qvd".to_string(),
            hello_as(&limited, |m| {
                m.version = qvq_sign::loader::manifest::Version { major: 9, minor: 0, patch: 0 };
                m.exports.push(qvq_sign::loader::manifest::InterfaceRef {
                    name: "Console".into(),
                    hash: qvq_sign::idl_hash("Console").unwrap_or_default(),
                });
            })?,
        ),
        (
            "timer.qvd".to_string(),
            hello_as(&dev, |m| {
                renamed("timer")(m);
                m.devices = vec!["arm,armv8-timer".into()];
            })?,
        ),
        (
            "intc.qvd".to_string(),
            hello_as(&dev, |m| {
                renamed("intc")(m);
                m.devices = vec![interrupt_controller.into()];
            })?,
        ),
        (
            "kernel-export.qvd".to_string(),
            hello_as(&dev, |m| {
                renamed("kexport")(m);
                m.exports.push(qvq_sign::loader::manifest::InterfaceRef {
                    name: "Kernel".into(),
                    hash: kernel_hash,
                });
            })?,
        ),
    ]);
    Ok(entries)
}

/// The board's first versions plus `shadow-console`: the console driver signed under
/// another name, so two domains export `Console`.
pub fn second_exporter_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = first_versions(board, image::initrd_entries(board)?)?;
    let elf = std::fs::read(build_domain_elf("console")?).map_err(|e| e.to_string())?;
    let entry = domains::recipe(board)?.into_iter().find(|e| e.name == "console" && e.version.is_none());
    let mut m = domains::manifest("console", entry.as_ref(), true)?;
    m.name = "shadow-console".into();
    entries.push((
        "shadow-console.qvd".to_string(),
        qvq_sign::sign(&m, &elf, &qvq_sign::read_signing_key(&image::ensure_dev_key()?)?)?,
    ));
    Ok(entries)
}

/// The swap fixtures: versions of hello each refused for its own reason, 0.3.0 signed
/// with the rollback floor 0.3.0, and 0.1.5 and 0.1.6 that keep no state.
pub fn swap_fixture_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = image::initrd_entries(board)?;
    let dev = qvq_sign::read_signing_key(&image::ensure_dev_key()?)?;
    let revoked = qvq_sign::read_signing_key(&paths::revoked_test_key())?;
    let hello_elf = std::fs::read(build_domain_elf("hello")?).map_err(|e| e.to_string())?;
    let version = |v: &str| RecipeEntry {
        name: "hello".into(),
        devices: vec![],
        version: Some(v.into()),
        ..Default::default()
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
        (
            "hello-floor.qvd".to_string(),
            qvq_sign::sign(
                &domains::manifest(
                    "hello",
                    Some(&RecipeEntry {
                        min_version: Some("0.3.0".into()),
                        ..version("0.3.0")
                    }),
                    true,
                )?,
                &hello_elf,
                &dev,
            )?,
        ),
        ("hello-otherstate.qvd".to_string(), fixture("swap-other-state")?),
        ("hello-nostate.qvd".to_string(), fixture("swap-no-state")?),
        (
            "hello-nostate-0.1.6.qvd".to_string(),
            qvq_sign::sign(
                &domains::manifest("swap-no-state", Some(&version("0.1.6")), true)?,
                &std::fs::read(build_domain_elf("swap-no-state")?).map_err(|e| e.to_string())?,
                &dev,
            )?,
        ),
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
        ..Default::default()
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
            ..Default::default()
        };
        let mut manifest = domains::manifest(a.krate, Some(&entry), true)?;
        manifest.name = a.name.into();
        // Two variants of one attacker are two versions of it: the first is the pinned
        // `NAME.qvd`, which boots; a later one is versioned and can be swapped in.
        let pinned = format!("{}.qvd", a.name);
        let file = if entries.iter().any(|e| e.0 == pinned) {
            format!("{}-0.{}.0.qvd", a.name, a.variant)
        } else {
            pinned
        };
        entries.push((file, qvq_sign::sign(&manifest, &elf, &dev)?));
    }
    Ok(entries)
}

/// The board's first versions with `hello` replaced by `attack-admin` signed by the limited
/// test key (policy: only `hello`, exporting only `Hello`, importing nothing, no device)
/// under the name `hello`, importing `Kernel` (a red-team finding: policies once said
/// nothing about imports, and this domain crashed the others and powered off).
pub fn limited_key_imports_kernel_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = first_versions(board, image::initrd_entries(board)?)?;
    entries.retain(|e| e.0 != "hello.qvd");
    let elf = std::fs::read(build_domain_elf("attack-admin")?).map_err(|e| e.to_string())?;
    let mut m = domains::manifest("attack-admin", None, true)?;
    m.name = "hello".into();
    image::ensure_dev_key()?;
    let signed = qvq_sign::sign(&m, &elf, &qvq_sign::read_signing_key(&paths::limited_test_key())?)?;
    entries.push(("hello.qvd".to_string(), signed));
    Ok(entries)
}
