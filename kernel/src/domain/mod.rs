//! Domains: separately compiled, signed components loaded from the initrd, called through
//! proxies, unwound when they fail, restarted, hot-swapped. One file per question:
//!
//! | question | file |
//! |---|---|
//! | which domains exist, in which state; the rules that keep records, exports and slots consistent | `registry/mod.rs`, `registry/record.rs` |
//! | who may call whom (exports, imports, slots, re-pointing) | `registry/wiring.rs` |
//! | is this envelope trusted | `verify.rs` |
//! | how an image becomes mapped, relocated code (W^X) | `image.rs` |
//! | what one run of a domain owns; its initialisation | `instance.rs` |
//! | how a domain starts and leaves service; what is reclaimed | `lifecycle.rs` |
//! | how a crashed domain's image is kept and made as it was loaded again | `pristine.rs` |
//! | which domains boot, in which order | `boot.rs` |
//! | the call path: the slot table the trampoline reads | `proxy.rs` (asm: `arch/aarch64/continuation.s`) |
//! | where a call resumes if its callee dies | `continuation.rs` |
//! | how a thread leaves a dead domain | `unwind.rs` |
//! | what happens when a domain fails (restart policy, restarter) | `recovery.rs` |
//! | a call that runs too long | `watchdog.rs` |
//! | devices and their interrupts | `grants.rs` |
//! | events domains wait on | `events.rs` |
//! | how much of each resource a domain may hold | `quota.rs` |
//! | data that moves between domains (`RRef`) | `rref.rs`, `slab.rs` |
//! | what a domain may ask of the kernel (the ABI boundary) | `services.rs` |
//! | is this pointer the domain's own (every value from a domain is an allegation) | `allegation.rs` |
//! | what the kernel itself exports (`Kernel`) | `kernel_iface.rs` |
//! | the kernel log through the console domain | `console.rs` |
//! | replacing a running domain | `swap.rs`, `swap_window.rs`, `swap_refusal.rs`, `versions.rs` |
//! | receiving a new version from the host | `push.rs` |
//! | starting a domain from an envelope a domain handed over | `load.rs` |

mod allegation;
mod boot;
mod console;
mod continuation;
mod dma;
mod events;
#[cfg(feature = "selftest")]
mod fuzz;
mod grants;
mod image;
mod instance;
mod kernel_iface;
mod lifecycle;
mod load;
mod policy;
mod pristine;
mod proxy;
#[cfg(feature = "hostlink")]
pub mod push;
mod quota;
mod recovery;
mod registry;
mod rref;
#[cfg(feature = "selftest")]
mod rref_attack;
mod services;
mod slab;
// Without the receiver nothing pushes: the swap's push path is built but has no caller.
pub mod swap;
mod swap_refusal;
mod swap_window;
mod unwind;
mod verify;
mod versions;
mod watchdog;

pub use crate::sched::call_context::{DomainId, KERNEL};
pub use boot::boot;
pub use console::hand_over as hand_over_console;
pub use recovery::set_restart_rate_limit;
pub use swap_refusal::SwapRefusal;
pub use unwind::{before_resume, crash_domain_in_trap, crash_in_trap, end_overdue_kernel_calls};
pub use watchdog::{fired as watchdog_fired, tick as watchdog_tick, CALL_BUDGET_TICKS};

/// The first 8 bytes of a key id or hash, in hex (log lines).
fn short(id: &[u8; 32]) -> alloc::string::String {
    id[..8].iter().map(|b| alloc::format!("{b:02x}")).collect()
}

/// True if a domain named `shell` is running (then the kernel monitor stays off).
pub fn shell_running() -> bool {
    registry::registry().running("shell").is_some()
}

/// What the selftests and the bench look at inside the domain layer.
#[cfg(feature = "selftest")]
pub mod inspect {
    use super::registry::{registry, State};
    pub use super::verify::{crypto_floor, sha256};
    use super::DomainId;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    /// The running domain that exports `name`, if any.
    pub fn exporter_of(name: &str) -> Option<DomainId> {
        registry().exporter_of(name)
    }

    /// The table (the kernel's copy, which calls are dispatched from) and state `name` is
    /// exported with (for measuring a plain indirect call).
    pub fn export_of(name: &str) -> Option<(usize, usize)> {
        registry().export_of(name)
    }

    /// The table `name`'s exporter passed to `export`, in its own memory (the kernel
    /// dispatches from its copy: the tests rewrite this one).
    pub fn exported_table_in_domain(name: &str) -> Option<usize> {
        registry().exported_table_in_domain(name)
    }

    /// Address of the first segment of domain `name` mapped with `perm` (the W^X tests).
    pub fn segment_of(name: &str, perm: loader::Permission) -> Option<usize> {
        let r = registry();
        let inst = r.running(name)?.instance()?;
        inst.image.segments.iter().find(|s| s.2 == perm).map(|s| s.0)
    }

