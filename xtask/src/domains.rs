//! Building domains: compile each as a static PIE, check that it is safe Rust with only
//! allow-listed dependencies, sign it with the local development key (manifest from its
//! `domain.toml`, device grants and restart policy from the board recipe), and pack the
//! board's initrd in recipe order.

use crate::board::Board;
use crate::paths::{self, domain_dir, domains_dir};
use crate::setup::{cargo, KERNEL_TARGET};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates a domain may depend on (directly or not): the trusted runtime and interface
/// definitions, and the audited allocator the runtime uses.
pub const ALLOWED_DEPENDENCIES: &[&str] = &["qvq-runtime", "qvq-interfaces", "linked_list_allocator"];

/// One `[[domain]]` of `initrd/<board>.toml`.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RecipeEntry {
    pub name: String,
    #[serde(default)]
    pub devices: Vec<String>,
    pub restart: Option<String>,
    /// Signs this entry with this version instead of domain.toml's: a further version of a
    /// domain, packed as `<name>-<version>.qvd` and kept for hot swaps.
    pub version: Option<String>,
}

impl RecipeEntry {
    /// The entry's file name in the initrd.
    pub fn file_name(&self) -> String {
        match &self.version {
            Some(v) => format!("{}-{v}.qvd", self.name),
            None => format!("{}.qvd", self.name),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipe {
    domain: Vec<RecipeEntry>,
    /// Top-level `host_link = true`: the board's kernel gets the host-link receiver. Read by
    /// `crate::swap::recipe_enables_host_link`; named here so unknown keys stay refused.
    #[serde(default, rename = "host_link")]
    _host_link: bool,
}

pub fn recipe(board: Board) -> Result<Vec<RecipeEntry>, String> {
    let path = paths::recipe(board);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let r: Recipe = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(r.domain)
}

/// Builds the given domain packages; returns each ELF's path.
pub fn build_elves(names: &[&str]) -> Result<Vec<PathBuf>, String> {
    let target_dir = paths::domains_target_dir();
    let mut cmd = cargo();
    cmd.current_dir(domains_dir())
        .args(["build", "--release", "--target", KERNEL_TARGET, "--target-dir"])
        .arg(&target_dir);
    for n in names {
        cmd.args(["--package", n]);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building domains {} failed", names.join(", ")));
    }
    Ok(names.iter().map(|n| paths::domain_elf(n)).collect())
}

/// Builds one domain package (a domain or a fixture such as `sample`); returns its ELF.
pub fn build_domain_elf(name: &str) -> Result<PathBuf, String> {
    Ok(build_elves(&[name])?.remove(0))
}

/// True if crate-root source `text` carries `#![forbid(unsafe_code)]` (outside comments).
pub fn forbids_unsafe_code(text: &str) -> bool {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or("").replace(' ', ""))
        .any(|l| l == "#![forbid(unsafe_code)]")
}

/// The crate root says `#![forbid(unsafe_code)]`.
pub fn check_forbids_unsafe(name: &str) -> Result<(), String> {
    let root = domain_dir(name).join("src/main.rs");
    let text = std::fs::read_to_string(&root).map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    if forbids_unsafe_code(&text) {
        Ok(())
    } else {
        Err(format!("domain {name}: {} lacks #![forbid(unsafe_code)]; refusing to sign it", root.display()))
    }
}

/// Every crate `name` depends on, directly or not, is on the allow-list.
pub fn check_dependencies(name: &str) -> Result<(), String> {
    let out = cargo()
        .current_dir(domains_dir())
        .args(["metadata", "--format-version", "1", "--filter-platform", KERNEL_TARGET])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    allowed_dependencies_only(&meta, name)
}

/// Walks `cargo metadata` output from package `name` through every dependency.
pub fn allowed_dependencies_only(meta: &serde_json::Value, name: &str) -> Result<(), String> {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    // Edges that only exist for tests (dev-dependencies) never reach a domain's image;
    // normal and build dependencies do (build scripts run code at build time).
    let linked = |d: &&serde_json::Value| d["dep_kinds"].as_array().is_none_or(|k| k.iter().any(|k| k["kind"].as_str() != Some("dev")));
    let nodes: HashMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            Some((
                n["id"].as_str()?,
                n["deps"].as_array()?.iter().filter(linked).filter_map(|d| d["pkg"].as_str()).collect(),
            ))
        })
        .collect();
    let root = names
        .iter()
        .find(|(_, n)| **n == name)
        .map(|(id, _)| *id)
        .ok_or_else(|| format!("no domain package named {name}"))?;
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for dep in nodes.get(id).into_iter().flatten() {
            if seen.insert(*dep) {
                let dep_name = names.get(dep).copied().unwrap_or(dep);
                if !ALLOWED_DEPENDENCIES.contains(&dep_name) {
                    return Err(format!(
                        "domain {name} depends on {dep_name}, which is not on the allow-list ({}); refusing to sign it",
                        ALLOWED_DEPENDENCIES.join(", ")
                    ));
                }
                stack.push(dep);
            }
        }
    }
    Ok(())
}

