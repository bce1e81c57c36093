//! Hot swap: replace a running domain with a new signed version while its callers keep
//! calling.
//!
//! 1. *Prepare*, touching nothing of the old version: verify the new envelope exactly like
//!    a boot-time one and admit it (policy.rs: its key's policy, the rollback floor); check
//!    it has the same name, a higher version (lower or equal only if its signed manifest
//!    says `downgrade`; a revoked digest is refused by verification), the same exports
//!    with the same hashes, and imports that are served now; load it as a new domain
//!    record (`Preparing`: its exports are invisible, its interrupts not yet routed) and
//!    run its initialisation; check the state hand-over: both versions name the same state
//!    type, or neither keeps any, unless the operator asked for a fresh start (then no
//!    state is handed over at all).
//! 2. *Window* (swap_window.rs): pause, drain, hand the state over, commit.
//! 3. *Retire* the old version: like a crash's reclamation, without the restart policy.
//!
//! A failure before the window's commit leaves the old version serving, untouched, and
//! the new one is retired.

use super::instance::{instantiate, run_init, StateHooks};
use super::lifecycle::{allocate_id, retire};
use super::registry::{registry, Domain, RetiredVersion, State, MAX_DOMAINS};
use super::swap_window::{run_window, Handover};
use super::verify::verify;
use super::{continuation, short, DomainId, SwapRefusal};
use crate::info;
use crate::memory::FrameRange;
use alloc::format;
use alloc::string::{String, ToString};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use loader::manifest::{InterfaceRef, Manifest, Version};

