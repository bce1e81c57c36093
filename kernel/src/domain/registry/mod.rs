//! The domain registry: every domain record, every export and every proxy slot the kernel
//! handed out, behind one lock. Its fields are private and its methods are the only way to
//! change them; each method keeps these rules true together (the model: Hubris's task table):
//!
//! * a domain is *dead* (`is_dead`, read lock-free on every return to a thread) exactly
//!   while its slots refuse calls, from its crash or retirement until it runs again;
//! * an export is *live* (importable, a slot may point at it) only while its domain serves:
//!   a version being prepared for a hot swap exports unseen until `commit_swap`;
//! * every slot record names the domain its slot dispatches to (`repoint` moves both).

mod record;
mod wiring;
pub use wiring::ExportedTable;

pub use record::{Domain, State};
use wiring::{Export, SlotRecord};

use super::instance::Instance;
use super::proxy;
use super::{DomainId, KERNEL};
use crate::devicetree::Device;
use crate::memory::FrameRange;
use crate::sync::{IrqGuard, IrqLock};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};
use interfaces::DomainInfo;
use loader::manifest::{Manifest, RestartPolicy, Version};

/// At most this many domain records (retired ones are reused). 128 since the growth
/// bench boots 64 generated domains besides the kernel's own record.
pub const MAX_DOMAINS: usize = 128;

/// A version a hot swap took out of service, for `versions NAME`.
pub struct RetiredVersion {
    pub name: String,
    pub version: Version,
    pub source: String,
    pub at_ns: u64,
}

/// What a crash did to a domain's record, for the recovery policy to act on.
pub struct Crash {
    pub name: String,
    pub instance: Option<Instance>,
    /// The policy to apply; `None` when the rate limit turned `restart` into `hold`.
    pub policy: Option<RestartPolicy>,
}

/// What `retire` took out of a record: reclaimed by the caller, outside the lock.
pub struct Retirement {
    pub name: String,
    pub instance: Option<Instance>,
    pub pushed: Option<FrameRange>,
}

pub struct Registry {
    domains: Vec<Domain>,
    exports: Vec<Export>,
    slots: Vec<SlotRecord>,
    restart_queue: Vec<DomainId>,
    retired: Vec<RetiredVersion>,
    /// The console UART the kernel knows (granted when the device tree names none).
    uart: Option<Device>,
    /// The initrd, validated once at boot (swap candidates are read from it).
    initrd: Option<initrd::Archive<'static>>,
}

static REGISTRY: IrqLock<Registry> = IrqLock::new(
    "domains",
    Registry {
        domains: Vec::new(),
        exports: Vec::new(),
        slots: Vec::new(),
        restart_queue: Vec::new(),
        retired: Vec::new(),
        uart: None,
        initrd: None,
    },
);

/// The registry, locked. Never call into a domain or block while holding it.
pub fn registry() -> IrqGuard<'static, Registry> {
    REGISTRY.lock()
}

/// Per domain: 1 once it died, until it runs again (checked on every return to a thread).
static DEAD: [AtomicU8; MAX_DOMAINS] = [const { AtomicU8::new(0) }; MAX_DOMAINS];

/// True if domain `d` may not run: crashed, retired, or never started.
pub fn is_dead(d: DomainId) -> bool {
    DEAD.get(d as usize).is_some_and(|x| x.load(Ordering::Relaxed) != 0)
}

/// `d` died or left service: calls into it are refused from now on.
fn mark_dead(d: DomainId) {
    flag_dead(d);
    proxy::set_callee_live(d, false);
}

/// Only the flag, for a domain whose slots are paused and about to be re-pointed.
fn flag_dead(d: DomainId) {
    if let Some(x) = DEAD.get(d as usize) {
        x.store(1, Ordering::Relaxed);
    }
}

/// `d` may run again. Its slots stay refusing until `repoint` (or `import`) fills them
/// with the new instance's table: a stale table is never callable.
fn mark_alive(d: DomainId) {
    if let Some(x) = DEAD.get(d as usize) {
        x.store(0, Ordering::Relaxed);
    }
}

impl Registry {
    // --- records ------------------------------------------------------------------------

