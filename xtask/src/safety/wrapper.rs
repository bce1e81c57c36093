//! The rustc wrapper that makes the compiler enforce "no `unsafe`".
//!
//! The domain build sets `--forbid=unsafe_code` for *every* crate compiled for the kernel's
//! target (cargo's `target.<triple>.rustflags`) and runs rustc through this wrapper (the
//! xtask binary itself, `RUSTC_WRAPPER`). The wrapper takes the flag away only from the
//! crates the allow-list trusts with `unsafe` (the runtime and interfaces at their paths,
//! `vetted-trusted` third-party crates at the folder cargo resolved them to), and from every
//! other crate it removes `--cap-lints` (cargo caps lints of registry crates to `allow`,
//! which would silence `-F`). So the default is "forbidden", and a build without this
//! wrapper fails at the runtime's first `unsafe` block.
//!
//! cargo never passes rustc an `@argfile`; the wrapper refuses one for a target crate, since
//! rustc would expand flags from it that the wrapper never sees (`--cap-lints`).
//!
//! What a checked crate (a domain, a `no-unsafe` third-party crate) is compiled from is
//! checked too: after rustc has compiled one, the wrapper reads the dep-info rustc wrote
//! (`<out-dir>/<crate-name><extra-filename>.d`, every file the compiler read and every
//! environment variable `env!`/`option_env!` asked for) and refuses the crate, deleting its
//! outputs, if it read a file outside its own folder (`include_bytes!("../../keys/...")`
//! would put a build-host secret into the signed ELF) or a variable other than cargo's
//! `CARGO_PKG_*`, `CARGO_MANIFEST_*` and `CARGO_CRATE_NAME`.
//!
//! The flags are part of cargo's fingerprint, with a marker `--cfg` naming a hash of the
//! trusted set and of what the wrapper checks: changing the policy rebuilds the domains, and a crate compiled some other
//! way is never reused as if it had been checked.

use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The environment variable that carries the trusted set to the wrapper (and turns the
/// xtask binary into the wrapper).
pub const ENV: &str = "QVQ_SAFETY_WRAPPER_MAY_USE_UNSAFE";
/// The flag every target crate gets.
pub const FORBID: &str = "--forbid=unsafe_code";
const MARKER: &str = "--cfg=qvq_safety_policy_";

/// A crate that may use `unsafe`, as cargo describes it to rustc.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Trusted {
    pub name: String,
    pub version: String,
    pub dir: PathBuf,
}

/// FNV-1a: a hash that is the same in every build of xtask.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// What the wrapper checks, in the marker too: changing it (a new check) rebuilds every
/// crate an older wrapper compiled, so none is reused unchecked.
const CHECKS: &str = "forbid unsafe_code; no argfile; dep-info in the crate's folder, cargo's variables only";

/// The target rustflags of a checked build that trusts `trusted` (sorted).
pub fn rustflags(trusted: &[Trusted]) -> [String; 2] {
    let json = serde_json::to_string(trusted).unwrap_or_default();
    [FORBID.to_string(), format!("{MARKER}{:016x}", fnv1a(format!("{CHECKS}\n{json}").as_bytes()))]
}

/// The crate cargo asks rustc to compile (from the variables cargo sets for rustc).
#[derive(Debug, PartialEq)]
pub struct Compiling {
    pub name: String,
    pub version: String,
    pub dir: PathBuf,
}

impl Compiling {
    fn from_env() -> Option<Compiling> {
        let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
        Some(Compiling {
            name: std::env::var("CARGO_PKG_NAME").ok()?,
            version: std::env::var("CARGO_PKG_VERSION").ok()?,
            dir: dir.canonicalize().unwrap_or(dir),
        })
    }
}

fn is(a: &OsString, s: &str) -> bool {
    a.to_str() == Some(s)
}

fn may_use_unsafe(krate: Option<&Compiling>, trusted: &[Trusted]) -> bool {
    krate.is_some_and(|k| trusted.iter().any(|t| t.name == k.name && t.version == k.version && t.dir == k.dir))
}

