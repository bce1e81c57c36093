//! `cargo xtask new-domain NAME [--export IFACE]... [--import IFACE]...`: a new domain
//! crate from a template (safe Rust, state hooks from the first version), added to the
//! domain workspace and to every board recipe, with any new interface declared in the IDL
//! and a swap-state type for it. Everything it writes is listed; nothing is overwritten.

use crate::board::Board;
use crate::paths::{self, domain_dir, domains_dir};
use qvq_sign::interfaces::call::MethodInfo;
use std::fmt::Write as _;
use std::path::PathBuf;

/// What the user asked for.
pub struct Request {
    pub name: String,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

/// An export: an interface the IDL has (its methods get stubs) or a new one (declared with
/// a counter's two methods, which the template implements).
enum Export {
    Known(&'static [MethodInfo]),
    New,
}

/// Makes the domain; prints each file it wrote or changed. Files are written only after
/// every check passed.
pub fn new_domain(req: &Request) -> Result<(), String> {
    check_domain_name(&req.name)?;
    let dir = domain_dir(&req.name);
    if dir.exists() {
        return Err(format!("{} exists already; pick another name or remove it", dir.display()));
    }
    let mut exports = Vec::new();
    for e in &req.exports {
        exports.push((e.as_str(), export_kind(e)?));
    }
    for i in &req.imports {
        if idl_methods(i).is_none() {
            return Err(format!(
                "--import {i}: no interface {i} in domains/trusted/interfaces/src/idl.rs (`help call` in the shell lists them; a new interface is made with --export by the domain that serves it)"
            ));
        }
        if req.exports.contains(i) {
            return Err(format!("{i} is both exported and imported; a domain does not call itself"));
        }
    }
    let state = state_type(&req.name);
    let idl = domains_dir().join("trusted/interfaces/src/idl.rs");
    let states = domains_dir().join("trusted/interfaces/src/types.rs");
    if std::fs::read_to_string(&states)
        .map_err(|e| e.to_string())?
        .contains(&format!("pub struct {state} "))
    {
        return Err(format!("the swap-state type {state} exists already in {}", states.display()));
    }

    // The edits to shared files, prepared in memory first.
    let mut idl_text = std::fs::read_to_string(&idl).map_err(|e| format!("cannot read {}: {e}", idl.display()))?;
    for (iface, kind) in &exports {
        if matches!(kind, Export::New) {
            idl_text = add_interface(&idl_text, iface, &req.name)?;
        }
    }
    let members = domains_dir().join("Cargo.toml");
    let members_text = add_member(&std::fs::read_to_string(&members).map_err(|e| e.to_string())?, &req.name)?;
    let mut recipes = Vec::new();
    for board in [Board::Virt, Board::Rpi3] {
        let path = paths::recipe(board);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        recipes.push((path, add_to_recipe(&text, &req.name)));
    }

    let mut written: Vec<PathBuf> = Vec::new();
    let mut write = |path: PathBuf, text: String| -> Result<(), String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
        Ok(())
    };
    write(dir.join("Cargo.toml"), cargo_toml(&req.name))?;
    write(dir.join("domain.toml"), domain_toml(req))?;
    write(dir.join("src/main.rs"), main_rs(req, &exports, &state))?;
    write(idl.clone(), idl_text)?;
    let mut states_text = std::fs::read_to_string(&states).map_err(|e| e.to_string())?;
    let _ = write!(
        states_text,
        "\nswap_state! {{\n    /// The {} domain's state, handed to its next version in a hot swap (made by\n    /// `cargo xtask new-domain`; add fields as the domain needs them).\n    pub struct {state} {{\n        pub count: u64,\n    }}\n}}\n",
        req.name
    );
    write(states, states_text)?;
    write(members, members_text)?;
    for (path, text) in recipes {
        write(path, text)?;
    }
    update_lock()?;
    // The template's imports in rustfmt's order (so `cargo fmt --check` stays clean).
    let _ = std::process::Command::new("rustfmt")
        .args(["--edition", "2021"])
        .arg(dir.join("src/main.rs"))
        .status();
    println!("xtask: made domain {} :", req.name);
    let root = paths::workspace_root();
    for p in &written {
        println!("  {}", p.strip_prefix(&root).unwrap_or(p).display());
    }
    println!("  domains/Cargo.lock (the new member)");
    println!(
        "next: `cargo xtask run`, then at the qvq$ prompt `help call`{}; domains/README.md, \"Write a domain\", goes on from here",
        exports
            .iter()
            .find(|(_, k)| matches!(k, Export::New))
            .map(|(i, _)| format!(" and `call {i} add 5`"))
            .unwrap_or_default()
    );
    Ok(())
}

/// Domain names as the manifest allows them, starting with a letter (they name a crate).
fn check_domain_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= qvq_sign::loader::manifest::MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(format!(
            "domain name {name:?}: use 1-{} characters of a-z, 0-9, - and _, starting with a letter",
            qvq_sign::loader::manifest::MAX_NAME
        ));
    }
    Ok(())
}

