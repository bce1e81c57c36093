//! Recovery: what happens when a domain fails. `crashed` stops calls into it at once,
//! reclaims its instance and applies a restart policy — the signed manifest's, or one the
//! caller passes (a restart someone asked for): `restart` (rate-limited: more than
//! `limit` crashes within `window` and it is held), `hold`, or `fatal` (power off). The
//! restarter thread re-instantiates a domain on its kept image, made as it was loaded
//! again (pristine.rs), and re-points its callers' slots.

use super::instance::{instantiate, reinstantiate, Instance, StartError};
use super::lifecycle::{reclaim, retire};
use super::registry::{registry, State};
use super::{continuation, events, DomainId, KERNEL};
use crate::sched::WaitQueue;
use crate::{info, warn};
use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loader::manifest::RestartPolicy;

static RESTARTS_PENDING: WaitQueue = WaitQueue::new();

/// More than `limit` crashes within `window` and a `restart` domain is held instead.
/// Defaults 3 in 1 s; `qvq.restart_limit=N` (0: no limit) and `qvq.restart_window_ms=T`
/// on the command line change them.
static RATE_LIMIT: AtomicUsize = AtomicUsize::new(3);
static RATE_WINDOW_NS: AtomicU64 = AtomicU64::new(1_000_000_000);

pub fn set_restart_rate_limit(limit: usize, window_ms: u64) {
    RATE_LIMIT.store(limit, Ordering::Relaxed);
    RATE_WINDOW_NS.store(window_ms.saturating_mul(1_000_000), Ordering::Relaxed);
}

/// Domain `d` failed with `cause`: stop calls into it, reclaim what it owned, and apply
/// its manifest's restart policy. No code of the domain runs after this (threads still
/// inside it are unwound before they next run). Called with no kernel lock held.
pub fn crashed(d: DomainId, cause: &str) {
    fail(d, cause, None)
}

/// As `crashed`, with `policy` instead of the manifest's when given.
fn fail(d: DomainId, cause: &str, policy: Option<RestartPolicy>) {
    // A version being prepared for a swap has no policy: the swap refuses it and retires it.
    let preparing = registry().get(d).is_some_and(|x| x.state() == State::Preparing);
    let (limit, window) = (RATE_LIMIT.load(Ordering::Relaxed), RATE_WINDOW_NS.load(Ordering::Relaxed));
    let crash = registry().crash(d, policy, crate::time::uptime_ns(), limit, window);
    let Some(crash) = crash else {
        if preparing {
            let name = registry().name(d);
            warn!("domain {name} (the version being swapped in) crashed: {cause}");
        }
        return;
    };
    let name = crash.name;
    warn!("domain {name} crashed: {cause}");
    if let Some(inst) = crash.instance {
        // Kept whatever the policy: a held domain may be restarted later (`restart`).
        reclaim(d, &name, inst, true);
    }
    events::wake_waiters(None);
    match crash.policy {
        Some(RestartPolicy::Restart) => {
            registry().queue_restart(d, false);
            RESTARTS_PENDING.wake_all();
        }
        Some(RestartPolicy::Hold) => hold(d, &name, "its restart policy is hold"),
        Some(RestartPolicy::Fatal) => {
            warn!("domain {name} is fatal to the system: powering off");
            crate::power::exit(crate::power::FAULT_EXIT_STATUS)
        }
        None => hold(d, &name, &alloc::format!("it crashed more than {limit} times within {} ms", window / 1_000_000)),
    }
}

fn hold(d: DomainId, name: &str, why: &str) {
    registry().hold(d);
    warn!("domain {name} held: {why}");
}

/// Why a restart was refused.
#[derive(Debug)]
pub enum RestartRefusal {
    Kernel,
    NoSuchDomain,
    /// Rejected, preparing or retired domains are never restarted.
    NotRestartable(State),
}

impl fmt::Display for RestartRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartRefusal::Kernel => f.write_str("the kernel is not restarted"),
            RestartRefusal::NoSuchDomain => f.write_str("no such domain"),
            RestartRefusal::NotRestartable(s) => write!(f, "a {} domain is not restarted", s.name()),
        }
    }
}

/// Restarts domain `id` on request (the shell's `restart`): a crashed or held domain is
/// queued for the restarter; a running one is stopped first (as if it had crashed, but
/// always restarted).
pub fn request_restart(id: DomainId) -> Result<(), RestartRefusal> {
    if id == KERNEL {
        return Err(RestartRefusal::Kernel);
    }
    let state = registry().get(id).map(|d| d.state()).ok_or(RestartRefusal::NoSuchDomain)?;
    match state {
        State::Rejected | State::Preparing | State::Retired => Err(RestartRefusal::NotRestartable(state)),
        State::Running => {
            fail(id, "restart requested", Some(RestartPolicy::Restart));
            Ok(())
        }
        State::Crashed | State::Held => {
            registry().queue_restart(id, true);
            RESTARTS_PENDING.wake_all();
            Ok(())
        }
    }
}

/// Re-instantiates crashed domain `id` on its kept image, its writable data copied back
/// from the pristine copy (no new signature check, no reload: its code and read-only data
/// were never writable since they were verified and relocated). Re-points every slot into
/// it to the new instance.
fn restart(id: DomainId) {
    let name = registry().name(id);
    let image = registry().restart_image(id);
    let Some((manifest, elf, digest)) = image else { return };
    // Let every thread that was inside the dead instance be unwound first (they were woken
    // at the crash and are unwound when they next run); only then may a new instance take
    // the domain's number.
    let mut waited = 0;
    while crate::sched::count_other_threads(|c, _| continuation::context_inside(c, id)) > 0 {
        if waited >= 100 {
            return hold(id, &name, "threads are still inside its dead instance after 1 s");
        }
        crate::sched::sleep_ms(10);
        waited += 1;
    }
    // Admitted when it was loaded (its key's policy); the floor may have risen since.
    if let Err(why) = loader::policy::check_floor(&manifest, &super::policy::floor(&name)) {
        return hold(id, &name, &alloc::format!("restart refused: {why}"));
    }
    let inst = match new_instance(id, &manifest, &elf, &digest) {
        Ok(x) => x,
        Err(why) => return hold(id, &name, &alloc::format!("restart failed: {why}")),
    };
    let generation = registry().revive(id, inst);
    if let Err(why) = super::instance::run_init(id, &manifest) {
        retire(id, State::Held);
        warn!("domain {name} held: restart failed: {why}");
        return;
    }
    registry().repoint(id, id);
    info!("domain {name} restarted: generation {generation}");
}

/// The restarted instance: on the image kept at the crash (every crashed or held domain has
/// one, unless its mapping could not be changed then), or else loaded again from the kept
/// ELF, its digest re-checked first (those bytes lie in ordinary read-write RAM).
fn new_instance(id: DomainId, m: &loader::manifest::Manifest, elf: &loader::ElfImage, digest: &[u8; 32]) -> Result<Instance, StartError> {
    match super::pristine::take(id) {
        Some(kept) => reinstantiate(id, m, kept),
        None if super::verify::sha256(elf.bytes()) != *digest => Err(StartError::DigestMismatch),
        None => instantiate(id, m, elf, true),
    }
}

/// Restarts crashed domains as `crashed` queues them.
pub fn restarter() {
    loop {
        let id = RESTARTS_PENDING.wait_until(|| registry().next_restart());
        restart(id);
    }
}