fn toolchain() -> String {
    Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The manifest of `name`: its domain.toml (limits and quotas; `shared_heap_limit`,
/// `max_threads` and `max_events` default as in `loader::manifest`), with the recipe's
/// grants and restart policy.
pub fn manifest(name: &str, entry: Option<&RecipeEntry>, safe_checked: bool) -> Result<qvq_sign::loader::Manifest, String> {
    let path = domain_dir(name).join("domain.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut m: qvq_sign::ManifestToml = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(e) = entry {
        m.devices = e.devices.clone();
        if let Some(r) = &e.restart {
            m.restart = r.clone();
        }
    }
    if let Some(v) = entry.and_then(|e| e.version.as_ref()) {
        m.version = v.clone();
    }
    m.toolchain = toolchain();
    m.safe_rust_checked = safe_checked;
    m.into_manifest().map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks, builds and signs the recipe's domains with `key`; writes
/// target/qvq/domains/<name>.qvd and returns (entry name, envelope) in recipe order.
pub fn signed_initrd_entries(board: Board, key: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let entries = recipe(board)?;
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.dedup();
    names.sort_unstable();
    names.dedup();
    for n in &names {
        check_forbids_unsafe(n)?;
        check_dependencies(n)?;
    }
    let built = build_elves(&names)?;
    let elves = entries
        .iter()
        .map(|e| built[names.iter().position(|n| *n == e.name).expect("built above")].clone());
    let key = qvq_sign::read_signing_key(key)?;
    let out_dir = paths::signed_domains_dir();
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (entry, elf_path) in entries.iter().zip(elves) {
        let elf = std::fs::read(&elf_path).map_err(|e| format!("cannot read {}: {e}", elf_path.display()))?;
        let envelope = qvq_sign::sign(&manifest(&entry.name, Some(entry), true)?, &elf, &key).map_err(|e| format!("{}: {e}", entry.name))?;
        std::fs::write(out_dir.join(entry.file_name()), &envelope).map_err(|e| e.to_string())?;
        out.push((entry.file_name(), envelope));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_roots_must_forbid_unsafe_code() {
        assert!(forbids_unsafe_code("#![no_std]\n#![forbid(unsafe_code)]\nfn main() {}"));
        assert!(!forbids_unsafe_code("#![no_std]\n// #![forbid(unsafe_code)]\n"));
        assert!(!forbids_unsafe_code("#![deny(unsafe_code)]"));
        for d in ["console", "hello", "shell", "rogue"] {
            check_forbids_unsafe(d).unwrap();
        }
    }

    fn meta(deps: &[(&str, &[&str])]) -> serde_json::Value {
        let packages: Vec<_> = deps.iter().map(|(n, _)| serde_json::json!({"id": format!("{n} 0.1.0"), "name": n})).collect();
        let edge = |x: &&str| {
            let (name, kind) = x.split_once(':').map_or((*x, None), |(n, k)| (n, Some(k)));
            serde_json::json!({"pkg": format!("{name} 0.1.0"), "dep_kinds": [{"kind": kind}]})
        };
        let nodes: Vec<_> = deps
            .iter()
            .map(|(n, d)| serde_json::json!({"id": format!("{n} 0.1.0"), "deps": d.iter().map(edge).collect::<Vec<_>>()}))
            .collect();
        let packages: Vec<_> = packages
            .into_iter()
            .chain(
                deps.iter()
                    .flat_map(|(_, d)| d.iter())
                    .filter_map(|x| x.split_once(':'))
                    .map(|(n, _)| serde_json::json!({"id": format!("{n} 0.1.0"), "name": n})),
            )
            .collect();
        serde_json::json!({"packages": packages, "resolve": {"nodes": nodes}})
    }

    #[test]
    fn dependencies_outside_the_allow_list_are_named() {
        let ok = meta(&[
            ("dom", &["qvq-runtime"]),
            ("qvq-runtime", &["qvq-interfaces", "linked_list_allocator"]),
            ("qvq-interfaces", &[]),
            ("linked_list_allocator", &[]),
        ]);
        assert_eq!(allowed_dependencies_only(&ok, "dom"), Ok(()));
        let bad = meta(&[
            ("dom", &["qvq-runtime", "evil-helper"]),
            ("qvq-runtime", &[]),
            ("evil-helper", &["libc"]),
            ("libc", &[]),
        ]);
        let err = allowed_dependencies_only(&bad, "dom").unwrap_err();
        assert!(err.contains("depends on evil-helper, which is not on the allow-list"), "{err}");
        let deep = meta(&[("dom", &["qvq-runtime"]), ("qvq-runtime", &["sneaky"]), ("sneaky", &[])]);
        assert!(allowed_dependencies_only(&deep, "dom").unwrap_err().contains("sneaky"));
        // A dev-dependency is never linked into the domain; a build-dependency runs code.
        let dev = meta(&[("dom", &["qvq-runtime", "testkit:dev"]), ("qvq-runtime", &[])]);
        assert_eq!(allowed_dependencies_only(&dev, "dom"), Ok(()));
        let build = meta(&[("dom", &["qvq-runtime", "codegen:build"]), ("qvq-runtime", &[])]);
        assert!(allowed_dependencies_only(&build, "dom").unwrap_err().contains("codegen"));
    }

    #[test]
    fn manifests_carry_quotas_with_their_defaults() {
        use qvq_sign::loader::manifest::{DEFAULT_MAX_EVENTS, DEFAULT_MAX_THREADS, DEFAULT_SHARED_HEAP_LIMIT};
        for d in ["console", "hello", "shell"] {
            let m = manifest(d, None, true).unwrap();
            assert_eq!(
                (m.shared_heap_limit, m.max_threads, m.max_events),
                (DEFAULT_SHARED_HEAP_LIMIT, DEFAULT_MAX_THREADS, DEFAULT_MAX_EVENTS)
            );
        }
    }

    #[test]
    fn the_real_domains_pass_the_dependency_check() {
        for d in ["console", "hello", "shell"] {
            check_dependencies(d).unwrap();
        }
    }
}
