//! Boot: registers the kernel as domain 0 (exporting `Kernel`), then verifies every initrd
//! envelope and starts the domains, providers before their importers. The first valid entry
//! of each name boots; later ones are kept for hot swaps. Every refusal is one `rejected`
//! log line.

use super::lifecycle::{reject, start};
use super::registry::registry;
use super::verify::verify;
use super::{recovery, KERNEL};
use crate::devicetree::Device;
use crate::{info, warn};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// A verified initrd entry waiting for its imports to be served.
struct Pending {
    domain: loader::VerifiedDomain<'static>,
    verify_cost: u64,
    entry: &'static str,
}

/// Starts the domain layer and every domain in `initrd`. `uart` is the console UART the
/// kernel uses (granted as `arm,pl011` when the device tree names none).
pub fn boot(initrd: Option<&'static [u8]>, uart: Option<Device>) {
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
    let Some(bytes) = initrd else { return };
    let archive = match initrd::Archive::parse(bytes) {
        Ok(a) => a,
        Err(e) => {
            warn!("initrd: rejected: {e}");
            return;
        }
    };
    registry().set_initrd(bytes);
    let mut pending: Vec<Pending> = Vec::new();
    for entry in archive.entries() {
        let stem = entry.name.strip_suffix(".qvd").unwrap_or(entry.name);
        match verify(entry.data) {
            Err(e) => reject(stem, &e),
            Ok((v, _)) if pending.iter().any(|p| p.domain.manifest.name == v.manifest.name) => {
                info!("initrd: {} is {} {}, kept for swapping in", entry.name, v.manifest.name, v.manifest.version)
            }
            Ok((v, _)) if v.manifest.name == "kernel" => reject(stem, &"the name \"kernel\" is reserved"),
            Ok((domain, verify_cost)) => pending.push(Pending {
                domain,
                verify_cost,
                entry: entry.name,
            }),
        }
    }
    // A domain starts once every import it declares is exported (with the same hash) by
    // the kernel or a started domain.
    let served = |p: &Pending| p.domain.manifest.imports.iter().all(|i| registry().serves(&i.name, &i.hash));
    while let Some(i) = pending.iter().position(served) {
        let p = pending.remove(i);
        if let Err(why) = start(&p.domain, p.verify_cost, p.entry) {
            reject(&p.domain.manifest.name, &why);
        }
    }
    for p in pending {
        let missing = p.domain.manifest.imports.iter().find(|i| !registry().serves(&i.name, &i.hash));
        let name = missing.map_or("", |i| i.name.as_str());
        reject(
            &p.domain.manifest.name,
            &alloc::format!("imports {name}, which no running domain exports with that interface hash"),
        );
    }
}