/// Whether rustc is asked to compile `krate` under the checks: with [`FORBID`], not trusted,
/// and not merely asked about the target (`--print`, which cargo also asks with the
/// target's rustflags).
pub fn is_checked(args: &[OsString], krate: Option<&Compiling>, trusted: &[Trusted]) -> bool {
    let asks = args
        .iter()
        .any(|a| a.to_str().is_some_and(|a| a.starts_with("--print") || a == "-vV" || a == "-V"));
    krate.is_some() && !asks && args.iter().any(|a| is(a, FORBID)) && !may_use_unsafe(krate, trusted)
}

/// rustc's arguments for `krate` (None: cargo asking rustc about itself) under `trusted`.
pub fn rewrite(args: &[OsString], krate: Option<&Compiling>, trusted: &[Trusted]) -> Result<Vec<OsString>, String> {
    let may_use_unsafe = may_use_unsafe(krate, trusted);
    let forbidden = args.iter().any(|a| is(a, FORBID));
    let for_target = args.iter().any(|a| is(a, "--target") || a.to_str().is_some_and(|a| a.starts_with("--target=")));
    if let Some(k) = krate {
        if let Some(file) = args.iter().find(|a| a.as_encoded_bytes().starts_with(b"@")).filter(|_| for_target) {
            return Err(format!(
                "crate {} {} ({}) is being compiled for the target with the argument file {}: rustc would read flags from it that the checks never see (a config file's rustflags?); refusing to compile it",
                k.name,
                k.version,
                k.dir.display(),
                file.to_string_lossy()
            ));
        }
        if for_target && !forbidden && !may_use_unsafe {
            return Err(format!(
                "crate {} {} ({}) is being compiled for the target without {FORBID}: the domain build's rustflags were overridden (RUSTFLAGS or a config file?); refusing to compile it",
                k.name,
                k.version,
                k.dir.display()
            ));
        }
    }
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a.to_str().is_some_and(|a| a.starts_with(MARKER)) || (may_use_unsafe && is(a, FORBID)) {
            continue;
        }
        if forbidden && !may_use_unsafe {
            if is(a, "--cap-lints") {
                it.next();
                continue;
            }
            if a.to_str().is_some_and(|a| a.starts_with("--cap-lints=")) {
                continue;
            }
        }
        out.push(a.clone());
    }
    Ok(out)
}

/// The value of rustc option `name` in `args` (`name value` or `name=value`), the last one.
fn option<'a>(args: &'a [OsString], name: &str) -> Option<&'a str> {
    let mut found = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(a) = a.to_str() else { continue };
        if a == name {
            found = it.next().and_then(|v| v.to_str());
        } else if let Some(v) = a.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
            found = Some(v);
        }
    }
    found
}

/// The `-C name=value` codegen option `name` in `args`.
fn codegen_option<'a>(args: &'a [OsString], name: &str) -> Option<&'a str> {
    let mut found = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(a) = a.to_str() else { continue };
        let value = if a == "-C" || a == "--codegen" {
            it.next().and_then(|v| v.to_str())
        } else {
            a.strip_prefix("-C").or_else(|| a.strip_prefix("--codegen="))
        };
        if let Some(v) = value.and_then(|v| v.strip_prefix(name)).and_then(|v| v.strip_prefix('=')) {
            found = Some(v);
        }
    }
    found
}

/// The dep-info file rustc writes for this compilation (cargo always asks for one).
pub fn dep_info_path(args: &[OsString]) -> Result<PathBuf, String> {
    let emits_dep_info = option(args, "--emit").is_some_and(|e| e.split(',').any(|k| k == "dep-info"));
    let out_dir = option(args, "--out-dir");
    let name = option(args, "--crate-name");
    match (emits_dep_info, out_dir, name) {
        (true, Some(dir), Some(name)) => {
            let extra = codegen_option(args, "extra-filename").unwrap_or("");
            Ok(Path::new(dir).join(format!("{name}{extra}.d")))
        }
        _ => Err("rustc is not asked for dep-info in an --out-dir (cargo always asks for it): what the crate reads cannot be checked".into()),
    }
}

/// The environment variables a checked crate may read at build time: cargo's description of
/// the package (its Cargo.toml), nothing of the build host's.
pub fn env_allowed(var: &str) -> bool {
    var.starts_with("CARGO_PKG_") || var.starts_with("CARGO_MANIFEST_") || var == "CARGO_CRATE_NAME"
}

