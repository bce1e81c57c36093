//! Why a hot swap was refused: one variant per check, each with the message the shell and
//! the host see. Any refusal leaves the running version serving, untouched.

use super::instance::StartError;
use super::registry::State;
use super::short;
use crate::irq::{IrqError, IrqNumber};
use alloc::string::String;
use core::fmt;
use loader::manifest::Version;

/// How long the window waits for calls in flight into the old version.
pub const DRAIN_LIMIT_MS: u64 = 500;

#[derive(Debug)]
pub enum SwapRefusal {
    Busy,
    /// No running domain of this name; its record's state, if it has one.
    NotRunning(String, Option<State>),
    FromInside(String),
    NoInitrd,
    /// (name, running version)
    NoNewerVersion(String, Version),
    NoSuchEntry(String),
    NoMemoryForPush,
    EmptyEnvelope,
    /// (where the candidate came from, why verification failed)
    Verify(String, loader::LoadError),
    /// (where from, the trust-policy rule it breaks)
    Policy(String, loader::policy::PolicyError),
    /// (where from, the candidate's name, the name asked for)
    WrongName(String, String, String),
    /// (where from, its version, the running version)
    Older(String, Version, Version),
    SameVersion(String, Version),
    ExportMissing(String),
    /// (interface, the new version's hash, the running one's)
    ExportHash(String, [u8; 32], [u8; 32]),
    ExportAdded(String),
    ImportUnserved(String),
    NoDomainNumber,
    Load(StartError),
    Init(StartError),
    /// (the running version's state hash, the new one's, how to ask for a fresh start)
    StateMismatch([u8; 32], [u8; 32], String),
    /// The running version keeps state, the new one takes none: (its hash, fresh-start hint).
    StateDropped([u8; 32], String),
    /// The running version keeps no state, the new one takes some: (its hash, hint).
    StateNotKept([u8; 32], String),
    /// Calls still inside the running version at the drain limit.
    DrainTimeout(usize),
    StateTypeChanged,
    CrashedMeanwhile,
    ExportCrashed,
    StateNotShared,
    ImportCrashed,
    StateRefused(i32),
    RouteIrq(IrqNumber, IrqError),
}

impl SwapRefusal {
    /// What the refusal left as it was, for the log line.
    pub fn consequence(&self) -> &'static str {
        match self {
            SwapRefusal::NotRunning(..) => "nothing was changed",
            _ => "the running version keeps serving",
        }
    }
}

impl fmt::Display for SwapRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SwapRefusal::*;
        match self {
            Busy => f.write_str("another swap or load is in progress"),
            NotRunning(name, Some(s)) => write!(f, "{name} is {} (only a running domain is swapped; `restart {name}` first)", s.name()),
            NotRunning(name, None) => write!(f, "no running domain is named {name:?}"),
            FromInside(name) => write!(f, "it was asked from inside {name} itself"),
            NoInitrd => f.write_str("there is no initrd"),
            NoNewerVersion(name, current) => write!(f, "the initrd holds no version of {name} newer than {current}"),
            NoSuchEntry(wanted) => write!(f, "the initrd has no entry {wanted:?}"),
            NoMemoryForPush => f.write_str("no memory to hold the envelope"),
            EmptyEnvelope => f.write_str("the envelope is empty"),
            Verify(label, e) => write!(f, "{label}: {e}"),
            Policy(label, e) => write!(f, "{label}: {e}"),
            WrongName(label, found, name) => write!(f, "{label} is domain {found:?}, not {name:?}"),
            Older(label, new, old) => write!(
                f,
                "{label} is version {new}, older than the running {old} (a downgrade needs a manifest signed with `downgrade = true`)"
            ),
            SameVersion(label, v) => write!(f, "{label} is version {v}, the version already running"),
            ExportMissing(n) => write!(f, "the new version does not export {n}"),
            ExportHash(n, new, old) => write!(f, "the new version's {n} has interface hash {}, the running one {}", short(new), short(old)),
            ExportAdded(n) => write!(f, "the new version exports {n}, which the running one does not"),
            ImportUnserved(n) => write!(f, "the new version imports {n}, which no running domain exports with that hash"),
            NoDomainNumber => f.write_str("no free domain number"),
            Load(e) => write!(f, "cannot load the new version: {e}"),
            Init(e) => write!(f, "the new version's initialisation failed: {e}"),
            StateMismatch(o, n, fresh) => write!(
                f,
                "state type mismatch: the running version hands over state {}, the new one takes {}; `{fresh}` discards the state",
                short(o),
                short(n)
            ),
            StateDropped(o, fresh) => write!(
                f,
                "the running version keeps state {} and the new one takes none, so it would be lost; `{fresh}` discards the state",
                short(o)
            ),
            StateNotKept(n, fresh) => write!(
                f,
                "the running version keeps no state and the new one takes state {}, so it would start from zero; `{fresh}` starts it fresh",
                short(n)
            ),
            DrainTimeout(inside) => write!(f, "{inside} calls into the running version did not return within {DRAIN_LIMIT_MS} ms"),
            StateTypeChanged => f.write_str("the running version's state type changed meanwhile"),
            CrashedMeanwhile => f.write_str("the running version crashed meanwhile"),
            ExportCrashed => f.write_str("the running version crashed while saving its state"),
            StateNotShared => f.write_str("the running version's state is not a shared-heap block of its own, of its state type's size"),
            ImportCrashed => f.write_str("the new version crashed while taking the state"),
            StateRefused(code) => write!(f, "the new version refused the state (code {code})"),
            RouteIrq(n, e) => write!(f, "cannot route interrupt {n} to the new version: {e}"),
        }
    }
}
