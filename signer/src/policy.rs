//! Reading the trust rules in `keys/`: each key's policy (`keys/policy/<key>.toml`, where
//! `<key>` is the key file's name without `.pub.pem`) and the rollback floors
//! (`keys/floors.toml`). The kernel's build compiles them in; `qvq-sign verify --keyring`
//! applies them. The rules themselves are `loader::policy`.

use loader::manifest::{Version, MAX_COMPATIBLE, MAX_INTERFACE_NAME, MAX_NAME};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One key's policy as written in its TOML file.
#[derive(Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyToml {
    /// Domain names the key may sign: exact, `*`, or `prefix*`.
    pub names: Vec<String>,
    /// Interfaces its domains may export (patterns as for names). Default: none.
    #[serde(default)]
    pub exports: Vec<String>,
    /// Interfaces its domains may import (patterns), `Kernel` (the administrative
    /// interface: crash, restart, swap, power off) included. Default: none.
    #[serde(default)]
    pub imports: Vec<String>,
    /// Device `compatible` strings its domains may be granted (patterns). Default: none.
    /// Kernel-owned devices are refused whatever this says.
    #[serde(default)]
    pub devices: Vec<String>,
    /// May sign domains whose build did not check them as safe Rust. Default: false.
    #[serde(default)]
    pub unchecked: bool,
}

impl PolicyToml {
    /// Runs `f` with the borrowed form the loader checks with.
    pub fn with<R>(&self, f: impl for<'a> FnOnce(loader::policy::KeyPolicy<'a>) -> R) -> R {
        fn strs(l: &[String]) -> Vec<&str> {
            l.iter().map(String::as_str).collect()
        }
        let (names, exports, imports, devices) = (strs(&self.names), strs(&self.exports), strs(&self.imports), strs(&self.devices));
        f(loader::policy::KeyPolicy {
            names: &names,
            exports: &exports,
            imports: &imports,
            devices: &devices,
            unchecked: self.unchecked,
        })
    }
}

fn check_patterns(path: &Path, field: &str, list: &[String], max: usize) -> Result<(), String> {
    for p in list {
        let body = p.strip_suffix('*').unwrap_or(p);
        if p.is_empty() || p.len() > max || body.contains('*') || !p.bytes().all(|c| (0x21..0x7f).contains(&c)) {
            return Err(format!(
                "{}: {field}: {p:?} is not a pattern (an exact string, `*`, or `prefix*`; printable, at most {max} characters)",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Reads and checks one policy file.
pub fn read_policy(path: &Path) -> Result<PolicyToml, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let p: PolicyToml = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    check_patterns(path, "names", &p.names, MAX_NAME)?;
    check_patterns(path, "exports", &p.exports, MAX_INTERFACE_NAME)?;
    check_patterns(path, "imports", &p.imports, MAX_INTERFACE_NAME)?;
    check_patterns(path, "devices", &p.devices, MAX_COMPATIBLE)?;
    if let Some(c) = p.devices.iter().find(|c| loader::policy::kernel_owned(c).is_some()) {
        return Err(format!("{}: devices: {c:?} is kept by the kernel and can never be granted", path.display()));
    }
    Ok(p)
}

/// The policy file of the key at `key_path` (`DIR/NAME.pub.pem`): `keys/policy/NAME.toml`,
/// `keys/` being `DIR` or, for `keys/dev/`, its parent.
pub fn policy_path(keys_root: &Path, key_path: &Path) -> PathBuf {
    let stem = key_path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".pub.pem").to_string())
        .unwrap_or_default();
    keys_root.join("policy").join(format!("{stem}.toml"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FloorsToml {
    #[serde(default)]
    floors: BTreeMap<String, String>,
}

/// Reads `keys/floors.toml`: `[floors]` of `name = "MAJOR.MINOR.PATCH"`. A missing file is
/// no floors.
pub fn read_floors(path: &Path) -> Result<Vec<(String, Version)>, String> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let t: FloorsToml = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    t.floors
        .into_iter()
        .map(|(name, v)| {
            let version = Version::parse(&v).ok_or_else(|| format!("{}: floor of {name}: {v:?} is not MAJOR.MINOR.PATCH", path.display()))?;
            Ok((name, version))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn policies_parse_and_refuse_bad_patterns_and_kernel_devices() {
        let dir = std::env::temp_dir().join(format!("qvq-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = write(&dir, "ok.toml", "names = [\"hello\", \"net-*\"]\nexports = [\"Hello\"]\n");
        let p = read_policy(&ok).unwrap();
        assert_eq!(p.names, ["hello", "net-*"]);
        assert!(!p.unchecked && p.devices.is_empty());
        let mid_star = write(&dir, "star.toml", "names = [\"a*b\"]\n");
        assert!(read_policy(&mid_star).unwrap_err().contains("is not a pattern"));
        let timer = write(&dir, "timer.toml", "names = [\"*\"]\ndevices = [\"arm,armv8-timer\"]\n");
        assert!(read_policy(&timer).unwrap_err().contains("kept by the kernel"));
        let unknown = write(&dir, "unknown.toml", "names = [\"*\"]\nkeys = 1\n");
        assert!(read_policy(&unknown).unwrap_err().contains("unknown field"));
        let floors = write(&dir, "floors.toml", "[floors]\nhello = \"0.1.0\"\n");
        assert_eq!(read_floors(&floors).unwrap(), [("hello".to_string(), Version::parse("0.1.0").unwrap())]);
        let bad = write(&dir, "bad-floors.toml", "[floors]\nhello = \"1\"\n");
        assert!(read_floors(&bad).unwrap_err().contains("not MAJOR.MINOR.PATCH"));
        assert_eq!(read_floors(&dir.join("none.toml")).unwrap(), []);
        assert_eq!(
            policy_path(Path::new("keys"), Path::new("keys/dev/dev.pub.pem")),
            Path::new("keys/policy/dev.toml")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