    /// (name, instructions to verify, instructions to load) of every started domain.
    pub fn boot_costs() -> Vec<(String, u64, u64)> {
        registry()
            .domains()
            .filter(|d| d.id() != super::KERNEL && d.state() != State::Retired)
            .map(|d| {
                let (verify, load) = d.costs();
                (d.name().to_string(), verify, load)
            })
            .collect()
    }

    /// How many times domain `name` (its current record) was restarted.
    pub fn restarts_of(name: &str) -> Option<u32> {
        registry()
            .domains()
            .filter(|d| d.name() == name && d.state() != State::Retired)
            .map(|d| d.restarts())
            .last()
    }

    /// Crashes domain `d` with `cause` (as a fault in it would).
    pub fn crash(d: DomainId, cause: &str) {
        super::recovery::crashed(d, cause)
    }

    /// Bytes on the shared heap, all owners together.
    pub fn shared_heap_bytes() -> usize {
        super::rref::total_bytes()
    }

    /// Random service calls as domain `target` (see `fuzz.rs`): (calls, crashes), or `None`
    /// if `target` did not come back after a crash.
    pub fn fuzz_services(target: DomainId, other: DomainId, rounds: u32, seed: u64) -> Option<(u32, u32)> {
        super::fuzz::fuzz_services(target, other, rounds, seed).map(|r| (r.calls, r.crashes))
    }

    /// Forged shared-heap addresses through `attacker`'s services (see `rref_attack.rs`):
    /// how many were refused, or what got through.
    pub fn forged_rrefs(attacker: DomainId, victim: DomainId) -> Result<u32, String> {
        super::rref_attack::forged_rrefs(attacker, victim)
    }

    /// Slab pinning by `attacker` (see `rref_attack.rs`): how many of `victim`'s small
    /// blocks still came from the slab region, or what went wrong.
    pub fn slab_pinning(attacker: DomainId, victim: DomainId) -> Result<usize, String> {
        super::rref_attack::slab_pinning(attacker, victim)
    }

    /// Page-aligned tiny blocks from the kernel heap (see `rref_attack.rs`): how many
    /// `attacker` got, or what went wrong.
    pub fn aligned_blocks(attacker: DomainId) -> Result<usize, String> {
        super::rref_attack::aligned_blocks(attacker)
    }

    /// Blocks sent by `caller` and kept by `callee` (see `rref_attack.rs`): how many the
    /// callee held, or what went wrong.
    pub fn quota_laundering(caller: DomainId, callee: DomainId) -> Result<usize, String> {
        super::rref_attack::quota_laundering(caller, callee)
    }

    /// A result returned to the kernel by `callee`, which then dies (see `rref_attack.rs`).
    pub fn result_outlives_callee(callee: DomainId) -> Result<usize, String> {
        super::rref_attack::result_outlives_callee(callee)
    }

    /// Red team 4 (see `rref_attack.rs`): `caller` claims a block it owns that no call returned.
    pub fn claim_of_an_unreturned_block(caller: DomainId, callee: DomainId) -> Result<(), String> {
        super::rref_attack::claim_of_an_unreturned_block(caller, callee)
    }

    /// Red team 4 (see `rref_attack.rs`): a block on its way back, freed or passed on by its sender.
    pub fn sent_block_freed_or_passed_on(sender: DomainId, receiver: DomainId) -> Result<(), String> {
        super::rref_attack::sent_block_freed_or_passed_on(sender, receiver)
    }

    /// Red team 4 (see `rref_attack.rs`): a result returned to a caller that died meanwhile.
    pub fn result_for_a_dead_caller(caller: DomainId, callee: DomainId) -> Result<(), String> {
        super::rref_attack::result_for_a_dead_caller(caller, callee)
    }

    /// A digest of domain `d`'s image and heap.
    pub fn memory_digest(d: DomainId) -> Option<[u8; 32]> {
        super::fuzz::memory_digest(d)
    }

    /// (state, generation, restarts) of domain `d`.
    pub fn life_of(d: DomainId) -> Option<(&'static str, u32)> {
        let r = registry();
        let dom = r.get(d)?;
        Some((dom.state().name(), dom.generation()))
    }

    /// Instructions to verify initrd entry `entry` again (the growth bench), or `None` if
    /// there is no such entry or it is refused.
    pub fn verify_entry(entry: &str) -> Option<u64> {
        let archive = registry().initrd()?;
        let e = archive.entries().find(|e| e.name == entry)?;
        super::verify::verify(e.data).ok().map(|(_, cost)| cost)
    }

    /// A swap from the initrd (the bench's swap window).
    pub fn swap(name: &str, entry: &str) -> super::swap::Outcome {
        super::swap::swap(name, super::swap::Source::Initrd(entry), false)
    }
}
