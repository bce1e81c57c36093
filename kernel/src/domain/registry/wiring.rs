//! Wiring: exports, imports and the proxy slots between domains. An import is granted
//! only when the importer's signed manifest declares it (name and interface hash) and a
//! serving domain exports it; the slot record remembers which interface a slot was made for,
//! so that a restart or a hot swap re-points it (`repoint`, `commit_swap`).

use super::{flag_dead, Registry, State};
use crate::domain::proxy;
use crate::domain::DomainId;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use interfaces::{ExportError, ImportError};
use loader::manifest::InterfaceRef;

pub(super) struct Export {
    pub(super) name: String,
    pub(super) hash: [u8; 32],
    pub(super) domain: DomainId,
    /// The kernel's copy of the exported table (checked to be functions of the exporter
    /// when it exported): calls are dispatched from it, not from the exporter's memory.
    pub(super) table: Arc<[usize]>,
    /// Where the exporter's own table was (the selftests rewrite it; calls never use it).
    #[cfg_attr(not(feature = "selftest"), allow(dead_code))]
    pub(super) given: usize,
    pub(super) state: usize,
    /// Entries in `table`.
    pub(super) methods: u32,
    /// Per entry, the argument registers its method takes `RRef`s in (checked to be
    /// grouped as `abi::dispatch_groups` says when it exported).
    pub(super) moves: Arc<[u8]>,
    /// False while its domain is `Preparing`: nobody can import it yet.
    pub(super) live: bool,
}

impl Export {
    fn target(&self) -> proxy::Target {
        proxy::Target {
            callee: self.domain,
            table: self.table.clone(),
            state: self.state,
            tag: proxy::tag_of(&self.hash),
            methods: self.methods,
            moves: self.moves.clone(),
        }
    }
}

/// An exported table, as `services::export` checked it.
pub struct ExportedTable {
    /// Where the exporter keeps its own table.
    pub given: usize,
    /// The kernel's copy of it, which calls are dispatched from.
    pub table: Arc<[usize]>,
    /// Per entry, the argument registers its method takes `RRef`s in.
    pub moves: Arc<[u8]>,
    /// What the entries are called with.
    pub state: usize,
}

/// Which interface a slot was made for, to re-point it after a restart or a swap.
pub(super) struct SlotRecord {
    pub(super) index: usize,
    pub(super) owner: DomainId,
    pub(super) callee: DomainId,
    pub(super) name: String,
    pub(super) hash: [u8; 32],
}

fn declared(list: &[InterfaceRef], name: &str, hash: &[u8; 32]) -> bool {
    list.iter().any(|i| i.name == name && i.hash == *hash)
}

impl Registry {
    // --- exports, imports and slots -----------------------------------------------------

    /// Records `d`'s export of `name`. A version being prepared for a swap exports beside
    /// the running one, unseen until the swap commits.
    pub fn export(&mut self, d: DomainId, name: &str, hash: &[u8; 32], table: ExportedTable) -> Result<(), ExportError> {
        let ExportedTable { given, table, moves, state } = table;
        let dom = self.get(d).ok_or(ExportError::Refused)?;
        if !declared(&dom.manifest.exports, name, hash) {
            return Err(ExportError::NotDeclared);
        }
        let live = dom.state != State::Preparing;
        if self.exports.iter().any(|e| e.name == name && (e.domain == d || (live && e.live))) {
            return Err(ExportError::AlreadyExported);
        }
        self.exports.push(Export {
            name: name.to_string(),
            hash: *hash,
            domain: d,
            table,
            given,
            state,
            methods: moves.len() as u32,
            moves,
            live,
        });
        Ok(())
    }

