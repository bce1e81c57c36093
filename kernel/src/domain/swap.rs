//! Hot swap: replace a running domain with a new signed version while its callers keep
//! calling.
//!
//! 1. *Prepare*, touching nothing of the old version: verify the new envelope exactly like
//!    a boot-time one; check it has the same name, a higher version (lower only with
//!    `allow_downgrade`; a revoked digest is refused by verification), the same exports
//!    with the same hashes, and imports that are served now; load it as a new domain
//!    record (`Preparing`: its exports are invisible, its interrupts not yet routed) and
//!    run its initialisation; check both versions name the same state type.
//! 2. *Window* (no log line, no allocation-heavy work): pause the old version's slots (new
//!    calls park at the gate), cancel its calls that wait for input, wait (bounded) for the
//!    calls in flight to return, mask its interrupts, hand its state over, route the
//!    interrupts to the new version, re-point the slots, resume. The window is measured in
//!    instructions (PMU cycles).
//! 3. *Retire* the old version: like a crash's reclamation, without the restart policy.
//!
//! A failure before the window's commit leaves the old version serving, untouched, and
//! the new one is retired.

use super::manager::{self, State, StateHooks, MANAGER};
use super::{call_into, DomainId};
use crate::{info, warn};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use loader::manifest::{Manifest, Version};

/// How long the window waits for calls in flight into the old version.
pub const DRAIN_LIMIT_MS: u64 = 500;

/// Where the new version comes from.
pub enum Source<'a> {
    /// An initrd entry: its file name (with or without `.qvd`), its version (`0.2.0`), or
    /// empty for the newest entry newer than the running version.
    Initrd(&'a str),
    /// An envelope pushed from the host.
    Pushed(&'a [u8]),
}

/// What a swap did.
pub struct Outcome {
    pub swapped: bool,
    /// PMU cycles from pausing the slots to resuming them (0 if it never got there); under
    /// QEMU `-icount shift=0` these are instructions.
    pub window: u64,
    /// PMU cycles from the request to the new version serving.
    pub total: u64,
    pub message: String,
}

impl Outcome {
    fn refused(name: &str, why: String, t0: u64) -> Outcome {
        warn!("swap {name}: refused: {why}; the running version keeps serving");
        Outcome {
            swapped: false,
            window: 0,
            total: crate::arch::pmu::cycles() - t0,
            message: format!("swap {name} refused: {why}"),
        }
    }
}

static BUSY: AtomicBool = AtomicBool::new(false);

/// The manifest in an envelope, read without verifying anything (for listing versions;
/// nothing is loaded on the strength of it).
fn peek(envelope: &[u8]) -> Option<Manifest> {
    let e = loader::envelope::Envelope::parse(envelope).ok()?;
    Manifest::decode(e.manifest).ok()
}

fn triple(v: &Version) -> (u32, u32, u32) {
    (v.major, v.minor, v.patch)
}

/// Swaps the running domain `name` for the version `source` names.
pub fn swap(name: &str, source: Source, allow_downgrade: bool) -> Outcome {
    let t0 = crate::arch::pmu::cycles();
    if BUSY.swap(true, Ordering::Acquire) {
        return Outcome::refused(name, "another swap is in progress".into(), t0);
    }
    let outcome = match swap_exclusive(name, source, allow_downgrade, t0) {
        Ok(o) => o,
        Err(why) => Outcome::refused(name, why, t0),
    };
    BUSY.store(false, Ordering::Release);
    outcome
}

/// The version of the running domain `name`, as text.
pub fn running_version(name: &str) -> Option<String> {
    running(name).map(|r| r.version.to_string())
}

/// The version of a domain that serves now, as the swap found it.
struct Serving {
    id: DomainId,
    version: Version,
    generation: u32,
    hooks: Option<StateHooks>,
    source: String,
}

/// The running record of `name`.
fn running(name: &str) -> Option<Serving> {
    let m = MANAGER.lock();
    let d = m
        .domains
        .iter()
        .find(|d| d.name == name && d.state == State::Running && d.id != super::KERNEL)?;
    Some(Serving {
        id: d.id,
        version: d.manifest.version.clone(),
        generation: d.generation,
        hooks: d.instance.as_ref().and_then(|i| i.state_hooks),
        source: d.source.clone(),
    })
}

/// The initrd entry `wanted` names for domain `name` running `current`: (entry, bytes).
fn initrd_entry(name: &str, wanted: &str, current: &Version) -> Result<(String, &'static [u8]), String> {
    let bytes = MANAGER.lock().initrd.ok_or("there is no initrd")?;
    let archive = initrd::Archive::parse(bytes).map_err(|e| format!("the initrd is unreadable: {e}"))?;
    // (entry name, bytes, version) of the newest entry newer than `current`.
    type Candidate = (String, &'static [u8], (u32, u32, u32));
    let mut best: Option<Candidate> = None;
    for e in archive.entries() {
        let Some(m) = peek(e.data) else { continue };
        let stem = e.name.strip_suffix(".qvd").unwrap_or(e.name);
        let version = m.version.to_string();
        if !wanted.is_empty() {
            if e.name == wanted || stem == wanted || (m.name == name && version == wanted) {
                return Ok((e.name.to_string(), e.data));
            }
            continue;
        }
        let v = triple(&m.version);
        if m.name == name && v > triple(current) && best.as_ref().is_none_or(|b| v > b.2) {
            best = Some((e.name.to_string(), e.data, v));
        }
    }
    match best {
        Some((entry, data, _)) => Ok((entry, data)),
        None if wanted.is_empty() => Err(format!("the initrd holds no version of {name} newer than {current}")),
        None => Err(format!("the initrd has no entry {wanted:?}")),
    }
}

/// Copies a pushed envelope into frames of its own; the new version's ELF borrows them
/// until it is retired. Returns the bytes and the frames.
fn keep_pushed(bytes: &[u8]) -> Result<(&'static [u8], (usize, usize)), String> {
    let pages = bytes.len().div_ceil(crate::memory::PAGE_SIZE).max(1);
    let base = crate::memory::alloc_frames(pages).ok_or("no memory to hold the pushed envelope")?;
    // SAFETY: `base` is `pages` freshly allocated frames, mapped read-write in the kernel's
    // linear map and owned by nobody else; the slice ends inside them.
    let copy = unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), base as *mut u8, bytes.len());
        core::slice::from_raw_parts(base as *const u8, bytes.len())
    };
    Ok((copy, (base, pages)))
}

