//! The domain manager: verifies every initrd envelope, starts domains in dependency order,
//! wires each import to the export with the same name and interface hash (only if the
//! importer's signed manifest lists it), grants devices the manifest names, and keeps the
//! table the shell's `domains` command shows. Every refusal is one `rejected` log line.
//!
//! When a domain fails, `crashed` marks it dead (its slots refuse calls at once),
//! reclaims its instance (image, heap, shared-heap blocks, interrupt routes) and applies its
//! restart policy: the restarter thread re-instantiates it from the verified image kept in
//! memory, and re-points its callers' slots to the new instance.
//!
//! A hot swap (`super::swap`) starts a new version as a separate domain record in state
//! `Preparing` (its exports invisible), then re-points the old version's slots to it and
//! retires the old record. Retired records are reused once no thread is left inside them.

use super::image::{self, LoadedImage};
use super::{call_into, DomainId, KERNEL};
use crate::devicetree::{Device, Region};
use crate::irq::IrqNumber;
use crate::sched::WaitQueue;
use crate::sync::IrqLock;
use crate::{info, warn};
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};
use interfaces::{DeviceGrant, DomainInfo, KernelServices};
use loader::manifest::{InterfaceRef, Manifest, RestartPolicy, Version};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Running,
    Crashed,
    Rejected,
    Held,
    /// A new version being initialised for a hot swap: not yet reachable by callers.
    Preparing,
    /// An old version a hot swap replaced (its record may be reused).
    Retired,
}

impl State {
    /// The code `DomainInfo::state` carries.
    fn code(self) -> u32 {
        match self {
            State::Running => 0,
            State::Crashed => 1,
            State::Rejected => 2,
            State::Held => 3,
            State::Preparing => 4,
            State::Retired => 5,
        }
    }
}

/// How a domain hands its state to its next version (registered by its runtime).
#[derive(Clone, Copy)]
pub struct StateHooks {
    pub hash: [u8; 32],
    pub export: interfaces::abi::StateExportFn,
    pub export_context: usize,
    pub import: interfaces::abi::StateImportFn,
    pub import_context: usize,
}

pub(super) struct Grant {
    mmio: Region,
    pub(super) irq: Option<IrqNumber>,
    irq_pending: bool,
    irq_waiters: &'static WaitQueue,
}

/// What one run of a domain owns; all of it is reclaimed when the domain dies.
pub(super) struct Instance {
    image: LoadedImage,
    heap: (usize, usize),
    services: Box<KernelServices>,
    pub(super) grants: Vec<Grant>,
    pub(super) state_hooks: Option<StateHooks>,
}

pub(super) struct Domain {
    pub(super) id: DomainId,
    pub(super) name: String,
    pub(super) manifest: Manifest,
    pub(super) key_id: [u8; 32],
    /// Where this version came from: its initrd entry, or `pushed from the host`.
    pub(super) source: String,
    /// Frames holding a pushed envelope (the ELF below borrows them); freed on retirement.
    pub(super) pushed: Option<(usize, usize)>,
    /// The verified, parsed ELF (its bytes stay in the reserved initrd) and its digest,
    /// kept for restarts. `None` for the kernel.
    pub(super) elf: Option<loader::ElfImage<'static>>,
    pub(super) digest: [u8; 32],
    pub(super) state: State,
    pub(super) instance: Option<Instance>,
    restarts: u32,
    pub(super) generation: u32,
    /// Uptimes (ns) of the latest crashes, for the restart rate limit.
    recent_crashes: Vec<u64>,
    /// Instructions (PMU cycles under `-icount shift=0`) to verify and to load it.
    verify_cost: u64,
    load_cost: u64,
}

pub(super) struct Export {
    pub(super) name: String,
    pub(super) hash: [u8; 32],
    pub(super) domain: DomainId,
    pub(super) table: usize,
    pub(super) state: usize,
    /// False while its domain is `Preparing`: nobody can import it yet.
    pub(super) live: bool,
}

/// Which interface a slot was made for, to re-point it after a restart.
pub(super) struct SlotRecord {
    pub(super) index: usize,
    pub(super) owner: DomainId,
    pub(super) callee: DomainId,
    pub(super) name: String,
    pub(super) hash: [u8; 32],
}

/// A version a hot swap took out of service, for `versions NAME`.
pub(super) struct RetiredVersion {
    pub(super) name: String,
    pub(super) version: Version,
    pub(super) source: String,
    pub(super) at_ns: u64,
}

struct Event {
    owner: DomainId,
    count: u64,
    waiters: &'static WaitQueue,
}

