//! A domain's record: its signed identity, where it came from, its state and its current
//! instance. Its fields are visible only to the registry, which keeps them consistent.

use super::super::instance::Instance;
use super::super::{DomainId, KERNEL};
use crate::memory::FrameRange;
use alloc::string::String;
use alloc::vec::Vec;
use loader::manifest::{self, InterfaceRef, Manifest, RestartPolicy, Version};

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
    pub(super) fn code(self) -> u32 {
        match self {
            State::Running => 0,
            State::Crashed => 1,
            State::Rejected => 2,
            State::Held => 3,
            State::Preparing => 4,
            State::Retired => 5,
        }
    }

    /// "running", "crashed", ... for messages.
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Crashed => "crashed",
            State::Rejected => "rejected",
            State::Held => "held",
            State::Preparing => "preparing",
            State::Retired => "retired",
        }
    }
}

/// One domain: its signed identity, where it came from, and its current instance.
pub struct Domain {
    pub(super) id: DomainId,
    pub(super) manifest: Manifest,
    pub(super) key_id: [u8; 32],
    /// Where this version came from: its initrd entry, or `a host push`.
    pub(super) source: String,
    /// The verified, parsed ELF (its bytes in the reserved initrd, or in `pushed`) and its
    /// digest, kept for restarts. `None` for the kernel and once retired. Declared before
    /// `pushed`, so it is dropped before the frames it borrows.
    pub(super) elf: Option<loader::ElfImage<'static>>,
    /// Frames holding a pushed envelope (`elf` borrows them); freed on retirement.
    pub(super) pushed: Option<FrameRange>,
    pub(super) digest: [u8; 32],
    pub(super) state: State,
    pub(super) instance: Option<Instance>,
    pub(super) restarts: u32,
    pub(super) generation: u32,
    /// Uptimes (ns) of the latest crashes, for the restart rate limit.
    pub(super) recent_crashes: Vec<u64>,
    /// Instructions (PMU cycles under `-icount shift=0`) to verify and to load it.
    #[cfg_attr(not(feature = "selftest"), allow(dead_code))] // read by the bench and selftests
    pub(super) verify_cost: u64,
    #[cfg_attr(not(feature = "selftest"), allow(dead_code))] // read by the bench and selftests
    pub(super) load_cost: u64,
}

impl Domain {
    /// A record for a verified domain, not yet instantiated. `pushed` holds the envelope
    /// `v` borrows, when it was pushed from the host.
    pub fn new(
        id: DomainId,
        v: &loader::VerifiedDomain<'static>,
        source: &str,
        pushed: Option<FrameRange>,
        state: State,
        generation: u32,
        verify_cost: u64,
    ) -> Domain {
        Domain {
            id,
            manifest: v.manifest.clone(),
            key_id: v.key_id,
            source: source.into(),
            elf: Some(v.elf.clone()),
            pushed,
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

    pub(super) fn kernel() -> Domain {
        let iface = |name: &str, hash: [u8; 32]| InterfaceRef { name: name.into(), hash };
        Domain {
            id: KERNEL,
            manifest: Manifest {
                name: "kernel".into(),
                version: Version { major: 0, minor: 1, patch: 0 },
                exports: alloc::vec![iface(interfaces::kernel::NAME, interfaces::kernel::HASH)],
                imports: super::super::kernel_iface::KERNEL_IMPORTS.iter().map(|(n, h)| iface(n, *h)).collect(),
                devices: Vec::new(),
                heap_limit: 4096,
                stack_size: 4096,
                shared_heap_limit: manifest::DEFAULT_SHARED_HEAP_LIMIT,
                max_threads: manifest::DEFAULT_MAX_THREADS,
                max_events: manifest::DEFAULT_MAX_EVENTS,
                restart: RestartPolicy::Fatal,
                toolchain: String::new(),
                safe_rust_checked: false,
                min_version: Default::default(),
                downgrade: false,
            },
            key_id: [0; 32],
            source: "built in".into(),
            elf: None,
            pushed: None,
            digest: [0; 32],
            state: State::Running,
            instance: None,
            restarts: 0,
            generation: 1,
            recent_crashes: Vec::new(),
            verify_cost: 0,
            load_cost: 0,
        }
    }

    pub fn id(&self) -> DomainId {
        self.id
    }
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn generation(&self) -> u32 {
        self.generation
    }
    pub fn key_id(&self) -> &[u8; 32] {
        &self.key_id
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn instance(&self) -> Option<&Instance> {
        self.instance.as_ref()
    }
    #[cfg_attr(not(feature = "selftest"), allow(dead_code))] // read by the selftests
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
    /// (instructions to verify, instructions to load).
    #[cfg_attr(not(feature = "selftest"), allow(dead_code))] // read by the bench and selftests
    pub fn costs(&self) -> (u64, u64) {
        (self.verify_cost, self.load_cost)
    }
}
