//! The allow-list (`domains/allowed-crates.toml`): every crate other than the domain itself
//! that may be compiled into a domain or run while building one.
//!
//! - `[[trusted]]`: a crate of the domain workspace trusted by its exact path (the runtime
//!   and the interface definitions). They may use `unsafe`; they are the trusted base.
//! - `[[crate]]`: a third-party crate pinned by name, exact version, source and the
//!   Cargo.lock checksum, with `safety = "no-unsafe"` (compiled with `-F unsafe_code`, so
//!   the compiler checks the claim) or `safety = "vetted-trusted"` with a `reason` (it may
//!   use `unsafe`; it is part of the trusted base and SECURITY.md lists it).
//!
//! Either kind may carry `build-script = "reason"` or `proc-macro = "reason"`: code that runs
//! on the build host (next to the signing key) is refused unless allowed here, with a reason.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    trusted: Vec<TrustedToml>,
    #[serde(default, rename = "crate")]
    crates: Vec<AllowedCrate>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TrustedToml {
    name: String,
    path: PathBuf,
    build_script: Option<String>,
    proc_macro: Option<String>,
}

/// A workspace crate trusted by path.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedPath {
    pub name: String,
    /// The crate's folder, canonical.
    pub dir: PathBuf,
    pub build_script: Option<String>,
    pub proc_macro: Option<String>,
}

/// How far a third-party crate is trusted.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Safety {
    /// Contains no `unsafe`: compiled with `-F unsafe_code` like a domain.
    NoUnsafe,
    /// Uses `unsafe`, read and accepted (the reason says why): part of the trusted base.
    VettedTrusted,
}

/// A pinned third-party crate.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AllowedCrate {
    pub name: String,
    pub version: String,
    pub source: String,
    pub checksum: String,
    pub safety: Safety,
    pub reason: Option<String>,
    pub build_script: Option<String>,
    pub proc_macro: Option<String>,
}

/// The parsed, validated allow-list.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowList {
    pub path: PathBuf,
    pub trusted: Vec<TrustedPath>,
    pub crates: Vec<AllowedCrate>,
}

fn nonempty(reason: &Option<String>) -> bool {
    reason.as_deref().is_none_or(|r| !r.trim().is_empty())
}

impl AllowList {
    /// Reads the allow-list at `path`; `[[trusted]]` paths are relative to its folder.
    pub fn load(path: &Path) -> Result<AllowList, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the allow-list {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        AllowList::parse(&text, path, base)
    }

    /// Parses allow-list `text` (read from `path`, trusted paths relative to `base`).
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<AllowList, String> {
        let at = path.display();
        let file: File = toml::from_str(text).map_err(|e| format!("{at}: {e}"))?;
        let mut trusted = Vec::new();
        for t in file.trusted {
            let dir = base
                .join(&t.path)
                .canonicalize()
                .map_err(|e| format!("{at}: trusted crate {}: path {} ({e})", t.name, t.path.display()))?;
            if !nonempty(&t.build_script) || !nonempty(&t.proc_macro) {
                return Err(format!("{at}: trusted crate {}: an allowed build script or proc-macro needs a reason", t.name));
            }
            trusted.push(TrustedPath {
                name: t.name,
                dir,
                build_script: t.build_script,
                proc_macro: t.proc_macro,
            });
        }
        for c in &file.crates {
            let what = format!("{at}: crate {} {}", c.name, c.version);
            if c.safety == Safety::VettedTrusted && c.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                return Err(format!("{what}: `vetted-trusted` needs a `reason` (why its unsafe code is accepted)"));
            }
            if !nonempty(&c.build_script) || !nonempty(&c.proc_macro) {
                return Err(format!("{what}: an allowed build script or proc-macro needs a reason"));
            }
            if c.checksum.len() != 64 || !c.checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{what}: `checksum` must be the 64 hex digits Cargo.lock records"));
            }
            if c.version.parse::<ExactVersion>().is_err() {
                return Err(format!("{what}: `version` must be one exact version such as 1.2.3"));
            }
        }
        Ok(AllowList {
            path: path.to_path_buf(),
            trusted,
            crates: file.crates,
        })
    }

    /// The trusted workspace crate at `dir` (canonical), if any.
    pub fn trusted_at(&self, dir: &Path) -> Option<&TrustedPath> {
        self.trusted.iter().find(|t| t.dir == dir)
    }

    /// Every pinned entry for crate `name`.
    pub fn crates_named(&self, name: &str) -> Vec<&AllowedCrate> {
        self.crates.iter().filter(|c| c.name == name).collect()
    }
}

/// `MAJOR.MINOR.PATCH` with an optional pre-release or build suffix: what "exact" means.
struct ExactVersion;

impl std::str::FromStr for ExactVersion {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let core = s.split(['-', '+']).next().unwrap_or("");
        let parts: Vec<_> = core.split('.').collect();
        if parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            Ok(ExactVersion)
        } else {
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRATE: &str = r#"
[[crate]]
name = "x"
version = "1.2.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "2b23ac50abb8261cb38c6e2a7192d3302e0836dac1628f6a93b82b4fad185897"
"#;

    fn parse(text: &str) -> Result<AllowList, String> {
        AllowList::parse(text, Path::new("allowed.toml"), Path::new("."))
    }

    #[test]
    fn entries_are_validated() {
        assert!(parse(&format!("{CRATE}safety = \"no-unsafe\"")).is_ok());
        let e = parse(&format!("{CRATE}safety = \"vetted-trusted\"")).unwrap_err();
        assert!(e.contains("crate x 1.2.3: `vetted-trusted` needs a `reason`"), "{e}");
        assert!(parse(&format!("{CRATE}safety = \"vetted-trusted\"\nreason = \"read it\"")).is_ok());
        let e = parse(&format!("{CRATE}safety = \"no-unsafe\"\nbuild-script = \" \"")).unwrap_err();
        assert!(e.contains("needs a reason"), "{e}");
        let e = parse(&format!("{CRATE}safety = \"probably-fine\"")).unwrap_err();
        assert!(e.contains("unknown variant"), "{e}");
        assert!(parse(CRATE).unwrap_err().contains("missing field `safety`"));
        let e = parse(&format!("{}safety = \"no-unsafe\"", CRATE.replace("1.2.3", "^1.2"))).unwrap_err();
        assert!(e.contains("one exact version"), "{e}");
        let e = parse(&format!("{}safety = \"no-unsafe\"", CRATE.replace("2b23", "zz"))).unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
        let e = parse("[[trusted]]\nname = \"r\"\npath = \"no/such/dir\"").unwrap_err();
        assert!(e.contains("trusted crate r: path no/such/dir"), "{e}");
        assert!(parse("[[trusted]]\nname = \"r\"\npath = \".\"\nflavour = 1")
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn the_real_allow_list_pins_the_runtime_by_path() {
        let list = AllowList::load(&crate::paths::domains_dir().join("allowed-crates.toml")).unwrap();
        let names: Vec<_> = list.trusted.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["qvq-runtime", "qvq-interfaces"]);
        assert!(list
            .trusted_at(&crate::paths::domains_dir().join("trusted/runtime").canonicalize().unwrap())
            .is_some());
        assert!(list.crates.iter().all(|c| c.safety == Safety::NoUnsafe || c.reason.is_some()));
    }
}
