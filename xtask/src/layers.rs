//! The kernel's layering, checked: which kernel subsystem (top-level module of
//! `kernel/src`) uses which, read from the source, and a refusal of any import cycle between
//! subsystems or any kernel file over the size limit. `cargo xtask test` runs it as the
//! counted host check `kernel-layers`, so a change that makes a lower layer import a higher one fails CI with the cycle
//! and the files that close it.
//!
//! What counts as a use: a `crate::NAME` path, a `use crate::{NAME, ...}` group, and the
//! kernel's exported macros (`info!`, `warn!`, `kprint!`, `kprintln!` are `log`'s;
//! `linker_symbol!` is `arch`'s). Modules are found as rustc finds them, from `main.rs`
//! through `mod NAME;` declarations, `#[path = "..."]` included: a file belongs to the
//! subsystem whose module tree includes it (arch/aarch64/trampoline.rs is the CPU half of
//! `domain`, so it counts as `domain`). `main.rs`, the composition root, may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// No kernel source file may grow past this many lines.
pub const MAX_FILE_LINES: usize = 550;

/// Macros exported at the crate root, and the subsystem that defines each.
const MACROS: &[(&str, &str)] = &[
    ("info", "log"),
    ("warn", "log"),
    ("kprint", "log"),
    ("kprintln", "log"),
    ("linker_symbol", "arch"),
];

/// Every source file of the crate rooted at `main`, with its module path.
pub fn modules(main: &Path) -> Result<Vec<(PathBuf, Vec<String>)>, String> {
    let mut out = Vec::new();
    visit(main, Vec::new(), true, &mut out)?;
    Ok(out)
}

fn visit(file: &Path, path: Vec<String>, owns_dir: bool, out: &mut Vec<(PathBuf, Vec<String>)>) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let here = file.parent().unwrap_or(Path::new("."));
    let children_dir = if owns_dir {
        here.to_path_buf()
    } else {
        here.join(file.file_stem().unwrap_or_default())
    };
    let mut path_attr: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#[path = \"") {
            path_attr = rest.split('"').next().map(String::from);
            continue;
        }
        if line.starts_with("#[") {
            continue;
        }
        let decl = line.strip_prefix("pub ").or_else(|| line.strip_prefix("pub(crate) ")).unwrap_or(line);
        let name = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';'));
        match name {
            Some(name) if name.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                let mut child = path.clone();
                child.push(name.to_string());
                match path_attr.take() {
                    Some(p) => visit(&here.join(p), child, false, out)?,
                    None => {
                        let flat = children_dir.join(format!("{name}.rs"));
                        if flat.exists() {
                            visit(&flat, child, false, out)?;
                        } else {
                            visit(&children_dir.join(name).join("mod.rs"), child, true, out)?;
                        }
                    }
                }
            }
            _ => path_attr = None,
        }
    }
    out.push((file.to_path_buf(), path));
    Ok(())
}

/// The subsystems `text` uses.
pub fn uses(text: &str) -> BTreeSet<String> {
    let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            for item in group.split('}').next().unwrap_or("").split(',') {
                out.insert(ident(item.trim()));
            }
        } else {
            out.insert(ident(rest));
        }
    }
    for (name, owner) in MACROS {
        let called = code.match_indices(&format!("{name}!")).any(|(i, _)| {
            let before = code[..i].chars().last();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
        });
        if called || out.remove(*name) {
            out.insert(owner.to_string());
        }
    }
    out.remove("");
    out
}

/// Subsystem → (used subsystem → the files that use it).
pub type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

pub fn graph(src: &Path) -> Result<Graph, String> {
    let mut g = Graph::new();
    for (file, path) in modules(&src.join("main.rs"))? {
        let Some(sub) = path.first() else { continue };
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let entry = g.entry(sub.clone()).or_default();
        let shown = file.strip_prefix(src).unwrap_or(&file).display().to_string();
        for used in uses(&text).into_iter().filter(|u| u != sub) {
            entry.entry(used).or_default().insert(shown.clone());
        }
    }
    Ok(g)
}

/// The import cycles of `g`: its strongly connected components of more than one subsystem.
pub fn cycles(g: &Graph) -> Vec<Vec<String>> {
    // Kosaraju: finish order on the graph, then components on the reversed graph.
    let nodes: BTreeSet<&String> = g.keys().chain(g.values().flat_map(|m| m.keys())).collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn finish<'a>(n: &'a String, g: &'a Graph, seen: &mut BTreeSet<&'a String>, order: &mut Vec<&'a String>) {
        if !seen.insert(n) {
            return;
        }
        for m in g.get(n).into_iter().flat_map(|e| e.keys()) {
            finish(m, g, seen, order);
        }
        order.push(n);
    }
    for n in &nodes {
        finish(n, g, &mut seen, &mut order);
    }
    let mut reversed: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (from, to) in g {
        for t in to.keys() {
            reversed.entry(t).or_default().push(from);
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.into_iter().rev() {
        if assigned.contains(n) {
            continue;
        }
        let mut component = Vec::new();
        let mut stack = vec![n];
        while let Some(x) = stack.pop() {
            if assigned.insert(x) {
                component.push(x.clone());
                stack.extend(reversed.get(x).into_iter().flatten().copied());
            }
        }
        if component.len() > 1 {
            component.sort();
            out.push(component);
        }
    }
    out
}

/// Refuses cycles between kernel subsystems (naming the files that close them) and
/// over-long kernel files.
pub fn check(src: &Path) -> Result<(), String> {
    let g = graph(src)?;
    let mut problems = Vec::new();
    for cycle in cycles(&g) {
        let mut why = format!("import cycle between kernel subsystems {}:", cycle.join(", "));
        for from in &cycle {
            for (to, files) in g.get(from).into_iter().flatten().filter(|(to, _)| cycle.contains(to)) {
                why += &format!("\n  {from} -> {to} in {}", files.iter().cloned().collect::<Vec<_>>().join(", "));
            }
        }
        problems.push(why);
    }
    for (file, _) in modules(&src.join("main.rs"))? {
        let lines = std::fs::read_to_string(&file).map_err(|e| e.to_string())?.lines().count();
        if lines > MAX_FILE_LINES {
            problems.push(format!("{} has {lines} lines (at most {MAX_FILE_LINES})", file.display()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_are_read_from_paths_groups_and_macros() {
        let text = "use crate::sync::IrqLock;\nuse crate::{info, memory::Region};\n// crate::domain in a comment\nfn f() { crate::sched::yield_now(); linker_symbol!(x); }";
        let u: Vec<String> = uses(text).into_iter().collect();
        assert_eq!(u, ["arch", "log", "memory", "sched", "sync"]);
    }

    #[test]
    fn a_cycle_is_found_and_a_chain_is_not() {
        let edge = |g: &mut Graph, a: &str, b: &str| {
            g.entry(a.into()).or_default().entry(b.into()).or_default().insert(format!("{a}.rs"));
        };
        let mut g = Graph::new();
        edge(&mut g, "sched", "memory");
        edge(&mut g, "memory", "sync");
        assert!(cycles(&g).is_empty());
        edge(&mut g, "sync", "sched");
        assert_eq!(cycles(&g), vec![vec!["memory".to_string(), "sched".into(), "sync".into()]]);
    }
}