    /// Registers the kernel as domain 0.
    pub fn add_kernel(&mut self, uart: Option<Device>) {
        self.uart = uart;
        self.domains.push(Domain::kernel());
    }

    pub fn set_initrd(&mut self, archive: initrd::Archive<'static>) {
        self.initrd = Some(archive);
    }
    pub fn initrd(&self) -> Option<initrd::Archive<'static>> {
        self.initrd
    }
    pub fn uart(&self) -> Option<Device> {
        self.uart
    }

    pub fn get(&self, d: DomainId) -> Option<&Domain> {
        self.domains.get(d as usize)
    }
    pub fn count(&self) -> usize {
        self.domains.len()
    }
    pub fn domains(&self) -> impl Iterator<Item = &Domain> {
        self.domains.iter()
    }

    /// Name of domain `d`, for log lines.
    pub fn name(&self, d: DomainId) -> String {
        self.get(d).map_or_else(|| alloc::format!("domain#{d}"), |x| x.name().to_string())
    }

    /// The running (not preparing, not retired) domain named `name`, the kernel excluded.
    pub fn running(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name() == name && d.state == State::Running && d.id != KERNEL)
    }

    /// The current record of `name` in any state but retired, the kernel excluded.
    pub fn current(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name() == name && d.state != State::Retired && d.id != KERNEL)
    }

    /// Retired records (candidates for reuse).
    pub fn retired_ids(&self) -> Vec<DomainId> {
        self.domains.iter().filter(|d| d.state == State::Retired).map(|d| d.id).collect()
    }

    /// The number a new record at the end of the table would get, if there is room.
    pub fn next_new_id(&self) -> Option<DomainId> {
        (self.domains.len() < MAX_DOMAINS).then_some(self.domains.len() as DomainId)
    }

    /// Puts `d` in the table at its id (a new entry at the end, or a reused retired record)
    /// and makes it callable.
    pub fn install(&mut self, d: Domain) {
        let id = d.id as usize;
        mark_alive(d.id);
        super::swap::set_cancelling(d.id, false);
        if id < self.domains.len() {
            self.domains[id] = d;
        } else {
            self.domains.push(d);
        }
    }

    /// Gives domain `d` its (new) instance.
    pub fn set_instance(&mut self, d: DomainId, inst: Instance, load_cost: u64) {
        if let Some(dom) = self.domains.get_mut(d as usize) {
            dom.instance = Some(inst);
            dom.load_cost = load_cost;
        }
    }

    pub fn instance_mut(&mut self, d: DomainId) -> Option<&mut Instance> {
        self.domains.get_mut(d as usize)?.instance.as_mut()
    }

    pub fn set_state_hooks(&mut self, d: DomainId, hooks: super::instance::StateHooks) -> bool {
        match self.instance_mut(d) {
            Some(i) => {
                i.state_hooks = Some(hooks);
                true
            }
            None => false,
        }
    }

    // --- failure, restart, retirement ---------------------------------------------------

    /// Domain `d` failed: its slots refuse calls from now on and its exports go. Returns
    /// what to reclaim and the policy to apply (`policy` overrides the manifest's), or
    /// `None` if it was already dead or is a version being prepared (the swap refuses it).
    pub fn crash(&mut self, d: DomainId, policy: Option<RestartPolicy>, now_ns: u64, limit: usize, window_ns: u64) -> Option<Crash> {
        if d == KERNEL || is_dead(d) {
            return None;
        }
        mark_dead(d);
        let dom = self.domains.get_mut(d as usize)?;
        if dom.state == State::Preparing {
            return None;
        }
        dom.state = State::Crashed;
        dom.recent_crashes.retain(|t| now_ns.saturating_sub(*t) < window_ns);
        if dom.recent_crashes.len() > limit {
            dom.recent_crashes.remove(0); // only the latest `limit + 1` matter
        }
        dom.recent_crashes.push(now_ns);
        let policy = match policy.unwrap_or(dom.manifest.restart) {
            RestartPolicy::Restart if limit > 0 && dom.recent_crashes.len() > limit => None,
            p => Some(p),
        };
        let crash = Crash {
            name: dom.name().to_string(),
            instance: dom.instance.take(),
            policy,
        };
        self.exports.retain(|e| e.domain != d);
        Some(crash)
    }

    pub fn hold(&mut self, d: DomainId) {
        if let Some(dom) = self.domains.get_mut(d as usize) {
            dom.state = State::Held;
        }
    }

    /// Queues crashed or held domain `d` for the restarter; `forget_crashes` clears its
    /// rate-limit history (a restart someone asked for).
    pub fn queue_restart(&mut self, d: DomainId, forget_crashes: bool) {
        if let Some(dom) = self.domains.get_mut(d as usize) {
            dom.state = State::Crashed;
            if forget_crashes {
                dom.recent_crashes.clear();
            }
            self.restart_queue.push(d);
        }
    }

    pub fn next_restart(&mut self) -> Option<DomainId> {
        (!self.restart_queue.is_empty()).then(|| self.restart_queue.remove(0))
    }

    /// A crashed domain's kept image, to restart it from: (manifest, ELF, digest).
    pub fn restart_image(&self, d: DomainId) -> Option<(Manifest, loader::ElfImage<'static>, [u8; 32])> {
        let dom = self.get(d).filter(|x| x.state == State::Crashed)?;
        Some((dom.manifest.clone(), dom.elf.clone()?, dom.digest))
    }

    /// Crashed domain `d` runs again with `inst` as a new generation; returns it.
    pub fn revive(&mut self, d: DomainId, inst: Instance) -> u32 {
        let Some(dom) = self.domains.get_mut(d as usize) else { return 0 };
        dom.instance = Some(inst);
        dom.state = State::Running;
        dom.generation += 1;
        dom.restarts += 1;
        mark_alive(d);
        dom.generation
    }

    /// Takes `d` out of service for good (a failed start or restart, a swapped-out or a
    /// refused new version): its exports, the slots it imported through, its instance;
    /// a retired version also gives up its image and pushed frames.
    pub fn retire(&mut self, d: DomainId, state: State) -> Option<Retirement> {
        mark_dead(d);
        self.exports.retain(|e| e.domain != d);
        for r in self.slots.iter().filter(|r| r.owner == d) {
            proxy::clear_slot(r.index);
        }
        self.slots.retain(|r| r.owner != d);
        let dom = self.domains.get_mut(d as usize)?;
        dom.state = state;
        // A rejected record is never restarted either: its image (and the frames a load
        // copied the envelope into) would only be held for nothing (a red-team finding:
        // each load whose initialisation failed kept up to 192 KiB).
        let pushed = if matches!(state, State::Retired | State::Rejected) {
            dom.elf = None;
            dom.pushed.take()
        } else {
            None
        };
        Some(Retirement {
            name: dom.name().to_string(),
            instance: dom.instance.take(),
            pushed,
        })
    }

    /// Records a version a hot swap took out of service (the latest 16).
    pub fn remember_retired(&mut self, v: RetiredVersion) {
        if self.retired.len() >= 16 {
            self.retired.remove(0);
        }
        self.retired.push(v);
    }

    pub fn retired_versions<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a RetiredVersion> {
        self.retired.iter().filter(move |r| r.name == name)
    }

    // --- introspection ------------------------------------------------------------------

    /// What the shell's `domains` and `mem` show of domain `index`.
    pub fn info(&self, index: u32) -> Option<DomainInfo> {
        let d = self.get(index)?;
        let mut name = [0u8; 32];
        let n = d.name().len().min(32);
        name[..n].copy_from_slice(&d.name().as_bytes()[..n]);
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&d.key_id[..8]);
        let v = &d.manifest.version;
        Some(DomainInfo {
            id: d.id,
            state: d.state.code(),
            name,
            version: [v.major, v.minor, v.patch],
            key_id,
            calls_served: proxy::calls_served(d.id),
            restarts: d.restarts,
            generation: d.generation,
            heap_bytes: d.instance.as_ref().map_or(0, |i| i.heap_bytes() as u64),
            shared_bytes: super::rref::owned_by(d.id).1 as u64,
        })
    }
}