fn exports_differ(old: &Manifest, new: &Manifest) -> Option<String> {
    for e in &old.exports {
        match new.exports.iter().find(|n| n.name == e.name) {
            None => return Some(format!("the new version does not export {}", e.name)),
            Some(n) if n.hash != e.hash => {
                return Some(format!(
                    "the new version's {} has interface hash {}, the running one {}",
                    e.name,
                    manager::short(&n.hash),
                    manager::short(&e.hash)
                ))
            }
            Some(_) => {}
        }
    }
    new.exports
        .iter()
        .find(|n| !old.exports.iter().any(|e| e.name == n.name))
        .map(|n| format!("the new version exports {}, which the running one does not", n.name))
}

fn swap_exclusive(name: &str, source: Source, allow_downgrade: bool, t0: u64) -> Result<Outcome, String> {
    let old = running(name).ok_or_else(|| {
        let state = MANAGER
            .lock()
            .domains
            .iter()
            .find(|d| d.name == name && d.state != State::Retired && d.id != super::KERNEL)
            .map(|d| d.state);
        match state {
            Some(s) => format!(
                "{name} is {} (only a running domain is swapped; `restart {name}` first)",
                format!("{s:?}").to_lowercase()
            ),
            None => format!("no running domain is named {name:?}"),
        }
    })?;
    if super::context_inside(&super::save_context(), old.id) {
        return Err(format!("it was asked from inside {name} itself"));
    }
    // The candidate's bytes, and (for a push) the frames that keep them.
    let (label, bytes, pushed) = match source {
        Source::Initrd(wanted) => {
            let (entry, bytes) = initrd_entry(name, wanted, &old.version)?;
            (entry, bytes, None)
        }
        Source::Pushed(bytes) => {
            let (copy, frames) = keep_pushed(bytes)?;
            (String::from("a host push"), copy, Some(frames))
        }
    };
    match check_candidate(name, &old, &label, bytes, allow_downgrade) {
        Ok((v, verify_cost)) => install_and_swap(name, &old, &label, &v, verify_cost, pushed, t0),
        Err(why) => {
            // No domain record owns the pushed frames yet.
            if let Some((base, pages)) = pushed {
                crate::memory::free_frames_at(base, pages);
            }
            Err(why)
        }
    }
}