pub(super) struct Manager {
    pub(super) domains: Vec<Domain>,
    pub(super) exports: Vec<Export>,
    pub(super) slots: Vec<SlotRecord>,
    events: Vec<Event>,
    restart_queue: Vec<DomainId>,
    uart: Option<Device>,
    /// The initrd (swap candidates are read from it) and the retired versions.
    pub(super) initrd: Option<&'static [u8]>,
    pub(super) retired: Vec<RetiredVersion>,
}

pub(super) static MANAGER: IrqLock<Manager> = IrqLock::new(
    "domains",
    Manager {
        domains: Vec::new(),
        exports: Vec::new(),
        slots: Vec::new(),
        events: Vec::new(),
        restart_queue: Vec::new(),
        uart: None,
        initrd: None,
        retired: Vec::new(),
    },
);
static RESTARTS_PENDING: WaitQueue = WaitQueue::new();

/// Per domain: 1 once it died, until it runs again (checked on every return to a thread).
const MAX_DOMAINS: usize = 64;
static DEAD: [AtomicU8; MAX_DOMAINS] = [const { AtomicU8::new(0) }; MAX_DOMAINS];
/// Per domain: 1 while a hot swap drains it (calls waiting for input are cancelled).
static CANCELLING: [AtomicU8; MAX_DOMAINS] = [const { AtomicU8::new(0) }; MAX_DOMAINS];

pub(super) fn set_dead(d: DomainId, dead: bool) {
    if let Some(x) = DEAD.get(d as usize) {
        x.store(dead as u8, Ordering::Relaxed);
    }
}

pub(super) fn set_cancelling(d: DomainId, on: bool) {
    if let Some(x) = CANCELLING.get(d as usize) {
        x.store(on as u8, Ordering::Relaxed);
    }
}

fn is_cancelling(d: DomainId) -> bool {
    CANCELLING.get(d as usize).is_some_and(|x| x.load(Ordering::Relaxed) != 0)
}

/// More than `limit` crashes within `window` and a `restart` domain is held instead.
/// Defaults 3 in 1 s; `qvq.restart_limit=N` (0: no limit) and `qvq.restart_window_ms=T`
/// on the command line change them.
static RATE_LIMIT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(3);
static RATE_WINDOW_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1_000_000_000);

pub fn set_restart_rate_limit(limit: usize, window_ms: u64) {
    RATE_LIMIT.store(limit, Ordering::Relaxed);
    RATE_WINDOW_NS.store(window_ms.saturating_mul(1_000_000), Ordering::Relaxed);
}

/// True if `d` is a version a hot swap took out of service.
pub fn is_retired(d: DomainId) -> bool {
    MANAGER.lock().domains.get(d as usize).is_some_and(|x| x.state == State::Retired)
}

pub fn is_dead(d: DomainId) -> bool {
    DEAD.get(d as usize).is_some_and(|x| x.load(Ordering::Relaxed) != 0)
}

pub(super) fn short(id: &[u8; 32]) -> String {
    id[..8].iter().map(|b| alloc::format!("{b:02x}")).collect()
}

fn kernel_manifest() -> Manifest {
    let iface = |name: &str, hash: [u8; 32]| InterfaceRef { name: name.into(), hash };
    Manifest {
        name: "kernel".into(),
        version: Version { major: 0, minor: 1, patch: 0 },
        exports: alloc::vec![iface(interfaces::kernel::NAME, interfaces::kernel::HASH)],
        imports: alloc::vec![
            iface(interfaces::console::NAME, interfaces::console::HASH),
            iface(interfaces::hello::NAME, interfaces::hello::HASH)
        ],
        devices: Vec::new(),
        heap_limit: 4096,
        stack_size: 4096,
        restart: RestartPolicy::Fatal,
        toolchain: String::new(),
        safe_rust_checked: false,
    }
}

/// Name of domain `d` (for log lines).
pub fn name(d: DomainId) -> String {
    MANAGER
        .lock()
        .domains
        .get(d as usize)
        .map_or_else(|| alloc::format!("domain#{d}"), |x| x.name.clone())
}

// --- failure ------------------------------------------------------------------------