/// The paths of a dep-info file's first rule (every file rustc read; the other rules list
/// the same), unescaped.
fn dep_info_files(text: &str) -> Option<Vec<String>> {
    let (_, deps) = text.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#'))?.split_once(": ")?;
    let mut files = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            // rustc escapes only the spaces of a path.
            '\\' if chars.clone().next() == Some(' ') => {
                chars.next();
                cur.push(' ');
            }
            ' ' => {
                if !cur.is_empty() {
                    files.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        files.push(cur);
    }
    Some(files)
}

/// Why `krate`'s compilation, as its dep-info `text` records it (relative paths are from
/// `cwd`, where rustc ran), read something it may not: each file outside the crate's
/// folder, each environment variable but cargo's own.
pub fn check_dep_info(text: &str, cwd: &Path, krate: &Compiling) -> Vec<String> {
    let what = format!("crate {} {} ({})", krate.name, krate.version, krate.dir.display());
    let mut out = Vec::new();
    let Some(files) = dep_info_files(text) else {
        return vec![format!("{what}: rustc's dep-info names no source file; refusing what cannot be checked")];
    };
    for file in files {
        let path = cwd.join(&file);
        match path.canonicalize() {
            Ok(p) if p.starts_with(&krate.dir) => {}
            Ok(p) => out.push(format!(
                "{what} reads {} at build time, outside its folder (rule: a checked crate is compiled only from files in its own folder; include_bytes!, include_str!, include! or #[path] would put any file of the build host, a signing key too, into the signed domain); move the file into the crate",
                p.display()
            )),
            Err(e) => out.push(format!("{what} reads {}, which cannot be resolved ({e}); refusing what cannot be checked", path.display())),
        }
    }
    for var in text.lines().filter_map(|l| l.strip_prefix("# env-dep:")) {
        let name = var.split_once('=').map_or(var, |(n, _)| n);
        if !env_allowed(name) {
            out.push(format!(
                "{what} reads environment variable {name} at build time (rule: env! and option_env! may read only cargo's CARGO_PKG_*, CARGO_MANIFEST_* and CARGO_CRATE_NAME; the build host's environment must not reach the signed domain); use a constant"
            ));
        }
    }
    out
}

/// Deletes what rustc wrote for the crate whose dep-info is `dep_info`, so a refused
/// crate's outputs are never taken for checked ones.
fn remove_outputs(dep_info: &Path) {
    let (Some(dir), Some(stem)) = (dep_info.parent(), dep_info.file_stem().and_then(|s| s.to_str())) else {
        return;
    };
    let lib = format!("lib{stem}");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = [stem, lib.as_str()]
            .iter()
            .any(|s| name == *s || name.strip_prefix(s).is_some_and(|rest| rest.starts_with('.')));
        if ours {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// After rustc compiled checked crate `krate` with `args`: its dep-info's violations.
fn after_compile(args: &[OsString], krate: &Compiling) -> Result<(), String> {
    let dep_info = dep_info_path(args).map_err(|e| format!("crate {} {}: {e}", krate.name, krate.version))?;
    let cwd = std::env::current_dir().map_err(|e| format!("xtask rustc wrapper: current folder: {e}"))?;
    let text = std::fs::read_to_string(&dep_info).map_err(|e| format!("cannot read rustc's dep-info {}: {e}", dep_info.display()))?;
    let violations = check_dep_info(&text, &cwd, krate);
    if violations.is_empty() {
        return Ok(());
    }
    remove_outputs(&dep_info);
    Err(format!("{}\nrefusing crate {} (its outputs are deleted)", violations.join("\n"), krate.name))
}

/// If this process was started as the rustc wrapper, runs rustc and returns its exit code.
pub fn run_if_wrapper() -> Option<ExitCode> {
    let trusted = std::env::var(ENV).ok()?;
    let mut args = std::env::args_os().skip(1);
    let Some(rustc) = args.next() else {
        eprintln!("xtask: {ENV} is set, so this is the rustc wrapper, but no rustc was named");
        return Some(ExitCode::FAILURE);
    };
    let trusted: Vec<Trusted> = match serde_json::from_str(&trusted) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask rustc wrapper: {ENV}: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    let args: Vec<OsString> = args.collect();
    let krate = Compiling::from_env();
    let checked = is_checked(&args, krate.as_ref(), &trusted);
    let args = match rewrite(&args, krate.as_ref(), &trusted) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    let status = match Command::new(Path::new(&rustc)).args(&args).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xtask rustc wrapper: cannot run {}: {e}", Path::new(&rustc).display());
            return Some(ExitCode::FAILURE);
        }
    };
    if !status.success() {
        return Some(ExitCode::from(status.code().map_or(101, |c| u8::try_from(c).unwrap_or(101))));
    }
    if let (true, Some(k)) = (checked, &krate) {
        if let Err(e) = after_compile(&args, k) {
            eprintln!("error: {e}");
            return Some(ExitCode::FAILURE);
        }
    }
    Some(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    fn krate(name: &str) -> Compiling {
        Compiling {
            name: name.into(),
            version: "0.1.0".into(),
            dir: PathBuf::from(format!("/d/{name}")),
        }
    }

    #[test]
    fn the_forbid_flag_stays_unless_the_crate_is_trusted_by_name_version_and_folder() {
        let trusted = [Trusted {
            name: "rt".into(),
            version: "0.1.0".into(),
            dir: "/d/rt".into(),
        }];
        let [forbid, marker] = rustflags(&trusted);
        let cmd = args(&format!("--crate-name x src/main.rs --cap-lints allow --target t {forbid} {marker}"));
        let got = rewrite(&cmd, Some(&krate("dom")), &trusted).unwrap();
        assert_eq!(got, args("--crate-name x src/main.rs --target t --forbid=unsafe_code"));
        let got = rewrite(&cmd, Some(&krate("rt")), &trusted).unwrap();
        assert_eq!(got, args("--crate-name x src/main.rs --cap-lints allow --target t"));
        // The same name elsewhere, or another version, is not the trusted crate.
        let mut moved = krate("rt");
        moved.dir = "/d/fake/rt".into();
        assert!(rewrite(&cmd, Some(&moved), &trusted).unwrap().contains(&OsString::from(FORBID)));
        let mut newer = krate("rt");
        newer.version = "0.2.0".into();
        assert!(rewrite(&cmd, Some(&newer), &trusted).unwrap().contains(&OsString::from(FORBID)));
    }

    #[test]
    fn a_target_crate_without_the_flag_is_refused() {
        let e = rewrite(&args("--crate-name x --target t"), Some(&krate("dom")), &[]).unwrap_err();
        assert!(
            e.contains("crate dom 0.1.0 (/d/dom) is being compiled for the target without --forbid=unsafe_code"),
            "{e}"
        );
        // Host crates (allow-listed build scripts) and cargo's questions to rustc pass through.
        assert_eq!(rewrite(&args("--crate-name build_script_build"), Some(&krate("dom")), &[]).unwrap().len(), 2);
        assert_eq!(rewrite(&args("-vV"), None, &[]).unwrap(), args("-vV"));
    }

    #[test]
    fn an_argument_file_is_refused_for_a_target_crate() {
        let [forbid, _] = rustflags(&[]);
        let e = rewrite(&args(&format!("--crate-name x --target t {forbid} @capfile")), Some(&krate("dom")), &[]).unwrap_err();
        assert!(
            e.contains("crate dom 0.1.0 (/d/dom) is being compiled for the target with the argument file @capfile"),
            "{e}"
        );
        // A trusted crate too: the file's flags would reach it unseen.
        let trusted = [Trusted {
            name: "rt".into(),
            version: "0.1.0".into(),
            dir: "/d/rt".into(),
        }];
        assert!(rewrite(&args("--crate-name rt --target t @f"), Some(&krate("rt")), &trusted).is_err());
        assert!(rewrite(&args(&format!("--crate-name rt --target t {forbid}")), Some(&krate("rt")), &trusted).is_ok());
    }

    #[test]
    fn only_a_compilation_of_an_untrusted_crate_is_checked() {
        let [forbid, _] = rustflags(&[]);
        let compile = args(&format!("--crate-name dom src/main.rs --emit=dep-info,link --target t {forbid}"));
        assert!(is_checked(&compile, Some(&krate("dom")), &[]));
        let query = args(&format!("- --crate-name ___ --print=file-names --target t {forbid}"));
        assert!(!is_checked(&query, Some(&krate("dom")), &[]));
        assert!(!is_checked(&args("--crate-name dom src/main.rs --target t"), Some(&krate("dom")), &[]));
        let trusted = [Trusted {
            name: "dom".into(),
            version: "0.1.0".into(),
            dir: "/d/dom".into(),
        }];
        assert!(!is_checked(&compile, Some(&krate("dom")), &trusted));
    }

    #[test]
    fn the_dep_info_file_is_found_where_rustc_writes_it() {
        let a = args(
            "--crate-name hello --edition=2021 hello/src/main.rs --emit=dep-info,link -C opt-level=3 -C extra-filename=-0123abcd --out-dir /t/deps --target t",
        );
        assert_eq!(dep_info_path(&a).unwrap(), Path::new("/t/deps/hello-0123abcd.d"));
        let b = args("--crate-name hello --emit dep-info,metadata,link -Cextra-filename=-9 --out-dir=/t/deps");
        assert_eq!(dep_info_path(&b).unwrap(), Path::new("/t/deps/hello-9.d"));
        assert!(dep_info_path(&args("--crate-name hello --emit=link --out-dir /t"))
            .unwrap_err()
            .contains("not asked for dep-info"));
    }

    #[test]
    fn a_checked_crate_may_read_only_its_own_files_and_cargos_variables() {
        let tmp = std::env::temp_dir().join(format!("qvq-depinfo-{}", std::process::id()));
        let dom = tmp.join("ws/dom");
        std::fs::create_dir_all(dom.join("src/with space")).unwrap();
        std::fs::create_dir_all(tmp.join("keys")).unwrap();
        for f in ["src/main.rs", "src/with space/data.bin"] {
            std::fs::write(dom.join(f), "").unwrap();
        }
        std::fs::write(tmp.join("keys/dev.key.pem"), "secret").unwrap();
        let k = Compiling {
            name: "dom".into(),
            version: "0.1.0".into(),
            dir: dom.canonicalize().unwrap(),
        };
        let ws = tmp.join("ws");
        let ok = "/t/dom-1.d: dom/src/main.rs dom/src/with\\ space/data.bin\n\n/t/dom-1: dom/src/main.rs dom/src/with\\ space/data.bin\n\ndom/src/main.rs:\n\n# env-dep:CARGO_PKG_NAME=dom\n# env-dep:CARGO_MANIFEST_DIR=/x\n# env-dep:CARGO_CRATE_NAME=dom\n";
        assert_eq!(check_dep_info(ok, &ws, &k), Vec::<String>::new());
        let bad = "/t/dom-1.d: dom/src/main.rs dom/src/../../../keys/dev.key.pem\n\n# env-dep:HOME=/root\n# env-dep:QVQ_SECRET\n";
        let v = check_dep_info(bad, &ws, &k);
        assert_eq!(v.len(), 3, "{v:?}");
        let key = tmp.join("keys/dev.key.pem").canonicalize().unwrap();
        assert!(
            v[0].starts_with(&format!(
                "crate dom 0.1.0 ({}) reads {} at build time, outside its folder",
                dom.canonicalize().unwrap().display(),
                key.display()
            )),
            "{v:?}"
        );
        assert!(v[1].contains("reads environment variable HOME at build time"), "{v:?}");
        assert!(v[2].contains("reads environment variable QVQ_SECRET at build time"), "{v:?}");
        assert!(check_dep_info("# env-dep:CARGO_PKG_NAME=x\n", &ws, &k)[0].contains("names no source file"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn the_marker_follows_the_trusted_set() {
        let a = Trusted {
            name: "rt".into(),
            version: "0.1.0".into(),
            dir: "/d/rt".into(),
        };
        let mut b = a.clone();
        b.version = "0.1.1".into();
        assert_ne!(rustflags(std::slice::from_ref(&a))[1], rustflags(&[b])[1]);
        assert_eq!(rustflags(std::slice::from_ref(&a))[1], rustflags(&[a])[1]);
    }
}
