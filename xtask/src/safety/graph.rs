//! The dependency graph of a domain, from `cargo metadata`: every package it reaches
//! through normal and build dependencies (dev-dependencies are never built into it) is
//! identified by its id and source, never by its name alone; a third-party crate must be
//! compiled from the folder cargo unpacked the registry's download into
//! (`$CARGO_HOME/registry/src/<index>/NAME-VERSION/`), the code its checksum is of: cargo
//! metadata and Cargo.lock name the same source and checksum for a source-replaced
//! (vendored) copy, whatever that copy's code is.

use super::allowlist::{AllowList, AllowedCrate, TrustedPath};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The parts of `cargo metadata --format-version 1` the checks read.
#[derive(Deserialize, Debug)]
pub struct Metadata {
    pub packages: Vec<Package>,
    pub workspace_members: Vec<String>,
    pub resolve: Option<Resolve>,
}

#[derive(Deserialize, Debug)]
pub struct Package {
    pub id: String,
    pub name: String,
    pub version: String,
    /// `None` for a path dependency or a workspace member.
    pub source: Option<String>,
    pub manifest_path: PathBuf,
    pub targets: Vec<Target>,
}

#[derive(Deserialize, Debug)]
pub struct Target {
    pub name: String,
    pub kind: Vec<String>,
    pub src_path: PathBuf,
}

#[derive(Deserialize, Debug)]
pub struct Resolve {
    pub nodes: Vec<Node>,
}

#[derive(Deserialize, Debug)]
pub struct Node {
    pub id: String,
    pub deps: Vec<NodeDep>,
}

#[derive(Deserialize, Debug)]
pub struct NodeDep {
    pub pkg: String,
    pub dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize, Debug)]
pub struct DepKind {
    pub kind: Option<String>,
}

/// One `[[package]]` of Cargo.lock.
#[derive(Deserialize, Debug)]
pub struct LockPackage {
    pub name: String,
    pub version: String,
    pub source: Option<String>,
    pub checksum: Option<String>,
}

#[derive(Deserialize, Debug)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockPackage>,
}

/// Reads the `[[package]]` entries of a Cargo.lock.
pub fn read_lock(path: &Path) -> Result<Vec<LockPackage>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lock: LockFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(lock.package)
}

impl Package {
    /// The crate's folder (canonical when it exists).
    pub fn dir(&self) -> PathBuf {
        let dir = self.manifest_path.parent().unwrap_or(Path::new("/"));
        dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
    }

    /// `name version (where from)`, as errors name a crate.
    pub fn describe(&self) -> String {
        match &self.source {
            Some(s) => format!("{} {} (from {s})", self.name, self.version),
            None => format!("{} {} (path {})", self.name, self.version, self.dir().display()),
        }
    }

    pub fn has_target(&self, kind: &str) -> bool {
        self.targets.iter().any(|t| t.kind.iter().any(|k| k == kind))
    }
}

/// Why a package other than the domain itself may be in its graph.
#[derive(Debug, Clone, Copy)]
pub enum Standing<'a> {
    Trusted(&'a TrustedPath),
    ThirdParty(&'a AllowedCrate),
}

impl<'a> Standing<'a> {
    pub fn build_script(self) -> Option<&'a str> {
        match self {
            Standing::Trusted(t) => t.build_script.as_deref(),
            Standing::ThirdParty(c) => c.build_script.as_deref(),
        }
    }

    pub fn proc_macro(self) -> Option<&'a str> {
        match self {
            Standing::Trusted(t) => t.proc_macro.as_deref(),
            Standing::ThirdParty(c) => c.proc_macro.as_deref(),
        }
    }
}

/// A domain's package and every package it reaches, with the standing each was given
/// (`None`: refused; the violations say why).
pub struct DomainGraph<'m, 'a> {
    pub domain: &'m Package,
    pub deps: Vec<(&'m Package, Option<Standing<'a>>)>,
}

/// `$CARGO_HOME`, found as cargo finds it: the variable (relative to the current folder), or
/// `.cargo` in the home folder.
pub fn cargo_home() -> Result<PathBuf, String> {
    match std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        Some(h) => std::path::absolute(PathBuf::from(h)).map_err(|e| format!("CARGO_HOME: {e}")),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cargo"))
            .ok_or_else(|| "neither CARGO_HOME nor HOME is set: cannot find cargo's registry folder".to_string()),
    }
}

/// Where cargo unpacks registry downloads, `$CARGO_HOME/registry/src` (canonical when it
/// exists).
pub fn registry_src() -> Result<PathBuf, String> {
    let src = cargo_home()?.join("registry/src");
    Ok(src.canonicalize().unwrap_or(src))
}

