//! The domain manager: verifies every initrd envelope, starts domains in dependency order,
//! wires each import to the export with the same name and interface hash (only if the
//! importer's signed manifest lists it), grants devices the manifest names, and keeps the
//! table the shell's `domains` command shows. Every refusal is one `rejected` log line.
//!
//! When a domain fails, `crashed` marks it dead (its slots refuse calls at once),
//! reclaims its instance (image, heap, shared-heap blocks, interrupt routes) and applies its
//! restart policy: the restarter thread re-instantiates it from the verified image kept in
//! memory, and re-points its callers' slots to the new instance.

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
}

struct Grant {
    mmio: Region,
    irq: Option<IrqNumber>,
    irq_pending: bool,
    irq_waiters: &'static WaitQueue,
}

/// What one run of a domain owns; all of it is reclaimed when the domain dies.
struct Instance {
    image: LoadedImage,
    heap: (usize, usize),
    services: Box<KernelServices>,
    grants: Vec<Grant>,
}

struct Domain {
    id: DomainId,
    name: String,
    manifest: Manifest,
    key_id: [u8; 32],
    /// The verified, parsed ELF (its bytes stay in the reserved initrd) and its digest,
    /// kept for restarts. `None` for the kernel.
    elf: Option<loader::ElfImage<'static>>,
    digest: [u8; 32],
    state: State,
    instance: Option<Instance>,
    restarts: u32,
    generation: u32,
    /// Uptimes (ns) of the latest crashes, for the restart rate limit.
    recent_crashes: Vec<u64>,
    /// Instructions (PMU cycles under `-icount shift=0`) to verify and to load it.
    verify_cost: u64,
    load_cost: u64,
}

struct Export {
    name: String,
    hash: [u8; 32],
    domain: DomainId,
    table: usize,
    state: usize,
}

/// Which interface a slot was made for, to re-point it after a restart.
struct SlotRecord {
    index: usize,
    owner: DomainId,
    callee: DomainId,
    name: String,
    hash: [u8; 32],
}

struct Event {
    owner: DomainId,
    count: u64,
    waiters: &'static WaitQueue,
}

struct Manager {
    domains: Vec<Domain>,
    exports: Vec<Export>,
    slots: Vec<SlotRecord>,
    events: Vec<Event>,
    restart_queue: Vec<DomainId>,
    uart: Option<Device>,
}

static MANAGER: IrqLock<Manager> = IrqLock::new(
    "domains",
    Manager {
        domains: Vec::new(),
        exports: Vec::new(),
        slots: Vec::new(),
        events: Vec::new(),
        restart_queue: Vec::new(),
        uart: None,
    },
);
static RESTARTS_PENDING: WaitQueue = WaitQueue::new();

/// Per domain: 1 once it died, until it runs again (checked on every return to a thread).
const MAX_DOMAINS: usize = 64;
static DEAD: [AtomicU8; MAX_DOMAINS] = [const { AtomicU8::new(0) }; MAX_DOMAINS];

/// More than `limit` crashes within `window` and a `restart` domain is held instead.
/// Defaults 3 in 1 s; `qvq.restart_limit=N` (0: no limit) and `qvq.restart_window_ms=T`
/// on the command line change them.
static RATE_LIMIT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(3);
static RATE_WINDOW_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1_000_000_000);

pub fn set_restart_rate_limit(limit: usize, window_ms: u64) {
    RATE_LIMIT.store(limit, Ordering::Relaxed);
    RATE_WINDOW_NS.store(window_ms.saturating_mul(1_000_000), Ordering::Relaxed);
}

pub fn is_dead(d: DomainId) -> bool {
    DEAD.get(d as usize).is_some_and(|x| x.load(Ordering::Relaxed) != 0)
}

