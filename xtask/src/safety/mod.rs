//! The build checks that stand behind a domain's `safe_rust_checked` bit. Before cargo runs
//! at all, the repository's cargo config files it would read may only set the domains' link
//! flags ([`config`]). Before anything is compiled, every package a domain reaches (`cargo metadata`, normal and build
//! dependencies) is identified by id and source against the allow-list
//! (`domains/allowed-crates.toml`, [`allowlist`]; [`graph`]), and its compiled targets are
//! checked (one binary inside its folder, no build scripts or proc-macros unless allowed;
//! [`targets`]). Then the domains are compiled with `-F unsafe_code` for every crate the
//! allow-list does not trust with `unsafe` ([`wrapper`]): the compiler, not a text search,
//! says there is no `unsafe`; and rustc's dep-info says a checked crate read no file outside
//! its own folder and no environment variable but cargo's own ([`wrapper`]). Errors name the domain, the crate (name, version, source),
//! the rule and what to do.

pub mod allowlist;
pub mod config;
pub mod graph;
pub mod targets;
pub mod wrapper;

use crate::setup::{cargo, KERNEL_TARGET};
use allowlist::{AllowList, Safety};
use graph::{Metadata, Package};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use wrapper::Trusted;

/// A domain workspace and where its checked builds go.
pub struct Workspace {
    /// The workspace folder (`domains/`): its Cargo.toml, Cargo.lock and `.cargo/config.toml`.
    pub dir: PathBuf,
    /// The allow-list file.
    pub allow_list: PathBuf,
    pub target_dir: PathBuf,
}

impl Workspace {
    /// The project's domain workspace, `domains/`.
    pub fn domains() -> Workspace {
        Workspace {
            dir: crate::paths::domains_dir(),
            allow_list: crate::paths::domains_dir().join("allowed-crates.toml"),
            target_dir: crate::paths::domains_target_dir(),
        }
    }
}

impl Workspace {
    /// `domains()` with any of its parts replaced (relative paths are from the current
    /// folder; the allow-list defaults to the workspace's `allowed-crates.toml`).
    pub fn from_options(dir: Option<PathBuf>, allow_list: Option<PathBuf>, target_dir: Option<PathBuf>) -> Workspace {
        let default = Workspace::domains();
        let dir = dir.map_or(default.dir, |d| absolute(&d));
        Workspace {
            allow_list: allow_list.map_or_else(|| dir.join("allowed-crates.toml"), |a| absolute(&a)),
            target_dir: target_dir.map_or(default.target_dir, |t| absolute(&t)),
            dir,
        }
    }
}

/// What the checks found out: the metadata and the allow-list, for the build.
pub struct Checked {
    meta: Metadata,
    allow: AllowList,
    /// Each domain's package id and the ids of everything it reaches.
    graphs: Vec<(String, String, Vec<String>)>,
}

/// Refuses a cargo config (or toolchain) file of the repository that could change how
/// cargo runs rustc for `ws` ([`config`]); every cargo command on a domain workspace comes
/// after this.
fn check_config(ws: &Workspace) -> Result<(), String> {
    config::check(&ws.dir, &crate::paths::workspace_root())
}

fn metadata(ws: &Workspace) -> Result<Metadata, String> {
    check_config(ws)?;
    let out = cargo()
        .current_dir(&ws.dir)
        .args(["metadata", "--format-version", "1", "--locked", "--filter-platform", KERNEL_TARGET])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata in {} failed: {}",
            ws.dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))
}

/// The workspace's members that the allow-list does not trust (the domains), minus `skip`.
pub fn members(ws: &Workspace, skip: &[&str]) -> Result<Vec<String>, String> {
    let meta = metadata(ws)?;
    let allow = AllowList::load(&ws.allow_list)?;
    Ok(meta
        .packages
        .iter()
        .filter(|p| meta.workspace_members.contains(&p.id) && allow.trusted_at(&p.dir()).is_none() && !skip.contains(&p.name.as_str()))
        .map(|p| p.name.clone())
        .collect())
}