/// Finds workspace member `name` and walks its graph; returns it and every violation of the
/// identity rules (trusted crates by path, third-party crates pinned and compiled from
/// `registry_src`, cargo's unpack folder).
pub fn check_graph<'m, 'a>(
    meta: &'m Metadata,
    lock: &[LockPackage],
    registry_src: &Path,
    allow: &'a AllowList,
    name: &str,
) -> Result<(DomainGraph<'m, 'a>, Vec<String>), String> {
    let by_id: HashMap<&str, &Package> = meta.packages.iter().map(|p| (p.id.as_str(), p)).collect();
    let domain = meta
        .workspace_members
        .iter()
        .filter_map(|id| by_id.get(id.as_str()))
        .find(|p| p.name == name)
        .copied()
        .ok_or_else(|| {
            let folder = crate::paths::domain_dir(name);
            if folder.join("Cargo.toml").is_file() {
                format!("domains/{name} is not a member of the domain workspace: add \"{name}\" to `members` in domains/Cargo.toml")
            } else {
                format!("no domain named {name}: there is no domains/{name}/Cargo.toml (`cargo xtask new-domain {name}` makes one)")
            }
        })?;
    let resolve = meta.resolve.as_ref().ok_or("cargo metadata gave no dependency graph")?;
    let edges: HashMap<&str, Vec<&str>> = resolve
        .nodes
        .iter()
        .map(|n| {
            let linked = n.deps.iter().filter(|d| d.dep_kinds.iter().any(|k| k.kind.as_deref() != Some("dev")));
            (n.id.as_str(), linked.map(|d| d.pkg.as_str()).collect())
        })
        .collect();
    let mut seen = BTreeSet::from([domain.id.as_str()]);
    let mut stack = vec![domain.id.as_str()];
    let mut deps = Vec::new();
    let mut violations = Vec::new();
    if allow.trusted_at(&domain.dir()).is_some() {
        violations.push(format!(
            "domain {name}: {} is a trusted crate, not a domain; refusing to sign it",
            domain.describe()
        ));
    }
    while let Some(id) = stack.pop() {
        for dep in edges.get(id).into_iter().flatten() {
            if !seen.insert(dep) {
                continue;
            }
            let p = by_id
                .get(dep)
                .ok_or_else(|| format!("cargo metadata names package {dep} but does not describe it"))?;
            let standing = match standing(p, lock, registry_src, allow) {
                Ok(s) => Some(s),
                Err(why) => {
                    violations.push(format!("domain {name}: crate {}: {why}", p.describe()));
                    None
                }
            };
            deps.push((*p, standing));
            stack.push(dep);
        }
    }
    Ok((DomainGraph { domain, deps }, violations))
}