    /// Gives `d` a slot to the live export of `name` with `hash`: its old slot if it had one
    /// (a restarted domain imports again), else a free one. Returns the slot's index.
    pub fn import(&mut self, d: DomainId, name: &str, hash: &[u8; 32]) -> Result<usize, ImportError> {
        let dom = self.get(d).ok_or(ImportError::Refused)?;
        if !declared(&dom.manifest.imports, name, hash) {
            return Err(ImportError::NotDeclared);
        }
        let e = self
            .exports
            .iter()
            .find(|e| e.live && e.name == name && e.hash == *hash)
            .ok_or(ImportError::NotExported)?;
        let target = e.target();
        let callee = target.callee;
        if let Some(r) = self.slots.iter_mut().find(|r| r.owner == d && r.name == name && r.hash == *hash) {
            r.callee = callee;
            proxy::set_slot(r.index, d, target);
            return Ok(r.index);
        }
        let index = (0..proxy::MAX_SLOTS)
            .find(|i| !self.slots.iter().any(|r| r.index == *i))
            .ok_or(ImportError::NoFreeSlot)?;
        proxy::set_slot(index, d, target);
        self.slots.push(SlotRecord {
            index,
            owner: d,
            callee,
            name: name.to_string(),
            hash: *hash,
        });
        Ok(index)
    }

    /// True if a live export of `name` with `hash` exists.
    pub fn serves(&self, name: &str, hash: &[u8; 32]) -> bool {
        self.exports.iter().any(|e| e.live && e.name == name && e.hash == *hash)
    }

    /// True if `d` exported `name` (live or not).
    pub fn exported_by(&self, d: DomainId, name: &str) -> bool {
        self.exports.iter().any(|e| e.domain == d && e.name == name)
    }

    /// The running domain that exports `name`, if any.
    pub fn exporter_of(&self, name: &str) -> Option<DomainId> {
        self.exports.iter().find(|e| e.live && e.name == name).map(|e| e.domain)
    }

    /// The table and state `name` is exported with (the bench measures a plain indirect
    /// call through them).
    #[cfg(feature = "selftest")]
    pub fn export_of(&self, name: &str) -> Option<(usize, usize)> {
        self.exports
            .iter()
            .find(|e| e.live && e.name == name)
            .map(|e| (e.table.as_ptr() as usize, e.state))
    }

    /// The table `name` was exported with, where its exporter keeps it (the selftests).
    #[cfg(feature = "selftest")]
    pub fn exported_table_in_domain(&self, name: &str) -> Option<usize> {
        self.exports.iter().find(|e| e.live && e.name == name).map(|e| e.given)
    }

    /// Points every slot that dispatches to `old` at `new`'s export of the same interface
    /// (`old == new`: a restarted instance exported again). Slots whose interface `new`
    /// does not export keep refusing calls.
    pub fn repoint(&mut self, old: DomainId, new: DomainId) {
        for r in self.slots.iter_mut().filter(|r| r.callee == old) {
            let export = self.exports.iter().find(|e| e.live && e.domain == new && e.name == r.name && e.hash == r.hash);
            if let Some(e) = export {
                r.callee = new;
                proxy::set_slot(r.index, r.owner, e.target());
            }
        }
    }

    /// The hot swap's commit: `old` stops serving for good and `new` takes its place —
    /// its exports go live, every slot into `old` dispatches to `new`, `new` runs.
    pub fn commit_swap(&mut self, old: DomainId, new: DomainId) {
        // Its slots are paused (refusing calls) until `repoint` gives them to `new`.
        flag_dead(old);
        // `old`'s exports stop being importable now and are dropped by `retire`, which the
        // swap calls right after the window: freeing their names here would put the kernel
        // heap's free-list walk inside the window.
        for e in self.exports.iter_mut().filter(|e| e.domain == old || e.domain == new) {
            e.live = e.domain == new;
        }
        self.repoint(old, new);
        if let Some(d) = self.domains.get_mut(new as usize) {
            d.state = State::Running;
        }
    }

    /// The generation of the callee of `owner`'s slot `slot` (0 if the slot is not theirs).
    pub fn slot_generation(&self, owner: DomainId, slot: u32) -> u32 {
        self.slots
            .iter()
            .find(|s| s.index == slot as usize && s.owner == owner)
            .and_then(|s| self.get(s.callee))
            .map_or(0, |d| d.generation)
    }
}
