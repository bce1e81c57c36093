//! The cargo configuration a domain build runs under. Cargo reads `.cargo/config.toml` (and
//! `.cargo/config`) in the folder it runs in and in every folder above, and such a file can
//! change how rustc runs: `build.rustc`, `build.rustc-wrapper` and
//! `build.rustc-workspace-wrapper` run a program of its choosing on the build host (already
//! during `cargo metadata`), `rustflags` can add `--cap-lints`, `--cfg` or an `@argfile`
//! rustc expands itself, `[source]` replaces a pinned registry crate with other code under
//! the same name, version and checksum, `[patch]`, `[env]` and `[unstable]` change the rest.
//!
//! So before xtask runs any cargo command on a domain workspace, it reads every such file
//! from the workspace's folder up to the repository's root (the files of this repository;
//! the build host's own, `$CARGO_HOME/config.toml` and folders above the repository, are its
//! owner's) and refuses anything but:
//! - `[target.aarch64-unknown-none-softfloat] rustflags`, an array whose every flag is one
//!   of the link flags of `domains/.cargo/config.toml` ([`LINK_FLAGS`]);
//! - `[alias]`: cargo never lets an alias replace a built-in command, and xtask runs only
//!   built-in ones (`metadata`, `build`).
//!
//! A `rust-toolchain(.toml)` file in those folders may name a channel but not a `path`
//! (a compiler binary of the repository's choosing).

use crate::setup::KERNEL_TARGET;
use std::path::{Path, PathBuf};

/// The values of `-C` a domain workspace's config may give the kernel's target: how a
/// domain is linked (`domains/.cargo/config.toml`).
pub const LINK_FLAGS: &[&str] = &[
    "relocation-model=pic",
    "link-arg=-pie",
    "link-arg=--no-dynamic-linker",
    "link-arg=-z",
    "link-arg=notext",
    "link-arg=max-page-size=4096",
];

/// The folders whose `.cargo/` cargo reads when run in `dir`, that belong to the repository
/// at `root`: `dir` and each folder above it up to `root` (only `dir` if it is elsewhere).
pub fn config_dirs(dir: &Path, root: &Path) -> Vec<PathBuf> {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let (dir, root) = (canon(dir), canon(root));
    if !dir.starts_with(&root) {
        return vec![dir];
    }
    dir.ancestors().take_while(|d| d.starts_with(&root)).map(Path::to_path_buf).collect()
}

/// Checks every cargo config and toolchain file cargo and rustup would read for a build in
/// `dir` (within the repository at `root`); every violation is reported, one a line.
pub fn check(dir: &Path, root: &Path) -> Result<(), String> {
    let mut violations = Vec::new();
    for d in config_dirs(dir, root) {
        for name in [".cargo/config", ".cargo/config.toml"] {
            let file = d.join(name);
            if let Some(text) = read(&file, &mut violations) {
                violations.extend(check_config_text(&text, &file));
            }
        }
        for name in ["rust-toolchain", "rust-toolchain.toml"] {
            let file = d.join(name);
            if let Some(text) = read(&file, &mut violations) {
                violations.extend(check_toolchain_text(&text, &file));
            }
        }
    }
    if violations.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}\nrefusing to run cargo on the domain workspace {} (domains/README.md, \"Build checks\")",
        violations.join("\n"),
        dir.display()
    ))
}

fn read(file: &Path, violations: &mut Vec<String>) -> Option<String> {
    match std::fs::read_to_string(file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            violations.push(format!("{}: cannot read it: {e}", file.display()));
            None
        }
    }
}

/// The violations of cargo config file `file` (text `text`).
pub fn check_config_text(text: &str, file: &Path) -> Vec<String> {
    let f = file.display();
    let refuse = |key: &str, why: &str| {
        format!(
            "{f}: `{key}` {why} (rule: a cargo config file the domain build reads may set only [target.{KERNEL_TARGET}] rustflags, with the link flags of domains/.cargo/config.toml, and [alias]); remove it"
        )
    };
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => return vec![format!("{f}: not a cargo config file cargo and xtask read alike: {e}")],
    };
    let mut out = Vec::new();
    for (key, value) in &table {
        match key.as_str() {
            "alias" => {}
            "target" => {
                let Some(targets) = value.as_table() else {
                    out.push(refuse("target", "is not a table"));
                    continue;
                };
                for (triple, v) in targets {
                    let tkey = format!("target.{triple}");
                    if triple != KERNEL_TARGET {
                        out.push(refuse(&tkey, "is not the kernel's target"));
                        continue;
                    }
                    let Some(t) = v.as_table() else {
                        out.push(refuse(&tkey, "is not a table"));
                        continue;
                    };
                    for (k, v) in t {
                        let key = format!("{tkey}.{k}");
                        if k != "rustflags" {
                            out.push(refuse(&key, "may change how a domain is compiled or linked"));
                            continue;
                        }
                        match v.as_array() {
                            Some(flags) => out.extend(check_rustflags(flags).into_iter().map(|why| refuse(&key, &why))),
                            None => out.push(refuse(&key, "is not an array of flags")),
                        }
                    }
                }
            }
            other => match value.as_table().filter(|t| !t.is_empty()) {
                Some(t) => out.extend(
                    t.keys()
                        .map(|k| refuse(&format!("{other}.{k}"), "may change how rustc runs or what code is compiled")),
                ),
                None => out.push(refuse(other, "may change how rustc runs or what code is compiled")),
            },
        }
    }
    out
}