/// The allow-list's word on package `p`, or why it is refused and what to do.
fn standing<'a>(p: &Package, lock: &[LockPackage], registry_src: &Path, allow: &'a AllowList) -> Result<Standing<'a>, String> {
    let list = allow.path.display();
    let Some(source) = &p.source else {
        let dir = p.dir();
        if let Some(t) = allow.trusted_at(&dir).filter(|t| t.name == p.name) {
            return Ok(Standing::Trusted(t));
        }
        return Err(match allow.trusted.iter().find(|t| t.name == p.name) {
            Some(t) => format!(
                "a path dependency with the name of trusted crate {} but not at its path {} (rule: trusted crates are identified by path, not by name); depend on {} itself",
                t.name,
                t.dir.display(),
                t.dir.display()
            ),
            None => format!(
                "a path dependency that is not a trusted crate (rule: a domain may reach only the trusted crates of {list} and pinned third-party crates); move shared code into the trusted runtime, or publish it and pin it in {list}"
            ),
        });
    };
    let named = allow.crates_named(&p.name);
    if named.is_empty() {
        return Err(format!(
            "not on the allow-list (rule: third-party crates must be pinned in {list}); read it, then add a [[crate]] entry with its version, source, Cargo.lock checksum and safety"
        ));
    }
    let Some(entry) = named.iter().find(|c| c.version == p.version) else {
        let pinned: Vec<&str> = named.iter().map(|c| c.version.as_str()).collect();
        return Err(format!(
            "version {} is not the pinned version {} (rule: exact versions only); pin the new version in {list} after reading its changes, or keep {} in Cargo.lock",
            p.version,
            pinned.join(", "),
            pinned.join(", ")
        ));
    };
    if &entry.source != source {
        return Err(format!("comes from {source}, but {list} pins it from {} (rule: pinned source)", entry.source));
    }
    let locked = lock
        .iter()
        .find(|l| l.name == p.name && l.version == p.version && l.source.as_deref() == Some(source));
    match locked.and_then(|l| l.checksum.as_deref()) {
        None => Err(
            "Cargo.lock records no checksum for it (rule: third-party crates are pinned by checksum; git dependencies cannot be); use a registry release"
                .to_string(),
        ),
        Some(sum) if sum != entry.checksum => Err(format!(
            "its Cargo.lock checksum {sum} is not the pinned {} (rule: pinned checksum); this is not the code that was vetted: restore Cargo.lock, or vet this code and update {list}",
            entry.checksum
        )),
        Some(_) => {
            let dir = p.dir();
            let unpacked = dir.file_name().is_some_and(|n| n.to_str() == Some(&format!("{}-{}", p.name, p.version)))
                && dir.parent().and_then(Path::parent) == Some(registry_src);
            if !unpacked {
                return Err(format!(
                    "is compiled from {}, not from cargo's unpack folder of the registry download {}/<index>/{}-{} (rule: a pinned crate is compiled from the code its checksum is of; a source replacement such as a vendored copy keeps the name, version, source and checksum whatever its code is); remove the [source] replacement, or set CARGO_HOME to the cargo home cargo uses",
                    dir.display(),
                    registry_src.display(),
                    p.name,
                    p.version
                ));
            }
            Ok(Standing::ThirdParty(entry))
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::safety::allowlist::AllowList;

    pub const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";
    /// The tests' `$CARGO_HOME/registry/src`.
    pub const REGISTRY: &str = "/cargo/registry/src";
    pub const SUM: &str = "2b23ac50abb8261cb38c6e2a7192d3302e0836dac1628f6a93b82b4fad185897";

    /// A package at `dir` (path) or from crates.io (`dir` None), with targets `kinds`.
    pub fn package(name: &str, version: &str, dir: Option<&Path>, kinds: &[&str]) -> Package {
        let root = dir.map_or_else(|| PathBuf::from(format!("{REGISTRY}/index.x-1/{name}-{version}")), Path::to_path_buf);
        Package {
            id: format!("{name}@{version}"),
            name: name.into(),
            version: version.into(),
            source: dir.is_none().then(|| CRATES_IO.to_string()),
            manifest_path: root.join("Cargo.toml"),
            targets: kinds
                .iter()
                .map(|k| Target {
                    name: name.into(),
                    kind: vec![k.to_string()],
                    src_path: root.join(if *k == "custom-build" { "build.rs" } else { "src/main.rs" }),
                })
                .collect(),
        }
    }

    /// Metadata with workspace member `root`, its edges (`(from, to, kind)`) and packages.
    pub fn metadata(packages: Vec<Package>, edges: &[(&str, &str, Option<&str>)]) -> Metadata {
        let nodes = packages
            .iter()
            .map(|p| Node {
                id: p.id.clone(),
                deps: edges
                    .iter()
                    .filter(|e| e.0 == p.id)
                    .map(|e| NodeDep {
                        pkg: e.1.into(),
                        dep_kinds: vec![DepKind { kind: e.2.map(str::to_string) }],
                    })
                    .collect(),
            })
            .collect();
        Metadata {
            workspace_members: vec![packages[0].id.clone()],
            packages,
            resolve: Some(Resolve { nodes }),
        }
    }

    pub fn allow_list(extra: &str) -> AllowList {
        let domains = crate::paths::domains_dir();
        let text = format!(
            "[[trusted]]\nname = \"qvq-runtime\"\npath = \"trusted/runtime\"\n\n[[crate]]\nname = \"lla\"\nversion = \"0.10.6\"\nsource = \"{CRATES_IO}\"\nchecksum = \"{SUM}\"\nsafety = \"vetted-trusted\"\nreason = \"vetted\"\n{extra}"
        );
        AllowList::parse(&text, &domains.join("allowed-crates.toml"), &domains).unwrap()
    }

    pub fn lock(name: &str, version: &str, sum: &str) -> Vec<LockPackage> {
        vec![LockPackage {
            name: name.into(),
            version: version.into(),
            source: Some(CRATES_IO.into()),
            checksum: Some(sum.into()),
        }]
    }

    fn violations(meta: &Metadata, lock: &[LockPackage], allow: &AllowList) -> Vec<String> {
        check_graph(meta, lock, Path::new(REGISTRY), allow, "dom").unwrap().1
    }

    fn runtime() -> PathBuf {
        crate::paths::domains_dir().join("trusted/runtime").canonicalize().unwrap()
    }

    #[test]
    fn trusted_crates_are_known_by_path_not_name() {
        let dom = Path::new("/src/dom");
        let ok = metadata(
            vec![
                package("dom", "0.1.0", Some(dom), &["bin"]),
                package("qvq-runtime", "0.1.0", Some(&runtime()), &["lib"]),
            ],
            &[("dom@0.1.0", "qvq-runtime@0.1.0", None)],
        );
        assert!(violations(&ok, &[], &allow_list("")).is_empty());
        let fake = metadata(
            vec![
                package("dom", "0.1.0", Some(dom), &["bin"]),
                package("qvq-runtime", "0.1.0", Some(Path::new("/src/evil")), &["lib"]),
            ],
            &[("dom@0.1.0", "qvq-runtime@0.1.0", None)],
        );
        let v = violations(&fake, &[], &allow_list(""));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].starts_with(
                "domain dom: crate qvq-runtime 0.1.0 (path /src/evil): a path dependency with the name of trusted crate qvq-runtime but not at its path"
            ),
            "{v:?}"
        );
        let other = metadata(
            vec![
                package("dom", "0.1.0", Some(dom), &["bin"]),
                package("helper", "0.1.0", Some(Path::new("/src/helper")), &["lib"]),
            ],
            &[("dom@0.1.0", "helper@0.1.0", None)],
        );
        assert!(violations(&other, &[], &allow_list(""))[0].contains("helper 0.1.0 (path /src/helper): a path dependency that is not a trusted crate"));
    }

    #[test]
    fn third_party_crates_are_pinned_by_version_source_and_checksum() {
        let dom = Path::new("/src/dom");
        let graph = |version: &str, kind: Option<&str>| {
            metadata(
                vec![package("dom", "0.1.0", Some(dom), &["bin"]), package("lla", version, None, &["lib"])],
                &[("dom@0.1.0", &format!("lla@{version}"), kind)],
            )
        };
        let allow = allow_list("");
        assert!(violations(&graph("0.10.6", None), &lock("lla", "0.10.6", SUM), &allow).is_empty());
        let v = violations(&graph("0.10.7", None), &lock("lla", "0.10.7", SUM), &allow);
        assert!(
            v[0].contains("crate lla 0.10.7 (from registry+https://github.com/rust-lang/crates.io-index): version 0.10.7 is not the pinned version 0.10.6"),
            "{v:?}"
        );
        let other_sum = SUM.replace("2b23", "0000");
        let v = violations(&graph("0.10.6", None), &lock("lla", "0.10.6", &other_sum), &allow);
        assert!(v[0].contains(&format!("its Cargo.lock checksum {other_sum} is not the pinned {SUM}")), "{v:?}");
        let v = violations(&graph("0.10.6", None), &[], &allow);
        assert!(v[0].contains("Cargo.lock records no checksum"), "{v:?}");
        // A source-replaced copy: same id, source and checksum, another folder.
        for elsewhere in [
            "/ws/vendor/lla-0.10.6",
            "/cargo/registry/src/index.x-1/lla-0.10.7",
            "/cargo/registry/lla-0.10.6",
        ] {
            let mut vendored = graph("0.10.6", None);
            vendored.packages[1].manifest_path = Path::new(elsewhere).join("Cargo.toml");
            let v = violations(&vendored, &lock("lla", "0.10.6", SUM), &allow);
            assert!(
                v.len() == 1
                    && v[0].contains(&format!(
                        "crate lla 0.10.6 (from registry+https://github.com/rust-lang/crates.io-index): is compiled from {elsewhere}, not from cargo's unpack folder of the registry download /cargo/registry/src/<index>/lla-0.10.6"
                    )),
                "{v:?}"
            );
        }
        let mut git = graph("0.10.6", None);
        git.packages[1].source = Some("git+https://example.com/lla#abc".into());
        assert!(violations(&git, &lock("lla", "0.10.6", SUM), &allow)[0].contains("comes from git+https://example.com/lla#abc, but"));
        // A build dependency is checked like a normal one; a dev-dependency is never built in.
        let v = violations(&graph("9.9.9", Some("build")), &[], &allow);
        assert!(v[0].contains("lla 9.9.9"), "{v:?}");
        assert!(violations(&graph("9.9.9", Some("dev")), &[], &allow).is_empty());
        let unknown = metadata(
            vec![package("dom", "0.1.0", Some(dom), &["bin"]), package("libc", "0.2.0", None, &["lib"])],
            &[("dom@0.1.0", "libc@0.2.0", None)],
        );
        assert!(violations(&unknown, &[], &allow)[0]
            .contains("crate libc 0.2.0 (from registry+https://github.com/rust-lang/crates.io-index): not on the allow-list"));
    }

    #[test]
    fn the_whole_graph_is_walked() {
        let dom = Path::new("/src/dom");
        let deep = metadata(
            vec![
                package("dom", "0.1.0", Some(dom), &["bin"]),
                package("qvq-runtime", "0.1.0", Some(&runtime()), &["lib"]),
                package("sneaky", "1.0.0", None, &["lib"]),
            ],
            &[("dom@0.1.0", "qvq-runtime@0.1.0", None), ("qvq-runtime@0.1.0", "sneaky@1.0.0", None)],
        );
        let v = violations(&deep, &[], &allow_list(""));
        assert!(v.len() == 1 && v[0].contains("crate sneaky 1.0.0"), "{v:?}");
    }
}