/// Domain `d` failed with `cause`: stop calls into it, reclaim what it owned, and apply
/// its restart policy. No code of the domain runs after this (threads still inside it are
/// unwound before they next run). Called with no kernel lock held.
pub fn crashed(d: DomainId, cause: &str) {
    if d == KERNEL || is_dead(d) {
        return;
    }
    set_dead(d, true);
    super::proxy::set_callee_live(d, false);
    // A version being prepared for a swap has no policy: the swap refuses it and retires it.
    if MANAGER.lock().domains.get(d as usize).is_some_and(|x| x.state == State::Preparing) {
        warn!("domain {} (the version being swapped in) crashed: {cause}", name(d));
        return;
    }
    let (name, instance, policy) = {
        let mut m = MANAGER.lock();
        m.exports.retain(|e| e.domain != d);
        let Some(dom) = m.domains.get_mut(d as usize) else { return };
        dom.state = State::Crashed;
        let now = crate::time::uptime_ns();
        let (limit, window) = (RATE_LIMIT.load(Ordering::Relaxed), RATE_WINDOW_NS.load(Ordering::Relaxed));
        dom.recent_crashes.retain(|t| now.saturating_sub(*t) < window);
        if dom.recent_crashes.len() > limit {
            dom.recent_crashes.remove(0); // only the latest `limit + 1` matter
        }
        dom.recent_crashes.push(now);
        let policy = if dom.manifest.restart == RestartPolicy::Restart && limit > 0 && dom.recent_crashes.len() > limit {
            None
        } else {
            Some(dom.manifest.restart)
        };
        (dom.name.clone(), dom.instance.take(), policy)
    };
    warn!("domain {name} crashed: {cause}");
    if let Some(inst) = instance {
        reclaim(d, &name, inst);
    }
    wake_event_waiters(None);
    match policy {
        Some(RestartPolicy::Restart) => {
            MANAGER.lock().restart_queue.push(d);
            RESTARTS_PENDING.wake_all();
        }
        Some(RestartPolicy::Hold) => hold(d, &name, "its restart policy is hold"),
        Some(RestartPolicy::Fatal) => {
            warn!("domain {name} is fatal to the system: powering off");
            crate::power::exit(crate::exception::FAULT_EXIT_STATUS)
        }
        None => {
            let (limit, window) = (RATE_LIMIT.load(Ordering::Relaxed), RATE_WINDOW_NS.load(Ordering::Relaxed));
            hold(d, &name, &alloc::format!("it crashed more than {limit} times within {} ms", window / 1_000_000))
        }
    }
}

fn hold(d: DomainId, name: &str, why: &str) {
    if let Some(dom) = MANAGER.lock().domains.get_mut(d as usize) {
        dom.state = State::Held;
    }
    warn!("domain {name} held: {why}");
}

pub(super) fn reclaim(d: DomainId, name: &str, inst: Instance) {
    let (image_kib, heap_kib) = (inst.image.size / 1024, inst.heap.1 * crate::memory::PAGE_SIZE / 1024);
    let mut irqs = 0;
    for g in &inst.grants {
        if let Some(n) = g.irq {
            if crate::irq::unregister_if_owner(n, d) {
                irqs += 1;
            }
        }
        g.irq_waiters.wake_all();
    }
    let (blocks, bytes) = super::rref::free_all_owned_by(d);
    inst.image.free();
    crate::memory::free_frames_at(inst.heap.0, inst.heap.1);
    drop(inst.services);
    info!("domain {name} reclaimed: {image_kib} KiB image, {heap_kib} KiB heap, {blocks} shared-heap blocks ({bytes} bytes), {irqs} interrupt routes");
}

// --- exports and imports ------------------------------------------------------------

fn declared(list: &[InterfaceRef], name: &str, hash: &[u8; 32]) -> bool {
    list.iter().any(|i| i.name == name && i.hash == *hash)
}

pub fn export(d: DomainId, name: &str, hash: &[u8; 32], table: usize, state: usize) -> i32 {
    let mut m = MANAGER.lock();
    let Some(dom) = m.domains.get(d as usize) else { return -1 };
    if !declared(&dom.manifest.exports, name, hash) {
        let n = dom.name.clone();
        drop(m);
        warn!("domain {n} rejected export {name}: not declared (with this hash) in its signed manifest");
        return -2;
    }
    // A version being prepared for a swap exports beside the running one, unseen.
    let live = dom.state != State::Preparing;
    if m.exports.iter().any(|e| e.name == name && (e.domain == d || (live && e.live))) {
        return -3;
    }
    m.exports.push(Export {
        name: name.to_string(),
        hash: *hash,
        domain: d,
        table,
        state,
        live,
    });
    0
}

pub fn import(d: DomainId, name: &str, hash: &[u8; 32]) -> i64 {
    let mut m = MANAGER.lock();
    let Some(dom) = m.domains.get(d as usize) else { return -1 };
    if !declared(&dom.manifest.imports, name, hash) {
        let n = dom.name.clone();
        drop(m);
        warn!("domain {n} rejected: imports {name}, which its signed manifest does not declare");
        return -2;
    }
    let Some(e) = m.exports.iter().find(|e| e.live && e.name == name && e.hash == *hash) else {
        return -3;
    };
    let (callee, table, state) = (e.domain, e.table, e.state);
    // A restarted domain imports again: it gets its old slot back.
    if let Some(r) = m.slots.iter_mut().find(|r| r.owner == d && r.name == name && r.hash == *hash) {
        r.callee = callee;
        super::proxy::set_slot(r.index, d, callee, table, state);
        return r.index as i64;
    }
    let Some(index) = (0..super::proxy::MAX_SLOTS).find(|i| !m.slots.iter().any(|r| r.index == *i)) else {
        return -4;
    };
    super::proxy::set_slot(index, d, callee, table, state);
    m.slots.push(SlotRecord {
        index,
        owner: d,
        callee,
        name: name.to_string(),
        hash: *hash,
    });
    index as i64
}

