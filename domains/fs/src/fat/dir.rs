//! Directories: arrays of 32-byte entries, in FAT16's fixed root region or in a cluster
//! chain. Long names (VFAT) are read when their checksum and order match their short
//! entry, and ignored otherwise; new entries get short names only.

use super::layout::SECTOR;
use super::names;
use super::{FsError, Sectors, Volume};
use alloc::string::String;
use alloc::vec::Vec;

pub const ATTR_READ_ONLY: u8 = 0x01;
pub const ATTR_VOLUME: u8 = 0x08;
pub const ATTR_DIRECTORY: u8 = 0x10;
pub const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_LONG_NAME: u8 = 0x0f;
const DELETED: u8 = 0xe5;
const ENTRIES_PER_SECTOR: usize = SECTOR / 32;
/// 2026-01-01: there is no clock to ask, so every entry written gets this date.
pub const FIXED_DATE: u16 = ((2026 - 1980) << 9) | (1 << 5) | 1;

/// A directory: FAT16's root region, or the chain from a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    FixedRoot,
    Chain(u32),
}

/// Where an entry sits: its sector and its index in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub lba: u64,
    pub index: usize,
}

/// One entry of a directory, as read.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub short: [u8; 11],
    pub attr: u8,
    pub first_cluster: u32,
    pub size: u32,
    pub slot: Slot,
    /// The long-name entries before it (to delete with it).
    pub long_slots: Vec<Slot>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.attr & ATTR_DIRECTORY != 0
    }
}

/// Long-name parts gathered so far: (checksum, next ordinal expected, UTF-16 units by
/// ordinal, their slots).
struct LongName {
    checksum: u8,
    expect: u8,
    units: Vec<[u16; 13]>,
    slots: Vec<Slot>,
}

fn lfn_units(e: &[u8]) -> [u16; 13] {
    let mut u = [0u16; 13];
    let offsets = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
    for (i, &o) in offsets.iter().enumerate() {
        u[i] = u16::from_le_bytes([e[o], e[o + 1]]);
    }
    u
}

impl<D: Sectors> Volume<D> {
    /// The sectors of `dir`, in order (a chain's are checked by `chain`).
    pub(super) fn dir_sectors(&mut self, dir: Dir) -> Result<Vec<u64>, FsError> {
        match dir {
            Dir::FixedRoot => Ok((0..self.geo.root_sectors as u64).map(|i| self.geo.root_start + i).collect()),
            Dir::Chain(first) => {
                let chain = self.chain(first)?;
                let spc = self.geo.sectors_per_cluster as u64;
                Ok(chain
                    .iter()
                    .flat_map(|&c| (0..spc).map(move |i| (c, i)))
                    .map(|(c, i)| self.geo.cluster_sector(c) + i)
                    .collect())
            }
        }
    }

    /// Every live entry of `dir` except `.`, `..` and volume labels, with its long name
    /// where one is valid.
    pub(super) fn entries(&mut self, dir: Dir) -> Result<Vec<Entry>, FsError> {
        let mut out = Vec::new();
        let mut long: Option<LongName> = None;
        for lba in self.dir_sectors(dir)? {
            let s = self.read_sector(lba)?;
            for index in 0..ENTRIES_PER_SECTOR {
                let e = &s[32 * index..32 * (index + 1)];
                let slot = Slot { lba, index };
                match e[0] {
                    0 => return Ok(out),
                    DELETED => {
                        long = None;
                        continue;
                    }
                    _ => {}
                }
                let attr = e[11];
                if attr & 0x3f == ATTR_LONG_NAME {
                    long = next_long_part(long.take(), e, slot);
                    continue;
                }
                let taken = long.take();
                if attr & ATTR_VOLUME != 0 {
                    continue;
                }
                let mut short = [0u8; 11];
                short.copy_from_slice(&e[..11]);
                if &short == b".          " || &short == b"..         " {
                    continue;
                }
                let (name, long_slots) = match taken.and_then(|l| finish_long(l, &short)) {
                    Some((n, slots)) => (n, slots),
                    None => (names::show_short(&short, e[12]), Vec::new()),
                };
                let hi = if self.geo.kind == super::layout::FatKind::Fat32 {
                    u16::from_le_bytes([e[20], e[21]]) as u32
                } else {
                    0
                };
                out.push(Entry {
                    name,
                    short,
                    attr,
                    first_cluster: hi << 16 | u16::from_le_bytes([e[26], e[27]]) as u32,
                    size: u32::from_le_bytes([e[28], e[29], e[30], e[31]]),
                    slot,
                    long_slots,
                });
            }
        }
        Ok(out)
    }

