//! Building domains: check each (safe Rust enforced by the compiler, allow-listed
//! dependencies: `crate::safety`), compile it as a static PIE, sign it with the local development key (manifest from its
//! `domain.toml`, device grants and restart policy from the board recipe), and pack the
//! board's initrd in recipe order.

use crate::board::Board;
use crate::paths::{self, domain_dir, domains_dir};
use crate::setup::{cargo, KERNEL_TARGET};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Members of the domain workspace that are test fixtures, not domains: never checked as
/// domains nor signed as checked (`sample` names its own entry with `#[no_mangle]`).
pub const NOT_DOMAINS: &[&str] = &["sample"];

/// One `[[domain]]` of `initrd/<board>.toml`.
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RecipeEntry {
    pub name: String,
    #[serde(default)]
    pub devices: Vec<String>,
    pub restart: Option<String>,
    /// Signs this entry with this version instead of domain.toml's: a further version of a
    /// domain, packed as `<name>-<version>.qvd` and kept for hot swaps.
    pub version: Option<String>,
    /// Signs this version as a permitted downgrade: it may replace a newer running version.
    #[serde(default)]
    pub downgrade: bool,
    /// The signed rollback floor: once this version ran, nothing below this loads.
    pub min_version: Option<String>,
    /// Also import every interface the recipe's domains and the kernel export (the shell,
    /// whose `call` reaches any of them). Computed per board, so a domain on one board
    /// only is never imported on the other.
    #[serde(default)]
    pub import_all: bool,
    /// What `import_all` adds: filled in by [`recipe`].
    #[serde(skip)]
    pub also_imports: Vec<String>,
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

/// Interfaces the kernel itself exports.
pub const KERNEL_EXPORTS: &[&str] = &["Kernel"];

/// The board's recipe, with each `import_all` entry's added imports filled in.
pub fn recipe(board: Board) -> Result<Vec<RecipeEntry>, String> {
    let path = paths::recipe(board);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let r: Recipe = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut entries = r.domain;
    if entries.iter().any(|e| e.import_all) {
        let mut exported: Vec<String> = KERNEL_EXPORTS.iter().map(|s| s.to_string()).collect();
        for e in entries.iter().filter(|e| e.version.is_none()) {
            for i in domain_toml(&e.name)?.exports {
                let name = interface_name(&i).to_string();
                if !exported.contains(&name) {
                    exported.push(name);
                }
            }
        }
        for e in entries.iter_mut().filter(|e| e.import_all) {
            e.also_imports = exported.iter().filter(|i| !exports_of(&e.name).contains(*i)).cloned().collect();
        }
    }
    Ok(entries)
}

fn interface_name(i: &qvq_sign::InterfaceToml) -> &str {
    match i {
        qvq_sign::InterfaceToml::Name(n) => n,
        qvq_sign::InterfaceToml::Explicit { name, .. } => name,
    }
}

/// The interface names domain `name` exports (none if its domain.toml is unreadable).
fn exports_of(name: &str) -> Vec<String> {
    domain_toml(name)
        .map(|t| t.exports.iter().map(|i| interface_name(i).to_string()).collect())
        .unwrap_or_default()
}

/// `domains/<name>/domain.toml`, parsed; the error says how to make a missing one.
fn domain_toml(name: &str) -> Result<qvq_sign::ManifestToml, String> {
    let path = domain_dir(name).join("domain.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("there is no {} (`cargo xtask new-domain {name}` makes a domain)", path.display())
        } else {
            format!("cannot read {}: {e}", path.display())
        }
    })?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The system check of `cargo xtask build`: in `board`'s recipe, every import of every
/// domain (the booted ones and the kept versions) is exported by a booted domain or the
/// kernel, with the same hash, and no interface has two booted exporters.
pub fn check_recipe(board: Board) -> Result<(), String> {
    let recipe_path = format!("initrd/{}.toml", board.name());
    let entries = recipe(board)?;
    let mut manifests = Vec::new();
    for e in &entries {
        manifests.push((e, manifest(&e.name, Some(e), true)?));
    }
    check_served(&recipe_path, &manifests)
}