/// Where the new version comes from.
pub enum Source<'a> {
    /// An initrd entry: its file name (with or without `.qvd`), its version (`0.2.0`), or
    /// empty for the newest entry newer than the running version.
    Initrd(&'a str),
    /// An envelope pushed from the host.
    #[cfg(feature = "hostlink")]
    Pushed(&'a [u8]),
    /// An envelope a domain read (from the disk) and handed over: its bytes and where it
    /// says they came from.
    Handed { bytes: &'a [u8], from: &'a str },
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
    fn refused(name: &str, why: SwapRefusal, t0: u64) -> Outcome {
        // Only a domain that runs (still) has a running version to keep serving.
        let left = match why {
            SwapRefusal::NotRunning(..) => why.consequence().into(),
            _ if registry().running(name).is_some() => why.consequence().into(),
            _ => format!("nothing was swapped in, and no {name} runs now"),
        };
        crate::warn!("swap {name}: refused: {why}; {left}");
        Outcome {
            swapped: false,
            window: 0,
            total: crate::arch::pmu::cycles() - t0,
            message: format!("swap {name} refused: {why}"),
        }
    }
}

/// Set while a swap or a load (`load::load`) runs: one at a time. Each checks the registry
/// (one domain per name, one exporter per interface, a free domain number), then installs
/// what it checked for; two at once would both pass the checks (a red-team finding: racing
/// loads got the same domain number, the second record overwriting the first).
static BUSY: AtomicBool = AtomicBool::new(false);

/// Runs `f` as the only swap or load; `None` (nothing done) while another runs.
pub(super) fn exclusively<T>(f: impl FnOnce() -> T) -> Option<T> {
    if BUSY.swap(true, Ordering::Acquire) {
        return None;
    }
    let r = f();
    BUSY.store(false, Ordering::Release);
    Some(r)
}

/// Per domain: 1 while a hot swap drains it (its calls waiting for input are cancelled).
static CANCELLING: [AtomicU8; MAX_DOMAINS] = [const { AtomicU8::new(0) }; MAX_DOMAINS];

pub(super) fn set_cancelling(d: DomainId, on: bool) {
    if let Some(x) = CANCELLING.get(d as usize) {
        x.store(on as u8, Ordering::Relaxed);
    }
}

pub(super) fn is_cancelling(d: DomainId) -> bool {
    CANCELLING.get(d as usize).is_some_and(|x| x.load(Ordering::Relaxed) != 0)
}

/// Swaps the running domain `name` for the version `source` names. With `fresh`, no state
/// is handed over (neither version's hook is called); every other check stays.
pub fn swap(name: &str, source: Source, fresh: bool) -> Outcome {
    let t0 = crate::arch::pmu::cycles();
    exclusively(|| match swap_exclusive(name, source, fresh, t0) {
        Ok(o) => o,
        Err(why) => Outcome::refused(name, why, t0),
    })
    .unwrap_or_else(|| Outcome::refused(name, SwapRefusal::Busy, t0))
}

/// True if a domain `name` runs now.
#[cfg(feature = "hostlink")]
pub fn is_running(name: &str) -> bool {
    registry().running(name).is_some()
}

/// The version of the running domain `name`, as text.
#[cfg(feature = "hostlink")]
pub fn running_version(name: &str) -> Option<String> {
    registry().running(name).map(|d| d.manifest().version.to_string())
}

/// The version of a domain that serves now, as the swap found it.
pub(super) struct Serving {
    pub id: DomainId,
    pub version: Version,
    pub exports: alloc::vec::Vec<InterfaceRef>,
    pub imports: alloc::vec::Vec<InterfaceRef>,
    pub generation: u32,
    pub hooks: Option<StateHooks>,
    pub source: String,
}

impl Serving {
    fn of(d: &Domain) -> Serving {
        Serving {
            id: d.id(),
            version: d.manifest().version.clone(),
            exports: d.manifest().exports.clone(),
            imports: d.manifest().imports.clone(),
            generation: d.generation(),
            hooks: d.instance().and_then(|i| i.state_hooks),
            source: d.source().to_string(),
        }
    }
}

/// The manifest in an envelope, read without verifying anything (for listing versions;
/// nothing is loaded on the strength of it).
pub(super) fn peek(envelope: &[u8]) -> Option<Manifest> {
    let e = loader::envelope::Envelope::parse(envelope).ok()?;
    Manifest::decode(e.manifest).ok()
}

/// The initrd entry `wanted` names for domain `name` running `current`: (entry, bytes).
fn initrd_entry(name: &str, wanted: &str, current: &Version) -> Result<(String, &'static [u8]), SwapRefusal> {
    let archive = registry().initrd().ok_or(SwapRefusal::NoInitrd)?;
    // (entry name, bytes, version) of the newest entry newer than `current`.
    let mut best: Option<(String, &'static [u8], Version)> = None;
    for e in archive.entries() {
        let Some(m) = peek(e.data) else { continue };
        let stem = e.name.strip_suffix(".qvd").unwrap_or(e.name);
        if !wanted.is_empty() {
            if e.name == wanted || stem == wanted || (m.name == name && m.version.to_string() == wanted) {
                return Ok((e.name.to_string(), e.data));
            }
            continue;
        }
        if m.name == name && m.version > *current && best.as_ref().is_none_or(|b| m.version > b.2) {
            best = Some((e.name.to_string(), e.data, m.version));
        }
    }
    match best {
        Some((entry, data, _)) => Ok((entry, data)),
        None if wanted.is_empty() => Err(SwapRefusal::NoNewerVersion(name.into(), current.clone())),
        None => Err(SwapRefusal::NoSuchEntry(wanted.into())),
    }
}

/// Copies a pushed or handed envelope into frames of its own; the new version's ELF
/// borrows them until it is retired.
pub(super) fn keep_pushed(bytes: &[u8]) -> Result<(&'static [u8], FrameRange), SwapRefusal> {
    if bytes.is_empty() {
        return Err(SwapRefusal::EmptyEnvelope);
    }
    let mut frames = FrameRange::alloc(bytes.len().div_ceil(crate::memory::PAGE_SIZE)).ok_or(SwapRefusal::NoMemoryForPush)?;
    frames.as_mut_slice()[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: the bytes live in `frames`, which the domain record that borrows them owns
    // and frees only after dropping that borrow (`Domain::elf` is dropped before
    // `Domain::pushed`); nothing writes them meanwhile.
    let copy = unsafe { core::slice::from_raw_parts(frames.base() as *const u8, bytes.len()) };
    Ok((copy, frames))
}

fn exports_differ(old: &[InterfaceRef], new: &Manifest) -> Option<SwapRefusal> {
    for e in old {
        match new.exports.iter().find(|n| n.name == e.name) {
            None => return Some(SwapRefusal::ExportMissing(e.name.clone())),
            Some(n) if n.hash != e.hash => return Some(SwapRefusal::ExportHash(e.name.clone(), n.hash, e.hash)),
            Some(_) => {}
        }
    }
    new.exports
        .iter()
        .find(|n| !old.iter().any(|e| e.name == n.name))
        .map(|n| SwapRefusal::ExportAdded(n.name.clone()))
}

fn swap_exclusive(name: &str, source: Source, fresh: bool, t0: u64) -> Result<Outcome, SwapRefusal> {
    let old = {
        let r = registry();
        match r.running(name) {
            Some(d) => Serving::of(d),
            None => return Err(SwapRefusal::NotRunning(name.into(), r.current(name).map(|d| d.state()))),
        }
    };
    if continuation::context_inside(&crate::sched::call_context::save(), old.id) {
        return Err(SwapRefusal::FromInside(name.into()));
    }
    // The candidate's bytes, (for a push) the frames that keep them, and how the same
    // request asks for a fresh start.
    let (label, bytes, pushed, fresh_hint) = match source {
        Source::Initrd(wanted) => {
            let (entry, bytes) = initrd_entry(name, wanted, &old.version)?;
            let hint = if wanted.is_empty() {
                format!("swap {name} --fresh")
            } else {
                format!("swap {name} {wanted} --fresh")
            };
            (entry, bytes, None, hint)
        }
        #[cfg(feature = "hostlink")]
        Source::Pushed(bytes) => {
            let (copy, frames) = keep_pushed(bytes)?;
            (String::from("a host push"), copy, Some(frames), format!("cargo xtask swap {name} --fresh"))
        }
        Source::Handed { bytes, from } => {
            let (copy, frames) = keep_pushed(bytes)?;
            (String::from(from), copy, Some(frames), format!("swap {name} {from} --fresh"))
        }
    };
    let (v, verify_cost) = check_candidate(name, &old, &label, bytes)?;
    let request = Request {
        name,
        label: &label,
        fresh,
        fresh_hint,
    };
    install_and_swap(&request, &old, &v, verify_cost, pushed, t0)
}

/// Step 1, the checks: verification, name, version, exports, imports. Returns the
/// verified candidate and what verifying it cost.
fn check_candidate(name: &str, old: &Serving, label: &str, bytes: &'static [u8]) -> Result<(loader::VerifiedDomain<'static>, u64), SwapRefusal> {
    let (v, verify_cost) = verify(bytes).map_err(|e| SwapRefusal::Verify(label.into(), e))?;
    let m = &v.manifest;
    if m.name != name {
        return Err(SwapRefusal::WrongName(label.into(), m.name.clone(), name.into()));
    }
    super::policy::admit(&v).map_err(|e| SwapRefusal::Policy(label.into(), e))?;
    if m.version < old.version && !m.downgrade {
        return Err(SwapRefusal::Older(label.into(), m.version.clone(), old.version.clone()));
    }
    if m.version == old.version && !m.downgrade {
        return Err(SwapRefusal::SameVersion(label.into(), m.version.clone()));
    }
    if let Some(why) = exports_differ(&old.exports, m) {
        return Err(why);
    }
    let r = registry();
    // A new version may not need what the running one did without: each import it adds
    // must be served (one the running version also declares may stay unserved, as at
    // boot: its `import` fails until a domain exports it).
    if let Some(i) = m.imports.iter().find(|i| !r.serves(&i.name, &i.hash) && !old.imports.contains(i)) {
        return Err(SwapRefusal::ImportUnserved(i.name.clone()));
    }
    drop(r);
    Ok((v, verify_cost))
}

/// What was asked: the domain, where the candidate comes from, whether to start it fresh,
/// and (for a refusal) how to ask for that.
struct Request<'a> {
    name: &'a str,
    label: &'a str,
    fresh: bool,
    fresh_hint: String,
}

/// The state hand-over the two versions' hooks allow, or the refusal (naming `req`'s way to
/// ask for a fresh start).
fn plan_handover(old: Option<StateHooks>, new: Option<StateHooks>, req: &Request) -> Result<Handover, SwapRefusal> {
    if req.fresh {
        return Ok(Handover::Fresh);
    }
    let hint = req.fresh_hint.clone();
    match (old, new) {
        (None, None) => Ok(Handover::Nothing),
        (Some(o), Some(n)) if o.hash == n.hash && o.size == n.size => Ok(Handover::State { old: o, new: n }),
        (Some(o), Some(n)) => Err(SwapRefusal::StateMismatch(o.hash, n.hash, hint)),
        (Some(o), None) => Err(SwapRefusal::StateDropped(o.hash, hint)),
        (None, Some(n)) => Err(SwapRefusal::StateNotKept(n.hash, hint)),
    }
}

/// For the swap's log line: what was handed over.
fn handed_over(plan: Handover, old: Option<StateHooks>, bytes: usize) -> String {
    match (plan, old) {
        (Handover::State { old, .. }, _) => format!("{bytes} state bytes of type {}", short(&old.hash)),
        (Handover::Nothing, _) => "no state (neither version keeps any)".into(),
        (Handover::Fresh, Some(_)) => "fresh start: the old version's state was discarded".into(),
        (Handover::Fresh, None) => "fresh start: the old version kept no state".into(),
    }
}

/// Steps 1 (load, initialise, state types) to 3. The new version gets a domain record of
/// its own (which owns the pushed frames, if any); any refusal retires that record.
fn install_and_swap(
    req: &Request,
    old: &Serving,
    v: &loader::VerifiedDomain<'static>,
    verify_cost: u64,
    pushed: Option<FrameRange>,
    t0: u64,
) -> Result<Outcome, SwapRefusal> {
    let (name, label) = (req.name, req.label);
    let m = &v.manifest;
    let new = allocate_id().ok_or(SwapRefusal::NoDomainNumber)?;
    registry().install(Domain::new(new, v, label, pushed, State::Preparing, old.generation + 1, verify_cost));
    let refuse = |why: SwapRefusal| {
        retire(new, State::Retired);
        Err(why)
    };
    let load_start = crate::arch::pmu::cycles();
    let inst = match instantiate(new, m, &v.elf, false) {
        Ok(x) => x,
        Err(why) => return refuse(SwapRefusal::Load(why)),
    };
    registry().set_instance(new, inst, crate::arch::pmu::cycles() - load_start);
    if let Err(why) = run_init(new, m) {
        return refuse(SwapRefusal::Init(why));
    }
    let new_hooks = registry().get(new).and_then(|d| d.instance()).and_then(|i| i.state_hooks);
    let plan = match plan_handover(old.hooks, new_hooks, req) {
        Ok(p) => p,
        Err(why) => return refuse(why),
    };
    // A driver's device both versions hold: the old version's retirement resets it (and
    // frees the old version's DMA memory) before any caller reaches the new version, which
    // sets the device up on its first call. So no device ever holds an address the old
    // version owned once that memory is freed.
    let shares_device = super::grants::share_a_transport(old.id, new);
    let window = match run_window(old.id, new, old.hooks, plan, shares_device) {
        Ok(w) => w,
        Err(why) => return refuse(why),
    };
    let total = crate::arch::pmu::cycles() - t0;
    super::policy::raise_floor(m);
    // Retire the old version, outside the window.
    retire(old.id, State::Retired);
    if shares_device {
        super::proxy::resume_callee(new, true);
    }
    registry().remember_retired(RetiredVersion {
        name: name.into(),
        version: old.version.clone(),
        source: old.source.clone(),
        at_ns: crate::time::uptime_ns(),
    });
    // What was handed over comes first: a long message is cut at the end.
    let message = format!(
        "swapped {name} {} -> {} ({label}, key id {}): {}; window {} cycles ({} calls drained), {} cycles in all",
        old.version,
        m.version,
        short(&v.key_id),
        handed_over(plan, old.hooks, window.state_bytes),
        window.instructions,
        window.drained,
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