fn idl_methods(iface: &str) -> Option<&'static [MethodInfo]> {
    qvq_sign::interfaces::CALLABLE.iter().find(|i| i.name == iface).map(|i| i.methods)
}

fn export_kind(iface: &str) -> Result<Export, String> {
    if let Some(m) = idl_methods(iface) {
        return Ok(Export::Known(m));
    }
    let ok = iface.starts_with(|c: char| c.is_ascii_uppercase())
        && iface.len() <= qvq_sign::loader::manifest::MAX_INTERFACE_NAME
        && iface.chars().all(|c| c.is_ascii_alphanumeric());
    if !ok {
        return Err(format!("interface name {iface:?}: use CamelCase letters and digits, starting with a capital"));
    }
    if qvq_sign::interfaces::CALLABLE.iter().any(|i| module_name(i.name) == module_name(iface)) {
        return Err(format!(
            "interface {iface} would clash with an existing one's module name {}",
            module_name(iface)
        ));
    }
    Ok(Export::New)
}

/// `CounterBank` -> `counter_bank`.
fn module_name(iface: &str) -> String {
    let mut m = String::new();
    for (i, c) in iface.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            m.push('_');
        }
        m.push(c.to_ascii_lowercase());
    }
    m
}

/// `my-counter` -> `MyCounterState`.
fn state_type(domain: &str) -> String {
    let mut s = String::new();
    for part in domain.split(['-', '_']).filter(|p| !p.is_empty()) {
        let mut c = part.chars();
        if let Some(first) = c.next() {
            s.push(first.to_ascii_uppercase());
            s.push_str(c.as_str());
        }
    }
    s + "State"
}

/// The IDL with a new interface block before the `interfaces!` list's closing brace.
fn add_interface(idl: &str, iface: &str, domain: &str) -> Result<String, String> {
    let close = idl
        .trim_end()
        .rfind('}')
        .filter(|_| idl.contains("interfaces! {"))
        .ok_or("domains/trusted/interfaces/src/idl.rs does not end with the `interfaces! { ... }` list; add the interface there by hand")?;
    let block = format!(
        "\n    /// The {domain} domain's interface (made by `cargo xtask new-domain`: a counter to start\n    /// from; change the methods as you need, before anything depends on the hash).\n    pub mod {}: {iface} {{\n        /// The count.\n        fn get(&self) -> RpcResult<u64>;\n        /// Adds `n` to the count (wrapping); returns the new count.\n        fn add(&self, n: u64) -> RpcResult<u64>;\n    }}\n",
        module_name(iface)
    );
    Ok(format!("{}{block}{}", &idl[..close], &idl[close..]))
}

/// domains/Cargo.toml with `name` added to `members`.
fn add_member(cargo: &str, name: &str) -> Result<String, String> {
    let start = cargo.find("members = [").ok_or("domains/Cargo.toml has no `members = [` list")?;
    let end = start + cargo[start..].find(']').ok_or("domains/Cargo.toml: `members` is not closed")?;
    let list = &cargo[start..end];
    if list.contains(&format!("\"{name}\"")) {
        return Err(format!("domains/Cargo.toml lists {name} already"));
    }
    let sep = if list.trim_end().ends_with('[') { "" } else { ", " };
    Ok(format!("{}{sep}\"{name}\"{}", cargo[..end].trim_end(), &cargo[end..]))
}

