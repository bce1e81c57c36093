//! `versions NAME`: the version that runs (or the state of the domain's record), the
//! versions the initrd holds, and the ones a hot swap retired.

use super::registry::{registry, State};
use super::short;
use super::swap::peek;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

pub fn versions(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (initrd, running_source) = {
        let r = registry();
        let current = r.current(name).filter(|d| d.state() != State::Rejected);
        match current {
            Some(d) => out.push(format!(
                "{name}: {} {} from {} (domain {}, generation {}, key id {})",
                d.state().name(),
                d.manifest().version,
                d.source(),
                d.id(),
                d.generation(),
                short(d.key_id())
            )),
            None => out.push(format!("{name}: not running")),
        }
        (r.initrd(), current.map(|d| d.source().to_string()))
    };
    if let Some(archive) = initrd {
        for e in archive.entries() {
            let Some(m) = peek(e.data) else { continue };
            if m.name != name {
                continue;
            }
            let mark = if running_source.as_deref() == Some(e.name) { " (running)" } else { "" };
            out.push(format!("available: {} {}{mark}", e.name, m.version));
        }
    }
    for v in registry().retired_versions(name) {
        out.push(format!(
            "retired: {} from {} at {}.{:03} s",
            v.version,
            v.source,
            v.at_ns / 1_000_000_000,
            (v.at_ns / 1_000_000) % 1000
        ));
    }
    out
}
