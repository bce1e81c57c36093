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
//! The flags are part of cargo's fingerprint, with a marker `--cfg` naming a hash of the
//! trusted set: changing the policy rebuilds the domains, and a crate compiled some other
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

/// The target rustflags of a checked build that trusts `trusted` (sorted).
pub fn rustflags(trusted: &[Trusted]) -> [String; 2] {
    let json = serde_json::to_string(trusted).unwrap_or_default();
    [FORBID.to_string(), format!("{MARKER}{:016x}", fnv1a(json.as_bytes()))]
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

/// rustc's arguments for `krate` (None: cargo asking rustc about itself) under `trusted`.
pub fn rewrite(args: &[OsString], krate: Option<&Compiling>, trusted: &[Trusted]) -> Result<Vec<OsString>, String> {
    let is = |a: &OsString, s: &str| a.to_str() == Some(s);
    let may_use_unsafe = krate.is_some_and(|k| trusted.iter().any(|t| t.name == k.name && t.version == k.version && t.dir == k.dir));
    let forbidden = args.iter().any(|a| is(a, FORBID));
    let for_target = args.iter().any(|a| is(a, "--target") || a.to_str().is_some_and(|a| a.starts_with("--target=")));
    if let Some(k) = krate {
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
    let args = match rewrite(&args, Compiling::from_env().as_ref(), &trusted) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    Some(match Command::new(Path::new(&rustc)).args(args).status() {
        Ok(s) => ExitCode::from(s.code().map_or(101, |c| u8::try_from(c).unwrap_or(101))),
        Err(e) => {
            eprintln!("xtask rustc wrapper: cannot run {}: {e}", Path::new(&rustc).display());
            ExitCode::FAILURE
        }
    })
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