/// Step 1, the checks: verification, name, version, exports, imports. Returns the
/// verified candidate and what verifying it cost.
fn check_candidate(
    name: &str,
    old: &Serving,
    label: &str,
    bytes: &'static [u8],
    allow_downgrade: bool,
) -> Result<(loader::VerifiedDomain<'static>, u64), String> {
    let (ring, revoked) = manager::keyring();
    let verify_start = crate::arch::pmu::cycles();
    let v = loader::verify(bytes, &ring, &revoked).map_err(|e| format!("{label}: {e}"))?;
    let verify_cost = crate::arch::pmu::cycles() - verify_start;
    let m = &v.manifest;
    if m.name != name {
        return Err(format!("{label} is domain {:?}, not {name:?}", m.name));
    }
    let (new_v, old_v) = (triple(&m.version), triple(&old.version));
    if new_v < old_v && !allow_downgrade {
        return Err(format!(
            "{label} is version {}, older than the running {} (a downgrade needs the explicit flag)",
            m.version, old.version
        ));
    }
    if new_v == old_v && !allow_downgrade {
        return Err(format!("{label} is version {}, the version already running", m.version));
    }
    let mm = MANAGER.lock();
    if let Some(why) = exports_differ(&mm.domains[old.id as usize].manifest, m) {
        return Err(why);
    }
    if let Some(i) = m
        .imports
        .iter()
        .find(|i| !mm.exports.iter().any(|e| e.live && e.name == i.name && e.hash == i.hash))
    {
        return Err(format!("the new version imports {}, which no running domain exports with that hash", i.name));
    }
    drop(mm);
    Ok((v, verify_cost))
}

/// Steps 1 (load, initialise, state types) to 3. The new version gets a domain record of
/// its own (which owns the pushed frames, if any); any refusal retires that record.
fn install_and_swap(
    name: &str,
    old: &Serving,
    label: &str,
    v: &loader::VerifiedDomain<'static>,
    verify_cost: u64,
    pushed: Option<(usize, usize)>,
    t0: u64,
) -> Result<Outcome, String> {
    let m = &v.manifest;
    let new = manager::allocate_id().ok_or("no free domain number")?;
    let mut record = manager::new_record(new, v, label, State::Preparing, old.generation + 1, verify_cost);
    record.pushed = pushed;
    manager::install(record);
    let refuse = |why: String| {
        manager::retire(new, State::Retired);
        Err(why)
    };
    let (inst, entry) = match manager::instantiate(new, m, &v.elf, false) {
        Ok(x) => x,
        Err(why) => return refuse(format!("cannot load the new version: {why}")),
    };
    MANAGER.lock().domains[new as usize].instance = Some(inst);
    if let Err(why) = manager::run_init(new, m, entry) {
        return refuse(format!("the new version's initialisation failed: {why}"));
    }
    let new_hooks = MANAGER.lock().domains[new as usize].instance.as_ref().and_then(|i| i.state_hooks);
    match (&old.hooks, &new_hooks) {
        (Some(o), Some(n)) if o.hash != n.hash => {
            return refuse(format!(
                "state type mismatch: the running version hands over state {}, the new one takes {}",
                manager::short(&o.hash),
                manager::short(&n.hash)
            ))
        }
        (Some(o), None) => {
            return refuse(format!(
                "the new version takes no state, and the running one has state {} to hand over",
                manager::short(&o.hash)
            ))
        }
        _ => {}
    }
    let window = match run_window(old.id, new, old.hooks, new_hooks) {
        Ok(w) => w,
        Err(why) => return refuse(why),
    };
    let total = crate::arch::pmu::cycles() - t0;
    // Retire the old version, outside the window.
    manager::retire(old.id, State::Retired);
    {
        let mut mm = MANAGER.lock();
        if mm.retired.len() >= 16 {
            mm.retired.remove(0);
        }
        mm.retired.push(manager::RetiredVersion {
            name: name.into(),
            version: old.version.clone(),
            source: old.source.clone(),
            at_ns: crate::time::uptime_ns(),
        });
    }
    let message = format!(
        "swapped {name} {} -> {} ({label}, key id {}): window {} cycles ({} calls drained, {} state bytes), {} cycles in all",
        old.version,
        m.version,
        manager::short(&v.key_id),
        window.instructions,
        window.drained,
        window.state_bytes,
        total
    );
    info!("{message}");
    Ok(Outcome {
        swapped: true,
        window: window.instructions,
        total,
        message,
    })
}

