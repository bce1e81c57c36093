//! Starting a domain that is not running from a signed envelope a domain handed over
//! (`Kernel::load_envelope`: the shell's `load disk:PATH`). The envelope is verified and
//! admitted exactly as an initrd entry is at boot (signature, key policy, rollback floor,
//! the reserved name), and the running system's rules hold: one domain per name, one
//! exporter per interface, and every import served.

use super::lifecycle::start_owning;
use super::policy;
use super::registry::{registry, State};
use super::swap::keep_pushed;
use super::verify::verify;
use alloc::format;
use alloc::string::{String, ToString};

/// Starts the domain in `bytes`, which came `from` (for the log); the log line on success
/// or why not.
pub fn load(bytes: &[u8], from: &str) -> Result<String, String> {
    // One swap or load at a time: the checks below and the install must not interleave
    // with another's.
    super::swap::exclusively(|| load_exclusive(bytes, from))
        .unwrap_or_else(|| Err(format!("load {from} refused: another swap or load is in progress; try again")))
}

fn load_exclusive(bytes: &[u8], from: &str) -> Result<String, String> {
    // Declared before `v`, so dropped after it: `v` borrows these frames.
    let (copy, frames) = keep_pushed(bytes).map_err(|e| format!("load {from} refused: {e}"))?;
    let (v, verify_cost) = verify(copy).map_err(|e| format!("load {from} refused: {e}"))?;
    let m = &v.manifest;
    let refuse = |why: String| Err(format!("load {from} refused: {} {}: {why}", m.name, m.version));
    if m.name == "kernel" {
        return refuse("the name \"kernel\" is reserved".to_string());
    }
    if let Err(e) = policy::admit(&v) {
        return refuse(e.to_string());
    }
    {
        let r = registry();
        // A version rejected at boot does not count: loading a good one is the remedy.
        if let Some(d) = r
            .domains()
            .find(|d| d.name() == m.name && !matches!(d.state(), State::Retired | State::Rejected))
        {
            return refuse(format!("a domain of that name is {} already (use `swap {} {from}`)", d.state().name(), m.name));
        }
        if let Some(e) = m.exports.iter().find(|e| r.exporter_of(&e.name).is_some()) {
            return refuse(format!("it exports {}, which a running domain exports already", e.name));
        }
        if let Some(i) = m.imports.iter().find(|i| !r.serves(&i.name, &i.hash)) {
            return refuse(format!("it imports {}, which no running domain exports with that hash", i.name));
        }
    }
    let done = format!("loaded {} {} from {from}", m.name, m.version);
    // The record owns the frames from its start (a restart reloads from them); if it never
    // came to exist they come back, and go only after `v`, which borrows them.
    match start_owning(&v, verify_cost, from, Some(frames)) {
        Ok(_) => Ok(done),
        Err((e, back)) => {
            let why = format!("load {from} refused: {} {}: {e}", m.name, m.version);
            drop(v);
            drop(back);
            Err(why)
        }
    }
}