/// The recipe with a `[[domain]]` for `name`, after the domains that boot (before the
/// further versions kept for swaps).
fn add_to_recipe(recipe: &str, name: &str) -> String {
    let entry = format!("[[domain]]\nname = \"{name}\"\nrestart = \"restart\"\n\n");
    // The first entry that carries a `version`: a kept version, after which ours would be
    // read as part of that section.
    let mut at = recipe.len();
    let mut offset = 0;
    let mut block_start = None;
    for line in recipe.split_inclusive('\n') {
        let t = line.trim();
        if t == "[[domain]]" {
            block_start = Some(offset);
        } else if t.starts_with("version") && block_start.is_some() {
            at = block_start.unwrap_or(at);
            // Keep that section's leading comment with it.
            at = recipe[..at]
                .trim_end()
                .rfind("\n\n")
                .map(|p| p + 2)
                .filter(|p| recipe[*p..at].trim_start().starts_with('#'))
                .unwrap_or(at);
            break;
        }
        offset += line.len();
    }
    if at == recipe.len() {
        let sep = if recipe.ends_with("\n\n") || recipe.is_empty() { "" } else { "\n" };
        return format!("{recipe}{sep}{}", entry.trim_end_matches('\n').to_string() + "\n");
    }
    format!("{}{entry}{}", &recipe[..at], &recipe[at..])
}

/// Records the new member in domains/Cargo.lock (the domain build is `--locked`); no
/// dependency changes version.
fn update_lock() -> Result<(), String> {
    // A resolve without `--locked` writes the lock; offline, so nothing is fetched. Only
    // the kernel target's packages: without the filter, cargo wants every platform's
    // (winapi-util, for one), which a fresh machine has never downloaded.
    let out = crate::setup::cargo()
        .current_dir(domains_dir())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            crate::setup::KERNEL_TARGET,
        ])
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("updating domains/Cargo.lock failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[[bin]]
name = "{name}"
path = "src/main.rs"
test = false
bench = false

[dependencies]
qvq-runtime = {{ path = "../trusted/runtime" }}

[lints]
workspace = true
"#
    )
}

fn domain_toml(req: &Request) -> String {
    let list = |v: &[String]| v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    format!(
        r#"# The {name} domain (made by `cargo xtask new-domain`). Fields: loader/FORMAT.md,
# "domain.toml"; device grants and the restart policy come from the board recipes.
name = "{name}"
version = "0.1.0"
# Bytes of private heap (a multiple of 4096) and of stack (a multiple of 4096).
heap_limit = 65536
stack_size = 16384
exports = [{exports}]
imports = [{imports}]
"#,
        name = req.name,
        exports = list(&req.exports),
        imports = list(&req.imports)
    )
}

