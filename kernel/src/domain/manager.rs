//! The domain manager: verifies every initrd envelope, starts domains in dependency order,
//! wires each import to the export with the same name and interface hash (only if the
//! importer's signed manifest lists it), grants devices the manifest names, and keeps the
//! table the shell's `domains` command shows. Every refusal is one `rejected` log line.

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
use interfaces::{DeviceGrant, DomainInfo, KernelServices};
use loader::manifest::{InterfaceRef, Manifest, RestartPolicy, Version};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Running,
    Crashed,
    Rejected,
}

struct Grant {
    mmio: Region,
    irq: Option<IrqNumber>,
    irq_pending: bool,
    irq_waiters: &'static WaitQueue,
}

struct Domain {
    id: DomainId,
    name: String,
    manifest: Manifest,
    key_id: [u8; 32],
    state: State,
    image: Option<LoadedImage>,
    grants: Vec<Grant>,
    restarts: u32,
    generation: u32,
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

struct Event {
    count: u64,
    waiters: &'static WaitQueue,
}

struct Manager {
    domains: Vec<Domain>,
    exports: Vec<Export>,
    /// Slots handed out so far (the slot table itself is `proxy`'s).
    slots: usize,
    events: Vec<Event>,
}

static MANAGER: IrqLock<Manager> = IrqLock::new("domains", Manager { domains: Vec::new(), exports: Vec::new(), slots: 0, events: Vec::new() });

fn short(id: &[u8; 32]) -> String {
    id[..8].iter().map(|b| alloc::format!("{b:02x}")).collect()
}

fn kernel_manifest() -> Manifest {
    Manifest {
        name: "kernel".into(),
        version: Version { major: 0, minor: 1, patch: 0 },
        exports: alloc::vec![InterfaceRef { name: interfaces::kernel::NAME.into(), hash: interfaces::kernel::HASH }],
        imports: alloc::vec![
            InterfaceRef { name: interfaces::console::NAME.into(), hash: interfaces::console::HASH },
            InterfaceRef { name: interfaces::hello::NAME.into(), hash: interfaces::hello::HASH },
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
    MANAGER.lock().domains.iter().find(|x| x.id == d).map_or_else(|| alloc::format!("domain#{d}"), |x| x.name.clone())
}

// --- calls --------------------------------------------------------------------------

/// Records that `d` crashed; later calls to it fail with `Unavailable`.
pub fn crashed(d: DomainId, cause: &str) {
    let name = {
        let mut m = MANAGER.lock();
        m.exports.retain(|e| e.domain != d);
        match m.domains.iter_mut().find(|x| x.id == d) {
            Some(x) => {
                x.state = State::Crashed;
                super::proxy::set_callee_live(d, false);
                x.name.clone()
            }
            None => return,
        }
    };
    warn!("domain {name} crashed: {cause}");
}

// --- exports and imports ------------------------------------------------------------

fn declared(list: &[InterfaceRef], name: &str, hash: &[u8; 32]) -> bool {
    list.iter().any(|i| i.name == name && i.hash == *hash)
}

pub fn export(d: DomainId, name: &str, hash: &[u8; 32], table: usize, state: usize) -> i32 {
    let mut m = MANAGER.lock();
    let Some(dom) = m.domains.iter().find(|x| x.id == d) else { return -1 };
    if !declared(&dom.manifest.exports, name, hash) {
        let n = dom.name.clone();
        drop(m);
        warn!("domain {n} rejected export {name}: not declared (with this hash) in its signed manifest");
        return -2;
    }
    if m.exports.iter().any(|e| e.name == name) {
        return -3;
    }
    m.exports.push(Export { name: name.to_string(), hash: *hash, domain: d, table, state });
    0
}

pub fn import(d: DomainId, name: &str, hash: &[u8; 32]) -> i64 {
    let mut m = MANAGER.lock();
    let Some(dom) = m.domains.iter().find(|x| x.id == d) else { return -1 };
    if !declared(&dom.manifest.imports, name, hash) {
        let n = dom.name.clone();
        drop(m);
        warn!("domain {n} rejected: imports {name}, which its signed manifest does not declare");
        return -2;
    }
    let Some(e) = m.exports.iter().find(|e| e.name == name && e.hash == *hash) else { return -3 };
    let (callee, table, state) = (e.domain, e.table, e.state);
    let index = m.slots;
    if !super::proxy::set_slot(index, d, callee, table, state) {
        return -4;
    }
    m.slots += 1;
    index as i64
}

// --- events and device interrupts ---------------------------------------------------

pub fn event_new() -> i64 {
    let mut m = MANAGER.lock();
    m.events.push(Event { count: 0, waiters: Box::leak(Box::new(WaitQueue::new())) });
    (m.events.len() - 1) as i64
}

pub fn event_wait(e: u32, seen: u64) -> u64 {
    let Some(q) = MANAGER.lock().events.get(e as usize).map(|x| x.waiters) else { return seen };
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

pub fn device(d: DomainId, index: u32, out: &mut DeviceGrant) -> i32 {
    let m = MANAGER.lock();
    let Some(g) = m.domains.iter().find(|x| x.id == d).and_then(|x| x.grants.get(index as usize)) else { return -1 };
    *out = DeviceGrant { mmio_base: g.mmio.base, mmio_size: g.mmio.size, has_irq: g.irq.is_some() as u32 };
    0
}

fn on_granted_irq(irq: IrqNumber, ctx: usize) {
    if let Some(c) = crate::irq::controller() {
        c.disable(irq); // stays masked until the domain says irq_done
    }
    let (d, index) = ((ctx >> 16) as DomainId, ctx & 0xffff);
    let q = {
        let mut m = MANAGER.lock();
        let Some(g) = m.domains.iter_mut().find(|x| x.id == d).and_then(|x| x.grants.get_mut(index)) else { return };
        g.irq_pending = true;
        g.irq_waiters
    };
    q.wake_all();
}

pub fn irq_wait(d: DomainId, index: u32) -> i32 {
    let Some(q) = MANAGER.lock().domains.iter().find(|x| x.id == d).and_then(|x| x.grants.get(index as usize)).filter(|g| g.irq.is_some()).map(|g| g.irq_waiters) else { return -1 };
    q.wait_until(|| {
        let mut m = MANAGER.lock();
        let g = m.domains.iter_mut().find(|x| x.id == d)?.grants.get_mut(index as usize)?;
        core::mem::take(&mut g.irq_pending).then_some(())
    });
    0
}

pub fn irq_done(d: DomainId, index: u32) {
    let irq = MANAGER.lock().domains.iter().find(|x| x.id == d).and_then(|x| x.grants.get(index as usize)).and_then(|g| g.irq);
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
        },
        name,
        version: [v.major, v.minor, v.patch],
        key_id,
        calls_served: super::proxy::calls_served(d.id),
        restarts: d.restarts,
        generation: d.generation,
    })
}

/// Address of the first segment of domain `name` mapped with `perm` (for the W^X tests).
pub fn segment_of(name: &str, perm: loader::Permission) -> Option<usize> {
    let m = MANAGER.lock();
    let d = m.domains.iter().find(|d| d.name == name)?;
    d.image.as_ref()?.segments.iter().find(|s| s.1 == perm).map(|s| s.0)
}

/// (name, instructions to verify, instructions to load) of every started domain.
pub fn boot_costs() -> Vec<(String, u64, u64)> {
    MANAGER.lock().domains.iter().filter(|d| d.id != KERNEL).map(|d| (d.name.clone(), d.verify_cost, d.load_cost)).collect()
}

/// The table and state `name` is exported with (for measuring a plain indirect call).
pub fn export_of(name: &str) -> Option<(usize, usize)> {
    MANAGER.lock().exports.iter().find(|e| e.name == name).map(|e| (e.table, e.state))
}

/// True if a domain named `shell` is running (then the kernel monitor stays off).
pub fn shell_running() -> bool {
    MANAGER.lock().domains.iter().any(|d| d.name == "shell" && d.state == State::Running)
}

/// The running domain that exports `name`, if any.
pub fn exporter_of(name: &str) -> Option<DomainId> {
    MANAGER.lock().exports.iter().find(|e| e.name == name).map(|e| e.domain)
}

// --- boot ---------------------------------------------------------------------------

fn keyring() -> (loader::Keyring, loader::Revocations) {
    let mut ring = loader::Keyring::new();
    for (_, key) in crate::keyring::TRUSTED_KEYS {
        ring.add(*key);
    }
    (ring, loader::Revocations { keys: crate::keyring::REVOKED_KEYS.to_vec(), digests: crate::keyring::REVOKED_DIGESTS.to_vec() })
}

struct InitCall {
    entry: usize,
    services: *const KernelServices,
    result: i32,
}

unsafe extern "C" fn invoke_init(data: *mut u8, _table: *const (), _state: *const ()) {
    // SAFETY: `data` is the `InitCall` in `start`; `entry` is the verified, relocated,
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

/// Grants the devices `m` names. `uart` is the console UART the kernel knows (used when
/// the device tree has no `arm,pl011` node).
fn grants(id: DomainId, m: &Manifest, uart: Option<Device>) -> Result<Vec<Grant>, String> {
    let mut out = Vec::new();
    for (index, compatible) in m.devices.iter().enumerate() {
        let dev = crate::devicetree::find_device(compatible)
            .or_else(|| uart.filter(|_| compatible == "arm,pl011"))
            .ok_or_else(|| alloc::format!("device {compatible:?} is not in the device tree"))?;
        let mmio = crate::memory::map_device(dev.reg).map_err(|e| alloc::format!("cannot map {compatible}: {e:?}"))?;
        let irq = dev.irq.and_then(|s| crate::irq::translate(&s));
        if let Some(n) = irq {
            let h = crate::irq::Handler { name: "domain device", func: on_granted_irq, context: ((id as usize) << 16) | index, owner: id };
            crate::irq::register_taking_over(n, h).map_err(|e| alloc::format!("cannot route irq {n} of {compatible}: {e}"))?;
        }
        out.push(Grant { mmio: Region { base: mmio + (dev.reg.base & 0xfff), size: dev.reg.size }, irq, irq_pending: false, irq_waiters: Box::leak(Box::new(WaitQueue::new())) });
    }
    Ok(out)
}

fn start(v: &loader::VerifiedDomain, uart: Option<Device>, verify_cost: u64) -> bool {
    let m = &v.manifest;
    let id = MANAGER.lock().domains.len() as DomainId;
    let load_start = crate::arch::pmu::cycles();
    let img = match image::load(v) {
        Ok(i) => i,
        Err(e) => {
            reject(&m.name, &alloc::format!("cannot load: {e}"));
            return false;
        }
    };
    let heap_pages = m.heap_limit as usize / crate::memory::PAGE_SIZE;
    let Some(heap) = crate::memory::alloc_frames(heap_pages) else {
        reject(&m.name, "no memory for its heap");
        return false;
    };
    let grants = match grants(id, m, uart) {
        Ok(g) => g,
        Err(why) => {
            reject(&m.name, &why);
            return false;
        }
    };
    let services: &'static KernelServices = Box::leak(Box::new(super::services::table(id, heap, m.heap_limit as usize)));
    let load_cost = crate::arch::pmu::cycles() - load_start;
    info!(
        "domain {} {} verified (key id {}), loaded at {:#x}: {} bytes, segments {}, {} relocations, heap {} KiB",
        m.name,
        m.version,
        short(&v.key_id),
        img.base,
        img.size,
        image::describe_segments(v),
        v.elf.relocation_count(),
        m.heap_limit / 1024
    );
    let entry = img.entry;

    MANAGER.lock().domains.push(Domain { id, name: m.name.clone(), manifest: m.clone(), key_id: v.key_id, state: State::Running, image: Some(img), grants, restarts: 0, generation: 1, verify_cost, load_cost });

    let mut call = InitCall { entry, services, result: -1 };
    let code = call_into(id, invoke_init, &mut call as *mut InitCall as *mut u8, core::ptr::null(), core::ptr::null());
    let failure = if code != 0 {
        Some(String::from("crashed during initialisation"))
    } else if call.result != 0 {
        Some(alloc::format!("initialisation failed (code {})", call.result))
    } else {
        let mm = MANAGER.lock();
        m.exports.iter().find(|e| !mm.exports.iter().any(|x| x.domain == id && x.name == e.name)).map(|e| alloc::format!("did not export {}, which its manifest declares", e.name))
    };
    if let Some(why) = failure {
        {
            let mut mm = MANAGER.lock();
            mm.exports.retain(|e| e.domain != id);
            if let Some(d) = mm.domains.iter_mut().find(|d| d.id == id) {
                d.state = State::Rejected;
            }
            super::proxy::set_callee_live(id, false);
        }
        reject(&m.name, &why);
        return false;
    }
    let list = |l: &[InterfaceRef]| if l.is_empty() { String::from("-") } else { l.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ") };
    info!("domain {} started: exports {}; imports {}", m.name, list(&m.exports), list(&m.imports));
    true
}

/// Registers the kernel as domain 0 (exporting `Kernel`), then verifies and starts every
/// domain in `initrd`, providers before their importers.
pub fn boot(initrd: Option<&'static [u8]>, uart: Option<Device>) {
    {
        let mut m = MANAGER.lock();
        m.domains.push(Domain { id: KERNEL, name: "kernel".into(), manifest: kernel_manifest(), key_id: [0; 32], state: State::Running, image: None, grants: Vec::new(), restarts: 0, generation: 1, verify_cost: 0, load_cost: 0 });
    }
    interfaces::set_services(Box::leak(Box::new(super::services::table(KERNEL, 0, 0))));
    if let Err(e) = super::kernel_iface::export() {
        warn!("domains: the kernel cannot export its interface ({e})");
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
            v.manifest.imports.iter().all(|i| m.exports.iter().any(|e| e.name == i.name && e.hash == i.hash))
        });
        let Some(i) = ready else { break };
        let (v, cost) = pending.remove(i);
        start(&v, uart, cost);
    }
    for (v, _) in pending {
        let m = MANAGER.lock();
        let missing = v.manifest.imports.iter().find(|i| !m.exports.iter().any(|e| e.name == i.name && e.hash == i.hash)).map_or(String::new(), |i| i.name.clone());
        drop(m);
        reject(&v.manifest.name, &alloc::format!("imports {missing}, which no running domain exports with that interface hash"));
    }
}