/// Checks the dependency graphs and targets of domains `names`; every violation of every
/// domain is reported, one a line.
pub fn check(ws: &Workspace, names: &[&str]) -> Result<Checked, String> {
    let allow = AllowList::load(&ws.allow_list)?;
    let meta = metadata(ws)?;
    let lock = graph::read_lock(&ws.dir.join("Cargo.lock"))?;
    let registry_src = graph::registry_src()?;
    let mut violations = Vec::new();
    let mut graphs = Vec::new();
    for name in names {
        let (g, mut v) = graph::check_graph(&meta, &lock, &registry_src, &allow, name)?;
        violations.append(&mut v);
        violations.extend(targets::check_targets(&g, name, &allow.path));
        graphs.push((name.to_string(), g.domain.id.clone(), g.deps.iter().map(|(p, _)| p.id.clone()).collect()));
    }
    if !violations.is_empty() {
        return Err(format!(
            "{}\nrefusing to build or sign (domains/README.md, \"Build checks\")",
            violations.join("\n")
        ));
    }
    Ok(Checked { meta, allow, graphs })
}

/// Every package of the workspace the allow-list trusts with `unsafe`, as the wrapper sees it.
fn trusted_set(meta: &Metadata, allow: &AllowList) -> Vec<Trusted> {
    let mut out: Vec<Trusted> = meta
        .packages
        .iter()
        .filter(|p| match &p.source {
            None => allow.trusted_at(&p.dir()).is_some_and(|t| t.name == p.name),
            Some(s) => allow
                .crates_named(&p.name)
                .iter()
                .any(|c| c.version == p.version && &c.source == s && c.safety == Safety::VettedTrusted),
        })
        .map(|p| Trusted {
            name: p.name.clone(),
            version: p.version.clone(),
            dir: p.dir(),
        })
        .collect();
    out.sort();
    out
}

impl Checked {
    fn package(&self, id: &str) -> Option<&Package> {
        self.meta.packages.iter().find(|p| p.id == id)
    }

    /// The specific error for the unsafe code the compiler found in package `id` at `ats`.
    fn unsafe_error(&self, id: &str, ats: &[String]) -> String {
        const SHOWN: usize = 3;
        let mut at = ats.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
        if ats.len() > SHOWN {
            at += &format!(" and {} more places", ats.len() - SHOWN);
        }
        let Some(p) = self.package(id) else {
            return format!("package {id}: unsafe code at {at}");
        };
        let domains: Vec<&str> = self
            .graphs
            .iter()
            .filter(|(_, d, deps)| d == id || deps.iter().any(|x| x == id))
            .map(|(n, _, _)| n.as_str())
            .collect();
        let (rule, fix) = if p.source.is_some() {
            (
                format!("{} marks it `no-unsafe`, so it is compiled with -F unsafe_code", self.allow.path.display()),
                "read it and mark it `vetted-trusted` with a reason (it joins the trusted base), or drop it".to_string(),
            )
        } else {
            (
                "domain crates are compiled with -F unsafe_code".to_string(),
                "move the unsafe code into the trusted runtime (domains/trusted/runtime) behind a safe API".to_string(),
            )
        };
        format!(
            "domain {}: crate {}: unsafe code at {at} (rule: {rule}); {fix}",
            domains.join(", "),
            p.describe()
        )
    }

