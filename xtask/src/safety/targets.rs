//! What a domain's graph compiles: the domain is exactly one binary whose sources lie in its
//! own folder, and no crate in the graph runs code on the build host (a build script or a
//! proc-macro) unless the allow-list allows it with a reason.

use super::graph::{DomainGraph, Package, Standing};
use std::path::{Component, Path, PathBuf};

/// Target kinds `cargo build` compiles (tests, examples and benches are not built).
const BUILT_KINDS: &[&str] = &["bin", "lib", "rlib", "dylib", "cdylib", "staticlib", "proc-macro", "custom-build"];

/// `path` made absolute and free of `..` and symbolic links, as far as it exists.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Every built target of `p` whose crate root lies outside `p`'s folder.
fn roots_outside(p: &Package, domain: &str, out: &mut Vec<String>) {
    let dir = p.dir();
    for t in p.targets.iter().filter(|t| t.kind.iter().any(|k| BUILT_KINDS.contains(&k.as_str()))) {
        let src = resolved(&t.src_path);
        if !src.starts_with(&dir) {
            out.push(format!(
                "domain {domain}: crate {}: target {} ({}) compiles {}, outside the crate's folder {} (rule: every compiled crate root lies inside its crate); move the file into the crate",
                p.describe(),
                t.name,
                t.kind.join(","),
                src.display(),
                dir.display()
            ));
        }
    }
}

/// Runs-on-the-build-host targets of `p` that its standing does not allow.
fn host_code(p: &Package, standing: Option<Standing>, domain: &str, list: &Path, out: &mut Vec<String>) {
    let checks = [
        ("custom-build", "has a build script", "build-script", standing.and_then(|s| s.build_script())),
        ("proc-macro", "is a proc-macro crate", "proc-macro", standing.and_then(|s| s.proc_macro())),
    ];
    for (kind, what, field, allowed) in checks {
        if p.has_target(kind) && allowed.is_none() {
            let fix = match standing {
                Some(_) => format!("remove it, or read it and allow it in {} with `{field} = \"reason\"`", list.display()),
                None => "remove it".to_string(),
            };
            out.push(format!(
                "domain {domain}: crate {}: {what} (rule: code that runs on the build host, next to the signing key, is refused unless allow-listed); {fix}",
                p.describe()
            ));
        }
    }
}

/// The target rules for one domain's graph.
pub fn check_targets(graph: &DomainGraph, domain: &str, list: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let d = graph.domain;
    let bins: Vec<&str> = d
        .targets
        .iter()
        .filter(|t| t.kind.iter().any(|k| k == "bin"))
        .map(|t| t.name.as_str())
        .collect();
    if bins.len() != 1 {
        out.push(format!(
            "domain {domain}: crate {}: has {} binary targets [{}] (rule: a domain is exactly one binary, the ELF that is signed); keep one [[bin]]",
            d.describe(),
            bins.len(),
            bins.join(", ")
        ));
    }
    roots_outside(d, domain, &mut out);
    host_code(d, None, domain, list, &mut out);
    for (p, standing) in &graph.deps {
        roots_outside(p, domain, &mut out);
        host_code(p, *standing, domain, list, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::graph::check_graph;
    use crate::safety::graph::tests::{allow_list, lock, metadata, package, REGISTRY, SUM};

    fn violations(packages: Vec<crate::safety::graph::Package>, extra: &str) -> Vec<String> {
        let edges: Vec<(String, String)> = packages[1..].iter().map(|p| ("dom@0.1.0".to_string(), p.id.clone())).collect();
        let edges: Vec<(&str, &str, Option<&str>)> = edges.iter().map(|(a, b)| (a.as_str(), b.as_str(), None)).collect();
        let meta = metadata(packages, &edges);
        let allow = allow_list(extra);
        let (graph, _) = check_graph(&meta, &lock("lla", "0.10.6", SUM), Path::new(REGISTRY), &allow, "dom").unwrap();
        check_targets(&graph, "dom", Path::new("domains/allowed-crates.toml"))
    }

    #[test]
    fn a_domain_is_one_binary_inside_its_folder() {
        let dom = Path::new("/src/dom");
        assert!(violations(vec![package("dom", "0.1.0", Some(dom), &["bin"])], "").is_empty());
        let v = violations(vec![package("dom", "0.1.0", Some(dom), &["bin", "bin"])], "");
        assert!(v[0].contains("has 2 binary targets [dom, dom]"), "{v:?}");
        let v = violations(vec![package("dom", "0.1.0", Some(dom), &["lib"])], "");
        assert!(v[0].contains("has 0 binary targets"), "{v:?}");
        let mut outside = package("dom", "0.1.0", Some(dom), &["bin"]);
        outside.targets[0].src_path = dom.join("../other/x.rs");
        let v = violations(vec![outside], "");
        assert!(
            v[0].contains("target dom (bin) compiles /src/other/x.rs, outside the crate's folder /src/dom"),
            "{v:?}"
        );
    }

    #[test]
    fn build_scripts_and_proc_macros_need_an_allowance() {
        let dom = Path::new("/src/dom");
        let v = violations(vec![package("dom", "0.1.0", Some(dom), &["bin", "custom-build"])], "");
        assert!(v[0].contains("crate dom 0.1.0 (path /src/dom): has a build script"), "{v:?}");
        let v = violations(
            vec![package("dom", "0.1.0", Some(dom), &["bin"]), package("lla", "0.10.6", None, &["proc-macro"])],
            "",
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].contains("crate lla 0.10.6 (from registry+https://github.com/rust-lang/crates.io-index): is a proc-macro crate"),
            "{v:?}"
        );
        assert!(v[0].contains("allow it in domains/allowed-crates.toml with `proc-macro = \"reason\"`"), "{v:?}");
        let allowed = "proc-macro = \"derives the wire format; read in full\"";
        let v = violations(
            vec![package("dom", "0.1.0", Some(dom), &["bin"]), package("lla", "0.10.6", None, &["proc-macro"])],
            allowed,
        );
        assert!(v.is_empty(), "{v:?}");
        let v = violations(
            vec![
                package("dom", "0.1.0", Some(dom), &["bin"]),
                package("lla", "0.10.6", None, &["lib", "custom-build"]),
            ],
            allowed,
        );
        assert!(v[0].contains("has a build script"), "{v:?}");
    }
}