fn short(id: &[u8; 32]) -> String {
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
    if let Some(x) = DEAD.get(d as usize) {
        x.store(1, Ordering::Relaxed);
    }
    super::proxy::set_callee_live(d, false);
    let (name, instance, policy, wake) = {
        let mut m = MANAGER.lock();
        m.exports.retain(|e| e.domain != d);
        let wake: Vec<&'static WaitQueue> = m.events.iter().filter(|e| e.owner == d).map(|e| e.waiters).collect();
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
        (dom.name.clone(), dom.instance.take(), policy, wake)
    };
    warn!("domain {name} crashed: {cause}");
    if let Some(inst) = instance {
        reclaim(d, &name, inst);
    }
    for q in wake {
        q.wake_all();
    }
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

fn reclaim(d: DomainId, name: &str, inst: Instance) {
    let (image_kib, heap_kib) = (inst.image.size / 1024, inst.heap.1 * crate::memory::PAGE_SIZE / 1024);
    let mut irqs = 0;
    for g in &inst.grants {
        if let Some(n) = g.irq {
            crate::irq::unregister(n);
            irqs += 1;
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
    if m.exports.iter().any(|e| e.name == name) {
        return -3;
    }
    m.exports.push(Export {
        name: name.to_string(),
        hash: *hash,
        domain: d,
        table,
        state,
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
    let Some(e) = m.exports.iter().find(|e| e.name == name && e.hash == *hash) else {
        return -3;
    };
    let (callee, table, state) = (e.domain, e.table, e.state);
    let index = m.slots.len();
    if !super::proxy::set_slot(index, d, callee, table, state) {
        return -4;
    }
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

pub fn event_wait(e: u32, seen: u64) -> u64 {
    let Some(q) = MANAGER.lock().events.get(e as usize).map(|x| x.waiters) else {
        return seen;
    };
    q.wait_until(|| MANAGER.lock().events.get(e as usize).and_then(|x| (x.count != seen).then_some(x.count)))
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
        state: match d.state {
            State::Running => 0,
            State::Crashed => 1,
            State::Rejected => 2,
            State::Held => 3,
        },
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
    MANAGER.lock().exports.iter().find(|e| e.name == name).map(|e| e.domain)
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
        State::Rejected => return false,
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
    MANAGER.lock().exports.iter().find(|e| e.name == name).map(|e| (e.table, e.state))
}

/// Address of the first segment of domain `name` mapped with `perm` (for the W^X tests).
pub fn segment_of(name: &str, perm: loader::Permission) -> Option<usize> {
    let m = MANAGER.lock();
    let d = m.domains.iter().find(|d| d.name == name)?;
    d.instance.as_ref()?.image.segments.iter().find(|s| s.1 == perm).map(|s| s.0)
}

/// True if a domain named `shell` is running (then the kernel monitor stays off).
pub fn shell_running() -> bool {
    MANAGER.lock().domains.iter().any(|d| d.name == "shell" && d.state == State::Running)
}

// --- starting -----------------------------------------------------------------------

fn keyring() -> (loader::Keyring, loader::Revocations) {
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
fn grants(id: DomainId, m: &Manifest, uart: Option<Device>) -> Result<Vec<Grant>, String> {
    let mut out = Vec::new();
    for (index, compatible) in m.devices.iter().enumerate() {
        let dev = crate::devicetree::find_device(compatible)
            .or_else(|| uart.filter(|_| compatible == "arm,pl011"))
            .ok_or_else(|| alloc::format!("device {compatible:?} is not in the device tree"))?;
        crate::memory::map_device(dev.reg).map_err(|e| alloc::format!("cannot map {compatible}: {e:?}"))?;
        let irq = dev.irq.and_then(|s| crate::irq::translate(&s));
        if let Some(n) = irq {
            let h = crate::irq::Handler {
                name: "domain device",
                func: on_granted_irq,
                context: ((id as usize) << 16) | index,
                owner: id,
            };
            crate::irq::register_taking_over(n, h).map_err(|e| alloc::format!("cannot route irq {n} of {compatible}: {e}"))?;
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

/// Loads an instance of domain `id` from its verified ELF; returns it and its entry.
fn instantiate(id: DomainId, m: &Manifest, elf: &loader::ElfImage) -> Result<(Instance, usize), String> {
    let img = image::load(elf).map_err(|e| alloc::format!("cannot load: {e}"))?;
    let heap_pages = m.heap_limit as usize / crate::memory::PAGE_SIZE;
    let Some(heap) = crate::memory::alloc_frames(heap_pages) else {
        img.free();
        return Err("no memory for its heap".into());
    };
    let uart = MANAGER.lock().uart;
    let grants = match grants(id, m, uart) {
        Ok(g) => g,
        Err(why) => {
            img.free();
            crate::memory::free_frames_at(heap, heap_pages);
            return Err(why);
        }
    };
    let services = Box::new(super::services::table(id, heap, m.heap_limit as usize));
    let entry = img.entry;
    Ok((
        Instance {
            image: img,
            heap: (heap, heap_pages),
            services,
            grants,
        },
        entry,
    ))
}

/// Calls the domain's initialisation; checks it exported what it declared.
fn run_init(id: DomainId, m: &Manifest, entry: usize) -> Result<(), String> {
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

/// Takes `id` out of service for good (a failed start or restart).
fn retire(id: DomainId, state: State) {
    if let Some(x) = DEAD.get(id as usize) {
        x.store(1, Ordering::Relaxed);
    }
    super::proxy::set_callee_live(id, false);
    let (name, inst) = {
        let mut m = MANAGER.lock();
        m.exports.retain(|e| e.domain != id);
        let d = &mut m.domains[id as usize];
        d.state = state;
        (d.name.clone(), d.instance.take())
    };
    if let Some(inst) = inst {
        reclaim(id, &name, inst);
    }
}

fn start(v: &loader::VerifiedDomain<'static>, verify_cost: u64) -> bool {
    let m = &v.manifest;
    let id = MANAGER.lock().domains.len() as DomainId;
    if id as usize >= MAX_DOMAINS {
        reject(&m.name, "too many domains");
        return false;
    }
    let load_start = crate::arch::pmu::cycles();
    let (inst, entry) = match instantiate(id, m, &v.elf) {
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
    MANAGER.lock().domains.push(Domain {
        id,
        name: m.name.clone(),
        manifest: m.clone(),
        key_id: v.key_id,
        elf: Some(v.elf.clone()),
        digest: v.elf_digest,
        state: State::Running,
        instance: Some(inst),
        restarts: 0,
        generation: 1,
        recent_crashes: Vec::new(),
        verify_cost,
        load_cost,
    });
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
    while crate::sched::count_other_threads(|c| super::context_inside(c, id)) > 0 {
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
    let (inst, entry) = match instantiate(id, &manifest, &elf) {
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
    DEAD[id as usize].store(0, Ordering::Relaxed);
    if let Err(why) = run_init(id, &manifest, entry) {
        retire(id, State::Held);
        warn!("domain {name} held: restart failed: {why}");
        return;
    }
    let m = MANAGER.lock();
    for s in m.slots.iter().filter(|s| s.callee == id) {
        if let Some(e) = m.exports.iter().find(|e| e.domain == id && e.name == s.name && e.hash == s.hash) {
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
    interfaces::set_services(Box::leak(Box::new(super::services::table(KERNEL, 0, 0))));
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
    let (ring, revoked) = keyring();
    let mut pending: Vec<(loader::VerifiedDomain<'static>, u64)> = Vec::new();
    for entry in archive.entries() {
        let stem = entry.name.strip_suffix(".qvd").unwrap_or(entry.name);
        let t0 = crate::arch::pmu::cycles();
        let verified = loader::verify(entry.data, &ring, &revoked);
        let cost = crate::arch::pmu::cycles() - t0;
        match verified {
            Err(e) => reject(stem, &e.to_string()),
            Ok(v) if pending.iter().any(|p| p.0.manifest.name == v.manifest.name) => reject(stem, "a domain with this name is already in the initrd"),
            Ok(v) if v.manifest.name == "kernel" => reject(stem, "the name \"kernel\" is reserved"),
            Ok(v) => pending.push((v, cost)),
        }
    }
    // Start providers before importers: a domain starts once every import it declares is
    // exported (with the same hash) by the kernel or a started domain.
    loop {
        let ready = pending.iter().position(|(v, _)| {
            let m = MANAGER.lock();
            v.manifest
                .imports
                .iter()
                .all(|i| m.exports.iter().any(|e| e.name == i.name && e.hash == i.hash))
        });
        let Some(i) = ready else { break };
        let (v, cost) = pending.remove(i);
        start(&v, cost);
    }
    for (v, _) in pending {
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