struct Window {
    instructions: u64,
    drained: usize,
    state_bytes: usize,
}

struct StateCall {
    hooks: StateHooks,
    block: *mut u8,
    result: i32,
}

unsafe extern "C" fn invoke_export(data: *mut u8, _: *const (), _: *const ()) {
    // SAFETY: `data` is the `StateCall` in `hand_over`; the hook was registered by the old
    // version's runtime (`runtime::swap::keep_state`).
    let call = unsafe { &mut *(data as *mut StateCall) };
    call.block = (call.hooks.export)(call.hooks.export_context);
}

unsafe extern "C" fn invoke_import(data: *mut u8, _: *const (), _: *const ()) {
    // SAFETY: as in `invoke_export`, for the new version's hook.
    let call = unsafe { &mut *(data as *mut StateCall) };
    call.result = (call.hooks.import)(call.hooks.import_context, call.block);
}

/// The old version's state, moved into the new one. Returns the state's size.
fn hand_over(old: DomainId, new: DomainId, old_hooks: Option<StateHooks>, new_hooks: Option<StateHooks>) -> Result<usize, String> {
    let Some(export) = old_hooks else { return Ok(0) };
    let mut call = StateCall {
        hooks: export,
        block: core::ptr::null_mut(),
        result: 0,
    };
    if call_into(old, invoke_export, &mut call as *mut StateCall as *mut u8, core::ptr::null(), core::ptr::null()) != 0 {
        return Err("the running version crashed while saving its state".into());
    }
    let size = super::rref::size_of(call.block).ok_or("the running version's state is not on the shared heap")?;
    let Some(import) = new_hooks else {
        super::rref::free(old, call.block);
        return Ok(size);
    };
    super::rref::claim(new, call.block);
    call.hooks = import;
    if call_into(new, invoke_import, &mut call as *mut StateCall as *mut u8, core::ptr::null(), core::ptr::null()) != 0 {
        return Err("the new version crashed while taking the state".into());
    }
    if call.result != 0 {
        return Err(format!("the new version refused the state (code {})", call.result));
    }
    Ok(size)
}

/// The device interrupts of `d`'s grants.
fn grant_irqs(d: DomainId) -> Vec<(usize, crate::irq::IrqNumber)> {
    MANAGER.lock().domains[d as usize]
        .instance
        .as_ref()
        .map(|i| i.grants.iter().enumerate().filter_map(|(k, g)| g.irq.map(|n| (k, n))).collect())
        .unwrap_or_default()
}

fn set_masked(irqs: &[(usize, crate::irq::IrqNumber)], masked: bool) {
    if let Some(c) = crate::irq::controller() {
        for (_, n) in irqs {
            if masked {
                c.disable(*n);
            } else {
                c.enable(*n);
            }
        }
    }
}