    /// The entry named `name` in `dir`.
    pub(super) fn find(&mut self, dir: Dir, name: &str) -> Result<Option<Entry>, FsError> {
        Ok(self
            .entries(dir)?
            .into_iter()
            .find(|e| names::same(&e.name, name) || names::same(&names::show_short(&e.short, 0), name)))
    }

    /// A free slot in `dir` (a deleted entry or the end), growing a chained directory by a
    /// zeroed cluster when it is full.
    pub(super) fn free_slot(&mut self, dir: Dir) -> Result<Slot, FsError> {
        let sectors = self.dir_sectors(dir)?;
        for &lba in &sectors {
            let s = self.read_sector(lba)?;
            if let Some(index) = (0..ENTRIES_PER_SECTOR).find(|i| s[32 * i] == 0 || s[32 * i] == DELETED) {
                return Ok(Slot { lba, index });
            }
        }
        let Dir::Chain(first) = dir else {
            return Err(FsError::NoSpace);
        };
        let last = *self.chain(first)?.last().ok_or(FsError::Corrupt("an empty directory chain"))?;
        let new = self.allocate(1)?[0];
        self.zero_cluster(new)?;
        self.link(last, Some(new))?;
        Ok(Slot {
            lba: self.geo.cluster_sector(new),
            index: 0,
        })
    }

    /// Writes a short entry into `slot` (staged).
    pub(super) fn put_entry(&mut self, slot: Slot, short: &[u8; 11], case: u8, attr: u8, first: u32, size: u32) -> Result<(), FsError> {
        let mut s = self.read_sector(slot.lba)?;
        let e = &mut s[32 * slot.index..32 * (slot.index + 1)];
        e.fill(0);
        e[..11].copy_from_slice(short);
        e[11] = attr;
        e[12] = case;
        for at in [16, 18, 24] {
            e[at..at + 2].copy_from_slice(&FIXED_DATE.to_le_bytes());
        }
        e[20..22].copy_from_slice(&((first >> 16) as u16).to_le_bytes());
        e[26..28].copy_from_slice(&(first as u16).to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        self.stage(slot.lba, s);
        Ok(())
    }

    /// Changes the first cluster and size of the entry in `slot` (staged).
    pub(super) fn update_entry(&mut self, slot: Slot, first: u32, size: u32) -> Result<(), FsError> {
        let mut s = self.read_sector(slot.lba)?;
        let e = &mut s[32 * slot.index..32 * (slot.index + 1)];
        e[20..22].copy_from_slice(&((first >> 16) as u16).to_le_bytes());
        e[26..28].copy_from_slice(&(first as u16).to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        e[24..26].copy_from_slice(&FIXED_DATE.to_le_bytes());
        e[11] |= ATTR_ARCHIVE;
        self.stage(slot.lba, s);
        Ok(())
    }

    /// Marks the entry in `slot`, and its long-name entries, deleted (staged).
    pub(super) fn delete_entry(&mut self, entry: &Entry) -> Result<(), FsError> {
        for slot in entry.long_slots.iter().chain(core::iter::once(&entry.slot)) {
            let mut s = self.read_sector(slot.lba)?;
            s[32 * slot.index] = DELETED;
            self.stage(slot.lba, s);
        }
        Ok(())
    }
}

fn next_long_part(so_far: Option<LongName>, e: &[u8], slot: Slot) -> Option<LongName> {
    let ordinal = e[0];
    let n = ordinal & 0x1f;
    if n == 0 || n > 20 {
        return None;
    }
    if ordinal & 0x40 != 0 {
        // The last part comes first; a new name starts here.
        return Some(LongName {
            checksum: e[13],
            expect: n - 1,
            units: alloc::vec![lfn_units(e)],
            slots: alloc::vec![slot],
        });
    }
    let mut l = so_far?;
    if n != l.expect || n == 0 || e[13] != l.checksum {
        return None;
    }
    l.expect = n - 1;
    l.units.push(lfn_units(e));
    l.slots.push(slot);
    Some(l)
}

fn finish_long(l: LongName, short: &[u8; 11]) -> Option<(String, Vec<Slot>)> {
    if l.expect != 0 || l.checksum != names::lfn_checksum(short) {
        return None;
    }
    let units: Vec<u16> = l.units.iter().rev().flat_map(|u| u.iter().copied()).take_while(|&u| u != 0).collect();
    let name: String = char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect();
    if name.is_empty() {
        return None;
    }
    Some((name, l.slots))
}