/// [`check_recipe`] over the recipe's entries and their manifests.
fn check_served(recipe_path: &str, manifests: &[(&RecipeEntry, qvq_sign::loader::Manifest)]) -> Result<(), String> {
    let mut exported: Vec<(String, [u8; 32], String)> = KERNEL_EXPORTS
        .iter()
        .filter_map(|n| Some((n.to_string(), qvq_sign::idl_hash(n)?, "the kernel".to_string())))
        .collect();
    for (e, m) in manifests.iter().filter(|(e, _)| e.version.is_none()) {
        for x in &m.exports {
            if let Some((_, _, by)) = exported.iter().find(|(n, _, _)| *n == x.name) {
                return Err(format!(
                    "{recipe_path}: {} and {by} both export {}; an interface has one exporter (remove one of them from the recipe)",
                    e.name, x.name
                ));
            }
            exported.push((x.name.clone(), x.hash, e.name.clone()));
        }
    }
    for (e, m) in manifests {
        let what = match &e.version {
            Some(v) => format!("{} {v} (kept for swaps)", e.name),
            None => e.name.clone(),
        };
        for i in &m.imports {
            match exported.iter().find(|(n, _, _)| *n == i.name) {
                Some((_, hash, _)) if *hash == i.hash => {}
                Some((_, _, by)) => {
                    return Err(format!(
                        "{recipe_path}: {what} imports {} with a hash other than the one {by} exports (rebuild both from the same domains/trusted/interfaces)",
                        i.name
                    ))
                }
                None => {
                    let elsewhere: Vec<String> = workspace_domains().into_iter().filter(|d| exports_of(d).contains(&i.name)).collect();
                    let fix = match elsewhere.first() {
                        Some(d) => format!("add [[domain]] name = \"{d}\" to {recipe_path}"),
                        None => "no domain in domains/ exports it".to_string(),
                    };
                    return Err(format!(
                        "{recipe_path}: {what} imports {}, which no domain of this recipe exports: {fix}, or remove {} from domains/{}/domain.toml's imports",
                        i.name, i.name, e.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The domain crates of the domain workspace (folders with a domain.toml).
fn workspace_domains() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(domains_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| d.path().join("domain.toml").is_file())
        .filter_map(|d| d.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Checks the given domains (the rules of `crate::safety`) and builds them with the
/// compiler enforcing them; returns each ELF's path. The only way xtask builds a domain.
pub fn build_elves(names: &[&str]) -> Result<Vec<PathBuf>, String> {
    crate::safety::check_and_build(&crate::safety::Workspace::domains(), names)
}

/// Checks and builds one domain; returns its ELF.
pub fn build_domain_elf(name: &str) -> Result<PathBuf, String> {
    Ok(build_elves(&[name])?.remove(0))
}

/// Builds a test fixture of the domain workspace that is not a domain (`NOT_DOMAINS`),
/// without the domain checks; returns its ELF. Never signed as checked.
pub fn build_fixture_elf(name: &str) -> Result<PathBuf, String> {
    if !NOT_DOMAINS.contains(&name) {
        return Err(format!("{name} is a domain: build it with the checks (build_domain_elf)"));
    }
    // Not signed as checked, but it reads the same cargo config: refuse a hostile one first.
    crate::safety::config::check(&domains_dir(), &paths::workspace_root())?;
    let status = cargo()
        .current_dir(domains_dir())
        .args(["build", "--release", "--locked", "--target", KERNEL_TARGET, "--package", name, "--target-dir"])
        .arg(paths::domains_target_dir())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building fixture {name} failed"));
    }
    Ok(paths::domain_elf(name))
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
    let mut m = domain_toml(name)?;
    if let Some(e) = entry {
        warn_overrides(name, &m, e);
        m.devices = e.devices.clone();
        if let Some(r) = &e.restart {
            m.restart = r.clone();
        }
        for i in &e.also_imports {
            if !m.imports.iter().any(|x| interface_name(x) == i) {
                m.imports.push(qvq_sign::InterfaceToml::Name(i.clone()));
            }
        }
    }
    if let Some(v) = entry.and_then(|e| e.version.as_ref()) {
        m.version = v.clone();
    }
    if let Some(e) = entry {
        m.downgrade = e.downgrade;
        if e.min_version.is_some() {
            m.min_version = e.min_version.clone();
        }
    }
    m.toolchain = toolchain();
    m.safe_rust_checked = safe_checked;
    m.into_manifest().map_err(|e| format!("{}: {e}", path.display()))
}

/// Says once per domain and key when the board recipe replaces a value domain.toml sets
/// (the recipe decides device grants and restart policy).
fn warn_overrides(name: &str, toml: &qvq_sign::ManifestToml, e: &RecipeEntry) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    let raw: toml::Table = std::fs::read_to_string(domain_dir(name).join("domain.toml"))
        .ok()
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default();
    let mut warn = |key: &str, theirs: String, ours: String| {
        let tag = format!("{name}.{key}");
        if !said.contains(&tag) {
            eprintln!("xtask: warning: the board recipe sets {key} = {ours} for {name}; domains/{name}/domain.toml's {key} = {theirs} is not used");
            said.push(tag);
        }
    };
    if let (Some(r), true) = (&e.restart, raw.contains_key("restart")) {
        if *r != toml.restart {
            warn("restart", format!("{:?}", toml.restart), format!("{r:?}"));
        }
    }
    if raw.contains_key("devices") && toml.devices != e.devices {
        warn("devices", format!("{:?}", toml.devices), format!("{:?}", e.devices));
    }
}

/// Checks, builds and signs the recipe's domains with `key`; writes
/// target/qvq/domains/<name>.qvd and returns (entry name, envelope) in recipe order.
pub fn signed_initrd_entries(board: Board, key: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    check_recipe(board)?;
    let entries = recipe(board)?;
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.dedup();
    names.sort_unstable();
    names.dedup();
    // Checked (crate::safety) and built; `safe_rust_checked` below is true because the
    // checks passed: build_elves returns nothing otherwise.
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
    fn a_recipe_whose_import_no_domain_exports_fails_with_the_fix_named() {
        let entry = |name: &str| RecipeEntry {
            name: name.into(),
            ..Default::default()
        };
        let (console, hello, relay) = (entry("console"), entry("hello"), entry("relay"));
        fn with<'a>(es: &[&'a RecipeEntry]) -> Vec<(&'a RecipeEntry, qvq_sign::loader::Manifest)> {
            es.iter().map(|e| (*e, manifest(&e.name, Some(e), true).unwrap())).collect()
        }
        assert_eq!(check_served("initrd/x.toml", &with(&[&console, &hello, &relay])), Ok(()));
        let err = check_served("initrd/x.toml", &with(&[&console, &relay])).unwrap_err();
        assert_eq!(
            err,
            "initrd/x.toml: relay imports Hello, which no domain of this recipe exports: add [[domain]] name = \"hello\" to initrd/x.toml, or remove Hello from domains/relay/domain.toml's imports"
        );
        let twice = check_served("initrd/x.toml", &with(&[&hello, &hello])).unwrap_err();
        assert!(twice.contains("hello and hello both export Hello"), "{twice}");
    }

    #[test]
    fn import_all_adds_what_the_board_exports_and_nothing_else() {
        for board in [Board::Virt, Board::Rpi3] {
            let r = recipe(board).unwrap();
            let shell = r.iter().find(|e| e.name == "shell").unwrap();
            assert!(shell.import_all);
            let m = manifest("shell", Some(shell), true).unwrap();
            let mut names: Vec<&str> = m.imports.iter().map(|i| i.name.as_str()).collect();
            names.sort();
            let expected: &[&str] = match board {
                Board::Virt => &["Block", "BlockBench", "Console", "Files", "Hello", "Kernel", "Relay"],
                Board::Rpi3 => &["Block", "BlockBench", "Console", "Entropy", "Files", "Gpio", "Hello", "Kernel", "Relay"],
            };
            assert_eq!(names, expected);
            check_recipe(board).unwrap();
        }
    }

    #[test]
    fn manifests_carry_quotas_with_their_defaults() {
        use qvq_sign::loader::manifest::{DEFAULT_MAX_EVENTS, DEFAULT_MAX_THREADS, DEFAULT_SHARED_HEAP_LIMIT};
        for d in ["console", "hello", "relay"] {
            let m = manifest(d, None, true).unwrap();
            assert_eq!(
                (m.shared_heap_limit, m.max_threads, m.max_events),
                (DEFAULT_SHARED_HEAP_LIMIT, DEFAULT_MAX_THREADS, DEFAULT_MAX_EVENTS)
            );
        }
    }
}