/// Step 2. On error the old version serves on, as before (the caller retires the new).
fn run_window(old: DomainId, new: DomainId, old_hooks: Option<StateHooks>, new_hooks: Option<StateHooks>) -> Result<Window, String> {
    let old_irqs = grant_irqs(old);
    let new_irqs = grant_irqs(new);
    let w0 = crate::arch::pmu::cycles();
    super::proxy::pause_callee(old, crate::sched::current());
    manager::set_cancelling(old, true);
    manager::wake_event_waiters(Some(old));
    let abort = |why: String| {
        set_masked(&old_irqs, false);
        manager::set_cancelling(old, false);
        super::proxy::resume_callee(old, !manager::is_dead(old));
        Err(why)
    };
    // Drain: every call in flight into the old version returns (or is cancelled and parks).
    // A thread caught between the trampoline's slot check and its dispatch starts its call
    // over when it resumes (`before_resume`), so it finds the slot paused.
    let started = crate::time::uptime_ns();
    let (mut drained, mut polls) = (0, 0);
    loop {
        let inside = crate::sched::count_other_threads(|c, _| super::context_in_call_to(c, old));
        if inside == 0 {
            break;
        }
        drained = drained.max(inside);
        if crate::time::uptime_ns() - started > DRAIN_LIMIT_MS * 1_000_000 {
            return abort(format!("{inside} calls into the running version did not return within {DRAIN_LIMIT_MS} ms"));
        }
        // Let the callers finish: first by yielding (a cancelled caller needs one turn to
        // unwind), then, for a slower call, by sleeping a tick at a time.
        polls += 1;
        if polls < 100 {
            crate::sched::yield_now();
        } else {
            crate::sched::sleep_ms(1);
        }
    }
    // The old version may have crashed (and restarted, its hooks elsewhere) since the
    // preparation looked at it: hand over only from the instance that serves now.
    let serving_hooks = {
        let m = MANAGER.lock();
        let d = &m.domains[old as usize];
        (d.state == State::Running && !manager::is_dead(old)).then(|| d.instance.as_ref().and_then(|i| i.state_hooks))
    };
    let old_hooks = match serving_hooks {
        Some(h) if h.map(|x| x.hash) == old_hooks.map(|x| x.hash) => h,
        Some(_) => return abort("the running version's state type changed meanwhile".into()),
        None => return abort("the running version crashed meanwhile".into()),
    };
    set_masked(&old_irqs, true);
    let state_bytes = match hand_over(old, new, old_hooks, new_hooks) {
        Ok(n) => n,
        Err(why) => return abort(why),
    };
    for (index, n) in &new_irqs {
        if let Err(e) = manager::route_irq(new, *index, *n, true) {
            for (k, m) in &old_irqs {
                let _ = manager::route_irq(old, *k, *m, true);
            }
            return abort(format!("cannot route interrupt {n} to the new version: {e}"));
        }
    }
    // Commit: from here on the new version serves.
    manager::set_dead(old, true);
    {
        let mut m = MANAGER.lock();
        m.exports.retain(|e| e.domain != old);
        for e in m.exports.iter_mut().filter(|e| e.domain == new) {
            e.live = true;
        }
        let targets: Vec<(usize, DomainId, usize, usize)> = m
            .slots
            .iter()
            .filter(|r| r.callee == old)
            .filter_map(|r| {
                m.exports
                    .iter()
                    .find(|e| e.domain == new && e.name == r.name && e.hash == r.hash)
                    .map(|e| (r.index, r.owner, e.table, e.state))
            })
            .collect();
        for r in m.slots.iter_mut().filter(|r| r.callee == old) {
            r.callee = new;
        }
        for (index, owner, table, state) in targets {
            super::proxy::set_slot(index, owner, new, table, state);
        }
        m.domains[new as usize].state = State::Running;
    }
    crate::console::callee_replaced(old, new);
    manager::set_cancelling(old, false);
    super::proxy::resume_callee(new, true);
    let instructions = crate::arch::pmu::cycles() - w0;
    Ok(Window {
        instructions,
        drained,
        state_bytes,
    })
}

/// The lines of `versions NAME`: the running version, the initrd's versions, the retired.
pub fn versions(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (initrd, running_source) = {
        let m = MANAGER.lock();
        let running = m
            .domains
            .iter()
            .find(|d| d.name == name && d.id != super::KERNEL && d.state != State::Retired && d.state != State::Rejected);
        match running {
            Some(d) => out.push(format!(
                "{name}: {} {} from {} (domain {}, generation {}, key id {})",
                format!("{:?}", d.state).to_lowercase(),
                d.manifest.version,
                d.source,
                d.id,
                d.generation,
                manager::short(&d.key_id)
            )),
            None => out.push(format!("{name}: not running")),
        }
        (m.initrd, running.map(|d| d.source.clone()))
    };
    if let Some(archive) = initrd.and_then(|b| initrd::Archive::parse(b).ok()) {
        for e in archive.entries() {
            let Some(m) = peek(e.data) else { continue };
            if m.name != name {
                continue;
            }
            let mark = if running_source.as_deref() == Some(e.name) { " (running)" } else { "" };
            out.push(format!("available: {} {}{mark}", e.name, m.version));
        }
    }
    for r in MANAGER.lock().retired.iter().filter(|r| r.name == name) {
        out.push(format!(
            "retired: {} from {} at {}.{:03} s",
            r.version,
            r.source,
            r.at_ns / 1_000_000_000,
            (r.at_ns / 1_000_000) % 1000
        ));
    }
    out
}
