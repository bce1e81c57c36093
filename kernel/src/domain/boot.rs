//! Boot: registers the kernel as domain 0 (exporting `Kernel`), then verifies and admits
//! (policy.rs) the initrd envelope of each name that boots and starts the domains,
//! providers before their importers. Which version of a name boots does not depend on the
//! initrd's order: the entry named `NAME.qvd` (the board recipe's pin) if it is valid, else
//! the highest valid version (of equal ones, the entry name that sorts first); the others
//! are kept for hot swaps, and verified only when a swap asks for one. Each interface has one exporter: names
//! that declare the same export all stay down. Every refusal is one `rejected` log line.

use super::lifecycle::{reject, start};
use super::registry::registry;
use super::swap::peek;
use super::verify::verify;
use super::{recovery, KERNEL};
use crate::devicetree::Device;
use crate::{info, warn};
use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use loader::Manifest;

/// A verified initrd entry waiting for its imports to be served.
struct Pending {
    domain: loader::VerifiedDomain<'static>,
    verify_cost: u64,
    entry: &'static str,
}

/// Starts the domain layer and every domain in `initrd` (the archive as `main` validated
/// it). `uart` is the console UART the kernel uses (granted as `arm,pl011` when the device
/// tree names none).
pub fn boot(initrd: Option<initrd::Archive<'static>>, uart: Option<Device>) {
    registry().add_kernel(uart);
    if let Some(k) = registry().get(KERNEL) {
        super::quota::set(KERNEL, k.manifest());
    }
    if !interfaces::set_services(Box::leak(Box::new(super::services::table(KERNEL, 0, 0, [0, 1, 0])))) {
        warn!("domains: the kernel's own services table was set twice; keeping the first");
    }
    if let Err(e) = super::kernel_iface::export() {
        warn!("domains: the kernel cannot export its interface ({e})");
    }
    if let Err(e) = crate::sched::spawn("restarter", crate::sched::Priority::High, recovery::restarter) {
        warn!("domains: no restarter thread ({e}); crashed domains stay down");
    }
    let Some(archive) = initrd else { return };
    registry().set_initrd(archive);
    let mut pending = choose(&archive);
    refuse_contested_exports(&mut pending);
    // A domain starts once every import it declares is exported (with the same hash) by
    // the kernel or a started domain. An import that no domain still waiting exports does
    // not hold it back: it starts without it (its `import` of it fails until a domain
    // exports it), so one missing driver does not take down every domain that could use
    // it (the shell imports whatever its board's recipe exports).
    let served = |p: &Pending| p.domain.manifest.imports.iter().all(|i| registry().serves(&i.name, &i.hash));
    loop {
        while let Some(i) = pending.iter().position(served) {
            let p = pending.remove(i);
            if let Err(why) = start(&p.domain, p.verify_cost, p.entry) {
                reject(&p.domain.manifest.name, &why);
            }
        }
        let Some(i) = pending.iter().position(|p| unserved(p).all(|i| !pending.iter().any(|q| q.exports(i)))) else {
            break;
        };
        let p = pending.remove(i);
        let missing: alloc::vec::Vec<&str> = unserved(&p).map(|i| i.name.as_str()).collect();
        warn!(
            "domain {} starts without {}: no domain exports it with that interface hash",
            p.domain.manifest.name,
            missing.join(", ")
        );
        if let Err(why) = start(&p.domain, p.verify_cost, p.entry) {
            reject(&p.domain.manifest.name, &why);
        }
    }
    // What is left waits on domains that wait on it: an import cycle.
    for p in pending {
        let missing = p.domain.manifest.imports.iter().find(|i| !registry().serves(&i.name, &i.hash));
        let name = missing.map_or("", |i| i.name.as_str());
        reject(
            &p.domain.manifest.name,
            &alloc::format!("imports {name}, which only a domain waiting for it exports (an import cycle)"),
        );
    }
}

/// The imports of `p` that no started domain (nor the kernel) exports.
fn unserved(p: &Pending) -> impl Iterator<Item = &loader::manifest::InterfaceRef> {
    p.domain.manifest.imports.iter().filter(|i| !registry().serves(&i.name, &i.hash))
}

impl Pending {
    /// True if this domain will export `i` (same name and hash) once it starts.
    fn exports(&self, i: &loader::manifest::InterfaceRef) -> bool {
        self.domain.manifest.exports.iter().any(|e| e.name == i.name && e.hash == i.hash)
    }
}