    /// Compiles the checked domains; returns each one's ELF, in order.
    pub fn build(&self, ws: &Workspace) -> Result<Vec<PathBuf>, String> {
        check_config(ws)?;
        let trusted = trusted_set(&self.meta, &self.allow);
        let flags = wrapper::rustflags(&trusted);
        let exe = stable_wrapper(&ws.target_dir)?;
        let format = if std::io::stderr().is_terminal() {
            "json-diagnostic-rendered-ansi"
        } else {
            "json"
        };
        let mut cmd = cargo();
        cmd.current_dir(&ws.dir)
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                KERNEL_TARGET,
                "--message-format",
                format,
                "--target-dir",
            ])
            .arg(&ws.target_dir)
            .arg("--config")
            .arg(format!("target.{KERNEL_TARGET}.rustflags = {:?}", flags))
            .env("RUSTC_WRAPPER", &exe)
            .env(wrapper::ENV, serde_json::to_string(&trusted).map_err(|e| e.to_string())?)
            .stdout(Stdio::piped());
        // Anything that would replace the target rustflags or put another wrapper in between.
        let target_var = format!("CARGO_TARGET_{}_RUSTFLAGS", KERNEL_TARGET.to_uppercase().replace('-', "_"));
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_RUSTC_WRAPPER",
            &target_var,
        ] {
            cmd.env_remove(var);
        }
        for (name, _, _) in &self.graphs {
            cmd.args(["--package", name]);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot run cargo: {e}"))?;
        let mut elves = BTreeMap::new();
        let mut refusals: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in BufReader::new(child.stdout.take().ok_or("cargo gave no output")?).lines() {
            let line = line.map_err(|e| format!("reading cargo's output: {e}"))?;
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                println!("{line}");
                continue;
            };
            let id = msg["package_id"].as_str().unwrap_or_default();
            match msg["reason"].as_str() {
                Some("compiler-message") => {
                    let m = &msg["message"];
                    eprint!("{}", m["rendered"].as_str().unwrap_or_default());
                    if m["level"] == "error" && m["code"]["code"] == "unsafe_code" {
                        let span = m["spans"].as_array().and_then(|s| s.first());
                        let at = span.map_or("?".into(), |s| format!("{}:{}", s["file_name"].as_str().unwrap_or("?"), s["line_start"]));
                        refusals.entry(id.to_string()).or_default().push(at);
                    }
                }
                Some("compiler-artifact") if msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")) => {
                    if let Some(exe) = msg["executable"].as_str() {
                        elves.insert(id.to_string(), PathBuf::from(exe));
                    }
                }
                _ => {}
            }
        }
        let status = child.wait().map_err(|e| format!("cargo: {e}"))?;
        let names: Vec<&str> = self.graphs.iter().map(|(n, _, _)| n.as_str()).collect();
        if !refusals.is_empty() {
            let lines: Vec<String> = refusals.iter().map(|(id, ats)| self.unsafe_error(id, ats)).collect();
            return Err(format!("{}\nrefusing to build or sign", lines.join("\n")));
        }
        if !status.success() {
            return Err(format!("building domains {} failed (the compiler's messages are above)", names.join(", ")));
        }
        self.graphs
            .iter()
            .map(|(name, id, _)| elves.get(id).cloned().ok_or_else(|| format!("cargo built no binary for domain {name}")))
            .collect()
    }
}

/// Checks and builds domains `names` of `ws`; returns their ELFs in order.
pub fn check_and_build(ws: &Workspace, names: &[&str]) -> Result<Vec<PathBuf>, String> {
    check(ws, names)?.build(ws)
}

/// The `check-domains` command: checks and builds `names` (default: every domain of the
/// workspace), prints each ELF.
pub fn check_domains(ws: &Workspace, names: &[String], skip: &[&str]) -> Result<(), String> {
    let names = if names.is_empty() { members(ws, skip)? } else { names.to_vec() };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for (name, elf) in names.iter().zip(check_and_build(ws, &names)?) {
        println!("checked {name}: {}", elf.display());
    }
    Ok(())
}

/// `dir` relative to the current folder if it is given relative.
fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// This xtask binary, copied to `target_dir/qvq-rustc-wrapper` for cargo to run as the rustc
/// wrapper. Not the binary's own path: `cargo test -p xtask` (which `cargo xtask test`
/// runs) relinks `target/debug/xtask` while this process still runs from it, and the old
/// path then names a deleted file. `/proc/self/exe` still reads the running image.
fn stable_wrapper(target_dir: &Path) -> Result<PathBuf, String> {
    let me = Path::new("/proc/self/exe");
    let bytes = match std::fs::read(me) {
        Ok(b) => b,
        Err(_) => {
            let exe = std::env::current_exe().map_err(|e| format!("cannot find the xtask binary to use as rustc wrapper: {e}"))?;
            std::fs::read(&exe).map_err(|e| format!("cannot read the xtask binary {}: {e}", exe.display()))?
        }
    };
    let dest = target_dir.join("qvq-rustc-wrapper");
    if std::fs::read(&dest).ok().as_deref() == Some(bytes.as_slice()) {
        return Ok(dest);
    }
    std::fs::create_dir_all(target_dir).map_err(|e| format!("cannot create {}: {e}", target_dir.display()))?;
    let tmp = target_dir.join(format!("qvq-rustc-wrapper.{}", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(|e| format!("cannot make {} executable: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), dest.display()))?;
    Ok(dest)
}