// --- events and device interrupts ---------------------------------------------------

pub fn event_new(owner: DomainId) -> i64 {
    let mut m = MANAGER.lock();
    m.events.push(Event {
        owner,
        count: 0,
        waiters: Box::leak(Box::new(WaitQueue::new())),
    });
    (m.events.len() - 1) as i64
}

/// How an event wait ended.
pub enum Waited {
    /// The event moved on to this count.
    Count(u64),
    /// A hot swap drains the waiting domain: make the call again on the new version.
    Reissue,
    /// The domain that made the call (further out on the chain) died: give up the call.
    CallerDied(DomainId),
}

/// Waits until event `e` moves past `seen`. With `restartable` (the call has had no
/// effect yet) the wait is also given up when a hot swap drains `d` and the thread is in a
/// call into it, or when a domain that called it died (it would return into dead code).
pub fn event_wait(d: DomainId, e: u32, seen: u64, restartable: bool) -> Waited {
    let Some(q) = MANAGER.lock().events.get(e as usize).map(|x| x.waiters) else {
        return Waited::Count(seen);
    };
    let in_call = restartable && super::running_in_call_to(d);
    q.wait_until(|| {
        if restartable {
            if let Some(dead) = super::dead_caller_on_chain() {
                return Some(Waited::CallerDied(dead));
            }
            if in_call && is_cancelling(d) {
                return Some(Waited::Reissue);
            }
        }
        MANAGER
            .lock()
            .events
            .get(e as usize)
            .and_then(|x| (x.count != seen).then_some(Waited::Count(x.count)))
    })
}

/// Wakes event waiters, so that restartable waits look again at whether they must give
/// up: on the events `owner` made (a swap drains it: its calls are re-issued), or on every
/// event (`None`: a domain died, and waits for its calls, in any domain, end).
pub(super) fn wake_event_waiters(owner: Option<DomainId>) {
    let queues: Vec<&'static WaitQueue> = MANAGER
        .lock()
        .events
        .iter()
        .filter(|e| owner.is_none_or(|o| e.owner == o))
        .map(|e| e.waiters)
        .collect();
    for q in queues {
        q.wake_all();
    }
}

pub fn set_state_hooks(d: DomainId, hooks: StateHooks) -> i32 {
    let mut m = MANAGER.lock();
    match m.domains.get_mut(d as usize).and_then(|x| x.instance.as_mut()) {
        Some(i) => {
            i.state_hooks = Some(hooks);
            0
        }
        None => -1,
    }
}

pub fn event_signal(e: u32) {
    let q = {
        let mut m = MANAGER.lock();
        let Some(ev) = m.events.get_mut(e as usize) else { return };
        ev.count += 1;
        ev.waiters
    };
    q.wake_all();
}

fn grant<R>(m: &mut Manager, d: DomainId, index: u32, f: impl FnOnce(&mut Grant) -> R) -> Option<R> {
    m.domains.get_mut(d as usize)?.instance.as_mut()?.grants.get_mut(index as usize).map(f)
}

pub fn device(d: DomainId, index: u32, out: &mut DeviceGrant) -> i32 {
    let mut m = MANAGER.lock();
    match grant(&mut m, d, index, |g| DeviceGrant {
        mmio_base: g.mmio.base,
        mmio_size: g.mmio.size,
        has_irq: g.irq.is_some() as u32,
    }) {
        Some(g) => {
            *out = g;
            0
        }
        None => -1,
    }
}

fn on_granted_irq(irq: IrqNumber, ctx: usize) {
    if let Some(c) = crate::irq::controller() {
        c.disable(irq); // stays masked until the domain says irq_done
    }
    let (d, index) = ((ctx >> 16) as DomainId, (ctx & 0xffff) as u32);
    let q = grant(&mut MANAGER.lock(), d, index, |g| {
        g.irq_pending = true;
        g.irq_waiters
    });
    if let Some(q) = q {
        q.wake_all();
    }
}

pub fn irq_wait(d: DomainId, index: u32) -> i32 {
    let Some(Some(q)) = grant(&mut MANAGER.lock(), d, index, |g| g.irq.map(|_| g.irq_waiters)) else {
        return -1;
    };
    q.wait_until(|| grant(&mut MANAGER.lock(), d, index, |g| core::mem::take(&mut g.irq_pending).then_some(())).flatten());
    0
}

pub fn irq_done(d: DomainId, index: u32) {
    let irq = grant(&mut MANAGER.lock(), d, index, |g| g.irq).flatten();
    if let (Some(irq), Some(c)) = (irq, crate::irq::controller()) {
        c.enable(irq);
    }
}