/// Why each flag of `flags` is refused: every one must be `-C` with a value of
/// [`LINK_FLAGS`] (as `-C value` or `-Cvalue`).
fn check_rustflags(flags: &[toml::Value]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = flags.iter();
    while let Some(flag) = it.next() {
        let Some(flag) = flag.as_str() else {
            out.push(format!("has a flag that is not a string: {flag}"));
            continue;
        };
        let value = if flag == "-C" {
            match it.next().and_then(toml::Value::as_str) {
                Some(v) => v,
                None => {
                    out.push("ends with -C and no value".to_string());
                    continue;
                }
            }
        } else if let Some(v) = flag.strip_prefix("-C") {
            v
        } else {
            out.push(format!("has flag {flag:?}, which is not one of the link flags -C {}", LINK_FLAGS.join(", -C ")));
            continue;
        };
        if !LINK_FLAGS.contains(&value) {
            out.push(format!(
                "has flag -C {value:?}, which is not one of the link flags -C {}",
                LINK_FLAGS.join(", -C ")
            ));
        }
    }
    out
}

/// The violations of toolchain file `file`: a `path` names a compiler of the repository's
/// choosing.
pub fn check_toolchain_text(text: &str, file: &Path) -> Vec<String> {
    let refuse = || {
        vec![format!(
            "{}: names a toolchain by path (rule: the compiler is the build host's; a toolchain file may name only a channel); remove the path",
            file.display()
        )]
    };
    match toml::from_str::<toml::Table>(text) {
        Ok(t) => match t.get("toolchain").and_then(|t| t.get("path")) {
            Some(_) => refuse(),
            None => Vec::new(),
        },
        // The old one-line form: a channel or toolchain name, never a path.
        Err(_) if !text.trim().contains(['/', '\\']) => Vec::new(),
        Err(_) => refuse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Vec<String> {
        check_config_text(text, Path::new("/ws/.cargo/config.toml"))
    }

    #[test]
    fn the_real_domain_config_and_the_root_alias_pass() {
        let root = crate::paths::workspace_root();
        assert_eq!(super::check(&crate::paths::domains_dir(), &root), Ok(()));
        let dirs = config_dirs(&crate::paths::domains_dir(), &root);
        assert_eq!(dirs, [root.join("domains").canonicalize().unwrap(), root.canonicalize().unwrap()]);
        assert!(check("[alias]\nxtask = \"run --quiet --package xtask --\"\n").is_empty());
    }

    #[test]
    fn anything_but_the_link_flags_is_refused_naming_file_and_key() {
        for (text, key) in [
            ("[build]\nrustc-workspace-wrapper = \"./wrap.sh\"", "`build.rustc-workspace-wrapper`"),
            ("build.rustc-wrapper = \"x\"", "`build.rustc-wrapper`"),
            ("[source.crates-io]\nreplace-with = \"v\"", "`source.crates-io`"),
            ("[patch.crates-io]\nfoo = { path = \"x\" }", "`patch.crates-io`"),
            ("[env]\nA = \"b\"", "`env.A`"),
            ("[unstable]\nbuild-std = [\"core\"]", "`unstable.build-std`"),
            ("include = \"other.toml\"", "`include`"),
            ("[target.x86_64-unknown-linux-gnu]\nrustflags = []", "`target.x86_64-unknown-linux-gnu`"),
            (
                "[target.aarch64-unknown-none-softfloat]\nlinker = \"evil\"",
                "`target.aarch64-unknown-none-softfloat.linker`",
            ),
            ("[target.aarch64-unknown-none-softfloat]\nrustflags = \"-C link-arg=-pie\"", "is not an array"),
        ] {
            let v = check(text);
            assert_eq!(v.len(), 1, "{text}: {v:?}");
            assert!(v[0].starts_with("/ws/.cargo/config.toml: ") && v[0].contains(key), "{text}: {v:?}");
        }
        for flag in ["@capfile", "--cap-lints=warn", "-Zunstable-options", "--cfg=x", "-Cllvm-args=-x", "-C"] {
            let v = check(&format!(
                "[target.aarch64-unknown-none-softfloat]\nrustflags = [\"-C\", \"link-arg=-pie\", \"{flag}\"]"
            ));
            assert_eq!(v.len(), 1, "{flag}: {v:?}");
            assert!(
                v[0].contains("`target.aarch64-unknown-none-softfloat.rustflags` has flag") || v[0].contains("ends with -C"),
                "{v:?}"
            );
        }
        assert!(check("[target.aarch64-unknown-none-softfloat]\nrustflags = [\"-Crelocation-model=pic\"]").is_empty());
    }

    #[test]
    fn a_toolchain_file_may_name_a_channel_but_not_a_path() {
        let f = Path::new("/ws/rust-toolchain.toml");
        assert!(check_toolchain_text("[toolchain]\nchannel = \"1.95\"\n", f).is_empty());
        assert!(check_toolchain_text("stable\n", f).is_empty());
        assert!(check_toolchain_text("[toolchain]\npath = \"/x\"\n", f)[0].contains("names a toolchain by path"));
        assert!(check_toolchain_text("../evil/toolchain\n", f)[0].contains("names a toolchain by path"));
    }
}