/// The crate's source: the object, its interfaces (stubs for an existing interface, the
/// counter for a new one), the state hooks, and `init`.
fn main_rs(req: &Request, exports: &[(&str, Export)], state: &str) -> String {
    let name = &req.name;
    let object = state_type(name).trim_end_matches("State").to_string() + "Domain";
    let stat = name.to_ascii_uppercase().replace('-', "_");
    let stubs = exports.iter().any(|(_, k)| matches!(k, Export::Known(_)));
    let mut uses = vec![
        // Stubs name the interface's own types (`RRef`, `BlockInfo`, ...): all of them.
        format!("runtime::interfaces::{}", if stubs { "*" } else { "RpcResult" }),
        format!("runtime::interfaces::{state}"),
        "runtime::Mutex".to_string(),
    ];
    let mut impls = String::new();
    let mut exported = String::new();
    for (iface, kind) in exports {
        let module = module_name(iface);
        uses.push(format!("runtime::interfaces::{module}::{{self, {iface}}}"));
        let _ = writeln!(impls, "\nimpl {iface} for {object} {{");
        match kind {
            Export::New => impls.push_str(
                "    fn get(&self) -> RpcResult<u64> {\n        Ok(self.count.with(|c| *c))\n    }\n\n    fn add(&self, n: u64) -> RpcResult<u64> {\n        Ok(self.count.with(|c| {\n            *c = c.wrapping_add(n);\n            *c\n        }))\n    }\n",
            ),
            Export::Known(methods) => {
                for m in *methods {
                    let args: String = m.args.iter().map(|(a, t)| format!(", {a}: {t}")).collect();
                    let names: Vec<&str> = m.args.iter().map(|(a, _)| *a).collect();
                    let _ = writeln!(impls, "    fn {}(&self{args}) -> RpcResult<{}> {{", m.name, m.result);
                    match names.as_slice() {
                        [] => {}
                        [one] => {
                            let _ = writeln!(impls, "        let _ = {one};");
                        }
                        many => {
                            let _ = writeln!(impls, "        let _ = ({});", many.join(", "));
                        }
                    }
                    impls.push_str("        // Not written yet: refuse rather than answer wrongly.\n        Err(RpcError::Refused)\n    }\n");
                }
            }
        }
        impls.push_str("}\n");
        let _ = writeln!(exported, "    {module}::export(&{stat}).map_err(|_| \"cannot export {iface}\")?;");
    }
    let mut imported = String::new();
    for iface in &req.imports {
        let module = module_name(iface);
        uses.push(format!("runtime::interfaces::{module}"));
        let _ = writeln!(
            imported,
            "    // Calls go through this proxy; `{module}::import()` again gives the same one.\n    let _{module} = {module}::import().map_err(|_| \"cannot import {iface}\")?;"
        );
    }
    uses.sort();
    let uses: String = uses.iter().map(|u| format!("use {u};\n")).collect();
    format!(
        r#"//! The {name} domain (made by `cargo xtask new-domain`; domains/README.md, "Write a
//! domain", explains each part).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

{uses}
/// The domain's one object: what its interfaces serve, and the state it keeps.
struct {object} {{
    count: Mutex<u64>,
}}

static {stat}: {object} = {object} {{ count: Mutex::new(0) }};
{impls}
fn init() -> Result<(), &'static str> {{
    // Hands the count to the next version in a hot swap, and takes it from the previous
    // one. Declared from the first version: a swap between a version that keeps state and
    // one that does not is refused unless the operator asks for a fresh start.
    runtime::swap::keep_state::<{state}>(
        || {state} {{
            count: {stat}.count.with(|c| *c),
        }},
        |s| {{
            {stat}.count.with(|c| *c = s.count);
            Ok(())
        }},
    )
    .map_err(|_| "cannot declare the swap state")?;
{imported}{exported}    runtime::println!("{name} {{}}.{{}}.{{}} ready", runtime::version().0, runtime::version().1, runtime::version().2);
    Ok(())
}}

runtime::entry!(init);
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_modules_and_state_types() {
        assert_eq!(module_name("CounterBank"), "counter_bank");
        assert_eq!(state_type("my-counter"), "MyCounterState");
        assert!(check_domain_name("counter").is_ok());
        assert!(check_domain_name("Counter").is_err());
        assert!(check_domain_name("9lives").is_err());
        assert!(export_kind("lower").is_err());
        assert!(matches!(export_kind("Hello"), Ok(Export::Known(_))));
        assert!(matches!(export_kind("Counter"), Ok(Export::New)));
    }

    #[test]
    fn members_get_the_new_crate_once() {
        let c = "[workspace]\nmembers = [\"a\", \"b\"]\n";
        assert_eq!(add_member(c, "c").unwrap(), "[workspace]\nmembers = [\"a\", \"b\", \"c\"]\n");
        assert!(add_member(c, "a").is_err());
    }

    #[test]
    fn the_recipe_entry_goes_before_the_kept_versions() {
        let r = "host_link = true\n\n[[domain]]\nname = \"shell\"\n\n# Further versions\n[[domain]]\nname = \"hello\"\nversion = \"0.2.0\"\n";
        let out = add_to_recipe(r, "counter");
        let at = out.find("name = \"counter\"").unwrap();
        assert!(at < out.find("# Further versions").unwrap(), "{out}");
        assert!(out.find("name = \"shell\"").unwrap() < at, "{out}");
        let plain = add_to_recipe("[[domain]]\nname = \"a\"\n", "b");
        assert_eq!(plain, "[[domain]]\nname = \"a\"\n\n[[domain]]\nname = \"b\"\nrestart = \"restart\"\n");
    }

    #[test]
    fn a_new_interface_goes_inside_the_list() {
        let idl = "use crate::*;\n\ninterfaces! {\n    pub mod a: A {\n    }\n}\n";
        let out = add_interface(idl, "Counter", "counter").unwrap();
        assert!(out.trim_end().ends_with('}'));
        let inner = out.find("pub mod counter: Counter").unwrap();
        assert!(inner < out.trim_end().rfind('}').unwrap());
        assert!(add_interface("no list here\n", "Counter", "c").is_err());
    }
}