// --- introspection ------------------------------------------------------------------

pub fn count() -> u32 {
    MANAGER.lock().domains.len() as u32
}

pub fn info(index: u32) -> Option<DomainInfo> {
    let m = MANAGER.lock();
    let d = m.domains.get(index as usize)?;
    let mut name = [0u8; 32];
    let n = d.name.len().min(32);
    name[..n].copy_from_slice(&d.name.as_bytes()[..n]);
    let mut key_id = [0u8; 8];
    key_id.copy_from_slice(&d.key_id[..8]);
    let v = &d.manifest.version;
    Some(DomainInfo {
        id: d.id,
        state: d.state.code(),
        name,
        version: [v.major, v.minor, v.patch],
        key_id,
        calls_served: super::proxy::calls_served(d.id),
        restarts: d.restarts,
        generation: d.generation,
        heap_bytes: d.instance.as_ref().map_or(0, |i| (i.heap.1 * crate::memory::PAGE_SIZE) as u64),
        shared_bytes: super::rref::owned_by(d.id).1 as u64,
    })
}

/// Bytes on the shared heap, all owners together.
pub fn shared_heap_bytes() -> usize {
    super::rref::total_bytes()
}

/// The generation of the callee of `owner`'s slot `slot` (0 if the slot is not theirs).
pub fn slot_generation(owner: DomainId, slot: u32) -> u32 {
    let m = MANAGER.lock();
    m.slots
        .iter()
        .find(|s| s.index == slot as usize && s.owner == owner)
        .and_then(|s| m.domains.get(s.callee as usize))
        .map_or(0, |d| d.generation)
}

/// The running domain that exports `name`, if any.
pub fn exporter_of(name: &str) -> Option<DomainId> {
    MANAGER.lock().exports.iter().find(|e| e.live && e.name == name).map(|e| e.domain)
}

/// Restarts domain `id` on request (the shell's `restart`): a crashed or held domain is
/// queued for the restarter; a running one is stopped first (as if it had crashed, but
/// always restarted). False for the kernel, a rejected domain, or no such domain.
pub fn request_restart(id: DomainId) -> bool {
    let state = match MANAGER.lock().domains.get(id as usize) {
        Some(d) if d.id != KERNEL => d.state,
        _ => return false,
    };
    match state {
        State::Rejected | State::Preparing | State::Retired => return false,
        State::Running => {
            // Stop it the way a crash would, but keep the policy out of it.
            let policy = core::mem::replace(&mut MANAGER.lock().domains[id as usize].manifest.restart, RestartPolicy::Restart);
            crashed(id, "restart requested");
            MANAGER.lock().domains[id as usize].manifest.restart = policy;
            return true;
        }
        State::Crashed | State::Held => {}
    }
    let mut m = MANAGER.lock();
    let d = &mut m.domains[id as usize];
    d.state = State::Crashed;
    d.recent_crashes.clear();
    m.restart_queue.push(id);
    drop(m);
    RESTARTS_PENDING.wake_all();
    true
}

/// (name, instructions to verify, instructions to load) of every started domain.
pub fn boot_costs() -> Vec<(String, u64, u64)> {
    MANAGER
        .lock()
        .domains
        .iter()
        .filter(|d| d.id != KERNEL)
        .map(|d| (d.name.clone(), d.verify_cost, d.load_cost))
        .collect()
}

/// The table and state `name` is exported with (for measuring a plain indirect call).
pub fn export_of(name: &str) -> Option<(usize, usize)> {
    MANAGER.lock().exports.iter().find(|e| e.live && e.name == name).map(|e| (e.table, e.state))
}

/// Address of the first segment of domain `name` mapped with `perm` (for the W^X tests).
pub fn segment_of(name: &str, perm: loader::Permission) -> Option<usize> {
    let m = MANAGER.lock();
    let d = m.domains.iter().find(|d| d.name == name && d.state == State::Running)?;
    d.instance.as_ref()?.image.segments.iter().find(|s| s.1 == perm).map(|s| s.0)
}

/// True if a domain named `shell` is running (then the kernel monitor stays off).
pub fn shell_running() -> bool {
    MANAGER.lock().domains.iter().any(|d| d.name == "shell" && d.state == State::Running)
}

// --- starting -----------------------------------------------------------------------

pub(super) fn keyring() -> (loader::Keyring, loader::Revocations) {
    let mut ring = loader::Keyring::new();
    for (_, key) in crate::keyring::TRUSTED_KEYS {
        ring.add(*key);
    }
    (
        ring,
        loader::Revocations {
            keys: crate::keyring::REVOKED_KEYS.to_vec(),
            digests: crate::keyring::REVOKED_DIGESTS.to_vec(),
        },
    )
}