/// Initrd entry `entry` verified and admitted, or why not.
fn admitted(entry: &'static str, data: &'static [u8]) -> Result<Pending, alloc::string::String> {
    let (domain, verify_cost) = verify(data).map_err(|e| format!("{e}"))?;
    if domain.manifest.name == "kernel" {
        return Err("the name \"kernel\" is reserved".into());
    }
    super::policy::admit(&domain).map_err(|e| format!("{e}"))?;
    Ok(Pending { domain, verify_cost, entry })
}

/// Returns, per name, the entry that boots, verified and admitted. Which one that is
/// follows from what each entry's signed manifest says (pinned, then the higher version,
/// then the entry name that sorts first): candidates are verified in that order, and the
/// first that passes boots, so the outcome is the same as verifying every entry and taking
/// the best valid one. The entries after it are kept for hot swaps without being verified
/// now (a swap verifies and admits its candidate in full, swap.rs); each says so in the log.
/// An entry whose manifest cannot even be read is verified at once, for its refusal line.
fn choose(archive: &initrd::Archive<'static>) -> Vec<Pending> {
    let entries: Vec<(initrd::Entry<'static>, Option<Manifest>)> = archive.entries().map(|e| (e, peek(e.data))).collect();
    let mut decided: Vec<&str> = Vec::new();
    let mut chosen: Vec<Pending> = Vec::new();
    for (i, (entry, manifest)) in entries.iter().enumerate() {
        let Some(m) = manifest else {
            let stem = entry.name.strip_suffix(".qvd").unwrap_or(entry.name);
            match admitted(entry.name, entry.data) {
                Err(why) => reject(stem, &why),
                // Cannot happen (verification reads the same manifest); never boot it.
                Ok(_) => reject(stem, &"its manifest could not be read before verification"),
            }
            continue;
        };
        if decided.contains(&m.name.as_str()) {
            continue;
        }
        decided.push(&m.name);
        // This name's entries, the preferred first.
        let mut group: Vec<(&'static str, &'static [u8], &Manifest)> = entries[i..]
            .iter()
            .filter_map(|(e, pm)| pm.as_ref().filter(|pm| pm.name == m.name).map(|pm| (e.name, e.data, pm)))
            .collect();
        let pinned = |entry: &str, name: &str| entry.strip_suffix(".qvd") == Some(name);
        group.sort_by(|a, b| {
            pinned(b.0, &b.2.name)
                .cmp(&pinned(a.0, &a.2.name))
                .then_with(|| b.2.version.cmp(&a.2.version))
                .then_with(|| a.0.cmp(b.0))
        });
        let mut rest = group.into_iter();
        for (entry, data, peeked) in rest.by_ref() {
            let stem = entry.strip_suffix(".qvd").unwrap_or(entry);
            match admitted(entry, data) {
                // The verified manifest is the one peeked at (the same bytes); checked anyway.
                Ok(p) if p.domain.manifest.name == peeked.name && p.domain.manifest.version == peeked.version => {
                    chosen.push(p);
                    break;
                }
                Ok(_) => reject(stem, &"its verified manifest differs from the one read before verification"),
                Err(why) => reject(stem, &why),
            }
        }
        for (entry, _, peeked) in rest {
            info!(
                "initrd: {entry} is {} {}, kept for swapping in (not verified yet: verified when swapped in)",
                peeked.name, peeked.version
            );
        }
    }
    chosen
}

/// Removes (with a `rejected` line each) every domain that declares an export another
/// domain also declares: an interface has one exporter, chosen by signed policy, never
/// by initrd order.
fn refuse_contested_exports(pending: &mut Vec<Pending>) {
    let kernel_exports: Vec<alloc::string::String> = registry()
        .get(KERNEL)
        .map(|k| k.manifest().exports.iter().map(|e| e.name.clone()).collect())
        .unwrap_or_default();
    let rival = |p: &Pending, all: &[Pending]| -> Option<(alloc::string::String, alloc::string::String)> {
        p.domain.manifest.exports.iter().find_map(|e| {
            if kernel_exports.contains(&e.name) {
                return Some((e.name.clone(), "the kernel".into()));
            }
            all.iter()
                .find(|q| q.domain.manifest.name != p.domain.manifest.name && q.domain.manifest.exports.iter().any(|x| x.name == e.name))
                .map(|q| (e.name.clone(), q.domain.manifest.name.clone()))
        })
    };
    let contested: Vec<(usize, (alloc::string::String, alloc::string::String))> =
        pending.iter().enumerate().filter_map(|(i, p)| rival(p, pending).map(|r| (i, r))).collect();
    for (i, (iface, other)) in contested.iter().rev() {
        let p = pending.remove(*i);
        let outcome = if other == "the kernel" { "" } else { ", so neither starts" };
        reject(
            &p.domain.manifest.name,
            &format!("exports {iface}, which {other} also exports; each interface has one exporter{outcome}"),
        );
    }
}
