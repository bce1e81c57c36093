//! A domain's life: started from a verified envelope (a new record, an instance, its
//! initialisation), and taken out of service (`retire`), with `reclaim` taking back
//! everything an instance held. Crash and restart are in recovery.rs, swaps in swap.rs.

use super::instance::{instantiate, run_init, Instance, StartError};
use super::registry::{registry, Domain, State};
use super::{continuation, events, image, pristine, rref, short, DomainId};
use crate::memory::FrameRange;
use crate::{info, warn};
use alloc::string::String;
use alloc::vec::Vec;
use loader::manifest::InterfaceRef;

/// Takes back what instance `inst` of `d` held and frees it: its interrupt routes, its
/// shared-heap blocks, then (dropping it) its heap, services table and image — or, with
/// `keep_image` (the domain may be restarted), all but its image, which is kept for the
/// restart (pristine.rs).
pub fn reclaim(d: DomainId, name: &str, inst: Instance, keep_image: bool) {
    let (image_kib, heap_kib) = (inst.image.size / 1024, inst.heap_bytes() / 1024);
    let mut irqs = 0;
    for g in &inst.grants {
        if let Some(n) = g.irq {
            if crate::irq::unregister_if_owner(n, d) {
                irqs += 1;
            }
        }
        g.wake_waiters();
    }
    let (blocks, bytes) = rref::free_all_owned_by(d);
    // Devices first: none may write a buffer once it is freed.
    super::grants::quiesce(&inst.grants);
    let (buffers, dma_bytes) = super::dma::free_all_owned_by(d);
    events::free_owned_by(d);
    let kept = if keep_image {
        // `None`: its mapping could not be changed, and it was freed.
        inst.into_kept().map(|kept| pristine::keep(d, kept)).is_some()
    } else {
        drop(inst);
        false
    };
    let image = if kept { "kept for its restart" } else { "freed" };
    info!(
        "domain {name} reclaimed: {heap_kib} KiB heap, {blocks} shared-heap blocks ({bytes} bytes), {buffers} DMA buffers ({dma_bytes} bytes), {irqs} interrupt routes; its {image_kib} KiB image {image}"
    );
}

/// Takes `id` out of service for good (a failed start or restart, a swapped-out or a
/// refused new version), in `state`: its exports, the slots it imported through, its
/// events, its instance and, once retired, its image.
pub fn retire(id: DomainId, state: State) {
    let retirement = registry().retire(id, state);
    // A held record may still be restarted (the shell's `restart`); a retired or rejected
    // one never is.
    let for_good = matches!(state, State::Retired | State::Rejected);
    if let Some(r) = retirement {
        if let Some(inst) = r.instance {
            reclaim(id, &r.name, inst, !for_good);
        }
        drop(r.pushed);
    }
    if for_good {
        pristine::forget(id);
    }
    events::wake_waiters(None);
}

/// A domain number for a new record: a retired record no thread is inside any more and
/// that owns no shared-heap block, or a new one. `None` when every number is in use.
pub fn allocate_id() -> Option<DomainId> {
    let retired = registry().retired_ids();
    for id in retired {
        if crate::sched::count_other_threads(|c, _| continuation::context_inside(c, id)) == 0 && rref::owned_by(id).0 == 0 {
            return Some(id);
        }
    }
    registry().next_new_id()
}

/// Why a domain from the initrd did not start.
#[derive(Debug)]
pub enum BootRefusal {
    TooManyDomains,
    Start(StartError),
}

impl core::fmt::Display for BootRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootRefusal::TooManyDomains => f.write_str("too many domains"),
            BootRefusal::Start(e) => write!(f, "{e}"),
        }
    }
}

fn interface_list(l: &[InterfaceRef]) -> String {
    if l.is_empty() {
        String::from("-")
    } else {
        l.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Starts verified domain `v` from `source` (an initrd entry, or where a loaded envelope
/// came from) as a new record: instance, log line, initialisation. A failed
/// initialisation retires the record as rejected. Returns the new record's number.
pub fn start(v: &loader::VerifiedDomain<'static>, verify_cost: u64, source: &str) -> Result<DomainId, BootRefusal> {
    start_owning(v, verify_cost, source, None).map_err(|(e, _)| e)
}

/// `start`, for a domain whose envelope bytes (which `v` borrows) live in `envelope`: the
/// record owns them from the moment it exists; if it never came to exist, they come back
/// with the refusal.
pub fn start_owning(
    v: &loader::VerifiedDomain<'static>,
    verify_cost: u64,
    source: &str,
    envelope: Option<FrameRange>,
) -> Result<DomainId, (BootRefusal, Option<FrameRange>)> {
    let m = &v.manifest;
    let envelope_kept = envelope.is_some();
    // A retired record's number is reused, as a swap does: loads would otherwise use up
    // the table for good.
    let Some(id) = allocate_id() else {
        return Err((BootRefusal::TooManyDomains, envelope));
    };
    let load_start = crate::arch::pmu::cycles();
    let inst = match instantiate(id, m, &v.elf, true) {
        Ok(inst) => inst,
        Err(e) => return Err((BootRefusal::Start(e), envelope)),
    };
    let load_cost = crate::arch::pmu::cycles() - load_start;
    info!(
        "domain {} {} verified (key id {}), loaded at {:#x}: {} bytes, segments {}, {} relocations, heap {} KiB",
        m.name,
        m.version,
        short(&v.key_id),
        inst.image.base,
        inst.image.size,
        image::describe_segments(&v.elf),
        v.elf.relocation_count(),
        m.heap_limit / 1024
    );
    {
        let mut r = registry();
        r.install(Domain::new(id, v, source, envelope, State::Running, 1, verify_cost));
        r.set_instance(id, inst, load_cost);
    }
    if let Err(why) = run_init(id, m) {
        // At boot the record stays, rejected, for `domains`; a load's failure is in its
        // answer and the log, and its record is reused (a red-team finding: repeated
        // failing loads filled the table with rejected records).
        retire(id, if envelope_kept { State::Retired } else { State::Rejected });
        return Err((BootRefusal::Start(why), None));
    }
    super::policy::raise_floor(m);
    info!(
        "domain {} started: exports {}; imports {}",
        m.name,
        interface_list(&m.exports),
        interface_list(&m.imports)
    );
    Ok(id)
}

/// The log line of a domain that was refused.
pub fn reject(name: &str, why: &dyn core::fmt::Display) {
    warn!("domain {name} rejected: {why}");
}