struct InitCall {
    entry: usize,
    services: *const KernelServices,
    result: i32,
}

unsafe extern "C" fn invoke_init(data: *mut u8, _table: *const (), _state: *const ()) {
    // SAFETY: `data` is the `InitCall` in `run_init`; `entry` is the verified, relocated,
    // RX-mapped entry point of a domain built with the runtime's `entry!` (this ABI).
    unsafe {
        let call = &mut *(data as *mut InitCall);
        let entry: extern "C" fn(&'static KernelServices) -> i32 = core::mem::transmute(call.entry);
        call.result = entry(&*call.services);
    }
}

fn reject(name: &str, why: &str) {
    warn!("domain {name} rejected: {why}");
}

/// Grants the devices `m` names. The console UART the kernel knows is used when the
/// device tree has no `arm,pl011` node.
/// With `route_irqs` false (a version prepared for a swap), the interrupts are routed only
/// when the swap commits (`route_irq`).
fn grants(id: DomainId, m: &Manifest, uart: Option<Device>, route_irqs: bool) -> Result<Vec<Grant>, String> {
    let mut out = Vec::new();
    for (index, compatible) in m.devices.iter().enumerate() {
        let dev = crate::devicetree::find_device(compatible)
            .or_else(|| uart.filter(|_| compatible == "arm,pl011"))
            .ok_or_else(|| alloc::format!("device {compatible:?} is not in the device tree"))?;
        crate::memory::map_device(dev.reg).map_err(|e| alloc::format!("cannot map {compatible}: {e:?}"))?;
        let irq = dev.irq.and_then(|s| crate::irq::translate(&s));
        if let (Some(n), true) = (irq, route_irqs) {
            route_irq(id, index, n, false).map_err(|e| alloc::format!("cannot route irq {n} of {compatible}: {e}"))?;
        }
        out.push(Grant {
            mmio: dev.reg,
            irq,
            irq_pending: false,
            irq_waiters: Box::leak(Box::new(WaitQueue::new())),
        });
    }
    Ok(out)
}

/// Routes interrupt `n` of grant `index` to domain `id`; `replacing` takes it from a
/// domain (a swap's old version), otherwise only from the kernel.
pub(super) fn route_irq(id: DomainId, index: usize, n: IrqNumber, replacing: bool) -> Result<(), crate::irq::IrqError> {
    let h = crate::irq::Handler {
        name: "domain device",
        func: on_granted_irq,
        context: ((id as usize) << 16) | index,
        owner: id,
    };
    if replacing {
        crate::irq::unregister(n);
    }
    crate::irq::register_taking_over(n, h)
}

/// Loads an instance of domain `id` from its verified ELF; returns it and its entry.
pub(super) fn instantiate(id: DomainId, m: &Manifest, elf: &loader::ElfImage, route_irqs: bool) -> Result<(Instance, usize), String> {
    let img = image::load(elf).map_err(|e| alloc::format!("cannot load: {e}"))?;
    let heap_pages = m.heap_limit as usize / crate::memory::PAGE_SIZE;
    let Some(heap) = crate::memory::alloc_frames(heap_pages) else {
        img.free();
        return Err("no memory for its heap".into());
    };
    let uart = MANAGER.lock().uart;
    let grants = match grants(id, m, uart, route_irqs) {
        Ok(g) => g,
        Err(why) => {
            img.free();
            crate::memory::free_frames_at(heap, heap_pages);
            return Err(why);
        }
    };
    let v = &m.version;
    let services = Box::new(super::services::table(id, heap, m.heap_limit as usize, [v.major, v.minor, v.patch]));
    let entry = img.entry;
    Ok((
        Instance {
            image: img,
            heap: (heap, heap_pages),
            services,
            grants,
            state_hooks: None,
        },
        entry,
    ))
}

/// Calls the domain's initialisation; checks it exported what it declared.
pub(super) fn run_init(id: DomainId, m: &Manifest, entry: usize) -> Result<(), String> {
    let services = MANAGER.lock().domains[id as usize]
        .instance
        .as_ref()
        .map(|i| &*i.services as *const KernelServices)
        .ok_or("no instance")?;
    let mut call = InitCall { entry, services, result: -1 };
    let code = call_into(id, invoke_init, &mut call as *mut InitCall as *mut u8, core::ptr::null(), core::ptr::null());
    if code != 0 {
        return Err("crashed during initialisation".into());
    }
    if call.result != 0 {
        return Err(alloc::format!("initialisation failed (code {})", call.result));
    }
    let mm = MANAGER.lock();
    match m.exports.iter().find(|e| !mm.exports.iter().any(|x| x.domain == id && x.name == e.name)) {
        Some(e) => Err(alloc::format!("did not export {}, which its manifest declares", e.name)),
        None => Ok(()),
    }
}

/// Takes `id` out of service for good (a failed start or restart, a swapped-out or a
/// refused new version): its exports, the slots it imported through, its instance.
pub(super) fn retire(id: DomainId, state: State) {
    set_dead(id, true);
    super::proxy::set_callee_live(id, false);
    let (name, inst, pushed) = {
        let mut m = MANAGER.lock();
        m.exports.retain(|e| e.domain != id);
        for r in m.slots.iter().filter(|r| r.owner == id) {
            super::proxy::clear_slot(r.index);
        }
        m.slots.retain(|r| r.owner != id);
        for e in m.events.iter_mut().filter(|e| e.owner == id) {
            e.owner = DomainId::MAX;
        }
        let d = &mut m.domains[id as usize];
        d.state = state;
        let pushed = if state == State::Retired {
            d.elf = None;
            d.pushed.take()
        } else {
            None
        };
        (d.name.clone(), d.instance.take(), pushed)
    };
    if let Some(inst) = inst {
        reclaim(id, &name, inst);
    }
    wake_event_waiters(None);
    if let Some((base, pages)) = pushed {
        crate::memory::free_frames_at(base, pages);
    }
}

/// A domain number for a new record: a retired record no thread is inside any more, or a
/// new one. `None` when all `MAX_DOMAINS` are in use.
pub(super) fn allocate_id() -> Option<DomainId> {
    let retired: Vec<DomainId> = MANAGER.lock().domains.iter().filter(|d| d.state == State::Retired).map(|d| d.id).collect();
    for id in retired {
        if crate::sched::count_other_threads(|c, _| super::context_inside(c, id)) == 0 && super::rref::owned_by(id).0 == 0 {
            return Some(id);
        }
    }
    let n = MANAGER.lock().domains.len();
    (n < MAX_DOMAINS).then_some(n as DomainId)
}

/// Puts `d` in the table at `d.id` (a new slot at the end, or a reused retired record).
pub(super) fn install(d: Domain) {
    let id = d.id as usize;
    set_dead(d.id, false);
    set_cancelling(d.id, false);
    let mut m = MANAGER.lock();
    if id < m.domains.len() {
        m.domains[id] = d;
    } else {
        m.domains.push(d);
    }
}

/// A fresh record for a verified domain (not yet instantiated).
pub(super) fn new_record(id: DomainId, v: &loader::VerifiedDomain<'static>, source: &str, state: State, generation: u32, verify_cost: u64) -> Domain {
    Domain {
        id,
        name: v.manifest.name.clone(),
        manifest: v.manifest.clone(),
        key_id: v.key_id,
        source: source.into(),
        pushed: None,
        elf: Some(v.elf.clone()),
        digest: v.elf_digest,
        state,
        instance: None,
        restarts: 0,
        generation,
        recent_crashes: Vec::new(),
        verify_cost,
        load_cost: 0,
    }
}

fn start(v: &loader::VerifiedDomain<'static>, verify_cost: u64, source: &str) -> bool {
    let m = &v.manifest;
    let id = MANAGER.lock().domains.len() as DomainId;
    if id as usize >= MAX_DOMAINS {
        reject(&m.name, "too many domains");
        return false;
    }
    let load_start = crate::arch::pmu::cycles();
    let (inst, entry) = match instantiate(id, m, &v.elf, true) {
        Ok(x) => x,
        Err(why) => {
            reject(&m.name, &why);
            return false;
        }
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
    let mut record = new_record(id, v, source, State::Running, 1, verify_cost);
    record.instance = Some(inst);
    record.load_cost = load_cost;
    install(record);
    if let Err(why) = run_init(id, m, entry) {
        retire(id, State::Rejected);
        reject(&m.name, &why);
        return false;
    }
    let list = |l: &[InterfaceRef]| {
        if l.is_empty() {
            String::from("-")
        } else {
            l.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
        }
    };
    info!("domain {} started: exports {}; imports {}", m.name, list(&m.exports), list(&m.imports));
    true
}

/// Re-instantiates crashed domain `id` from its kept image: digest re-checked, no new
/// signature check. Re-points every slot into it to the new instance.
fn restart(id: DomainId) {
    let (name, manifest, elf, digest) = {
        let m = MANAGER.lock();
        let d = &m.domains[id as usize];
        if d.state != State::Crashed {
            return;
        }
        let Some(elf) = d.elf.clone() else { return };
        (d.name.clone(), d.manifest.clone(), elf, d.digest)
    };
    // Let every thread that was inside the dead instance be unwound first (they were woken
    // at the crash and are unwound when they next run); only then may a new instance take
    // the domain's number.
    let mut waited = 0;
    while crate::sched::count_other_threads(|c, _| super::context_inside(c, id)) > 0 {
        if waited >= 100 {
            hold(id, &name, "threads are still inside its dead instance after 1 s");
            return;
        }
        crate::sched::sleep_ms(10);
        waited += 1;
    }
    if loader::sha256(elf.bytes()) != digest {
        hold(id, &name, "its image in memory no longer matches the verified digest");
        return;
    }
    let (inst, entry) = match instantiate(id, &manifest, &elf, true) {
        Ok(x) => x,
        Err(why) => return hold(id, &name, &alloc::format!("restart failed: {why}")),
    };
    let generation = {
        let mut m = MANAGER.lock();
        let d = &mut m.domains[id as usize];
        d.instance = Some(inst);
        d.state = State::Running;
        d.generation += 1;
        d.restarts += 1;
        d.generation
    };
    set_dead(id, false);
    if let Err(why) = run_init(id, &manifest, entry) {
        retire(id, State::Held);
        warn!("domain {name} held: restart failed: {why}");
        return;
    }
    let m = MANAGER.lock();
    for s in m.slots.iter().filter(|s| s.callee == id) {
        if let Some(e) = m.exports.iter().find(|e| e.live && e.domain == id && e.name == s.name && e.hash == s.hash) {
            super::proxy::set_slot(s.index, s.owner, id, e.table, e.state);
        }
    }
    drop(m);
    info!("domain {name} restarted: generation {generation}");
}

/// Restarts crashed domains as `crashed` queues them.
fn restarter() {
    loop {
        let id = RESTARTS_PENDING.wait_until(|| {
            let mut m = MANAGER.lock();
            (!m.restart_queue.is_empty()).then(|| m.restart_queue.remove(0))
        });
        restart(id);
    }
}

/// Registers the kernel as domain 0 (exporting `Kernel`), then verifies and starts every
/// domain in `initrd`, providers before their importers.
pub fn boot(initrd: Option<&'static [u8]>, uart: Option<Device>) {
    {
        let mut m = MANAGER.lock();
        m.uart = uart;
        m.domains.push(Domain {
            id: KERNEL,
            name: "kernel".into(),
            manifest: kernel_manifest(),
            key_id: [0; 32],
            source: "built in".into(),
            pushed: None,
            elf: None,
            digest: [0; 32],
            state: State::Running,
            instance: None,
            restarts: 0,
            generation: 1,
            recent_crashes: Vec::new(),
            verify_cost: 0,
            load_cost: 0,
        });
    }
    interfaces::set_services(Box::leak(Box::new(super::services::table(KERNEL, 0, 0, [0, 1, 0]))));
    if let Err(e) = super::kernel_iface::export() {
        warn!("domains: the kernel cannot export its interface ({e})");
    }
    if let Err(e) = crate::sched::spawn("restarter", crate::sched::Priority::High, restarter) {
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
    MANAGER.lock().initrd = Some(bytes);
    let (ring, revoked) = keyring();
    let mut pending: Vec<(loader::VerifiedDomain<'static>, u64, &str)> = Vec::new();
    for entry in archive.entries() {
        let stem = entry.name.strip_suffix(".qvd").unwrap_or(entry.name);
        let t0 = crate::arch::pmu::cycles();
        let verified = loader::verify(entry.data, &ring, &revoked);
        let cost = crate::arch::pmu::cycles() - t0;
        match verified {
            Err(e) => reject(stem, &e.to_string()),
            // The first valid entry of a name boots; later ones are kept for hot swaps (and
            // verified again when swapped in).
            Ok(v) if pending.iter().any(|p| p.0.manifest.name == v.manifest.name) => {
                info!("initrd: {} is {} {}, kept for swapping in", entry.name, v.manifest.name, v.manifest.version)
            }
            Ok(v) if v.manifest.name == "kernel" => reject(stem, "the name \"kernel\" is reserved"),
            Ok(v) => pending.push((v, cost, entry.name)),
        }
    }
    // Start providers before importers: a domain starts once every import it declares is
    // exported (with the same hash) by the kernel or a started domain.
    loop {
        let ready = pending.iter().position(|(v, _, _)| {
            let m = MANAGER.lock();
            v.manifest
                .imports
                .iter()
                .all(|i| m.exports.iter().any(|e| e.name == i.name && e.hash == i.hash))
        });
        let Some(i) = ready else { break };
        let (v, cost, source) = pending.remove(i);
        start(&v, cost, source);
    }
    for (v, _, _) in pending {
        let m = MANAGER.lock();
        let missing = v
            .manifest
            .imports
            .iter()
            .find(|i| !m.exports.iter().any(|e| e.name == i.name && e.hash == i.hash))
            .map_or(String::new(), |i| i.name.clone());
        drop(m);
        reject(
            &v.manifest.name,
            &alloc::format!("imports {missing}, which no running domain exports with that interface hash"),
        );
    }
}
