//! The file allocation table: one entry per cluster, a file's clusters a chain of them.
//! Every entry read is checked (a chain that points outside the volume, at a free cluster
//! or around in a loop is `Corrupt`); every change goes to all FAT copies at once, staged
//! with the operation's other metadata (`Volume::commit`).

use super::layout::{FatKind, SECTOR};
use super::{FsError, Sectors, Volume};
use alloc::vec::Vec;

const FAT16_END: u32 = 0xfff8;
const FAT16_BAD: u32 = 0xfff7;
const FAT32_MASK: u32 = 0x0fff_ffff;
const FAT32_END: u32 = 0x0fff_fff8;
const FAT32_BAD: u32 = 0x0fff_fff7;

/// What a FAT entry says comes after a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Free,
    Cluster(u32),
    End,
    Bad,
}

impl<D: Sectors> Volume<D> {
    fn entry_place(&self, cluster: u32) -> (u64, usize) {
        let bytes = match self.geo.kind {
            FatKind::Fat16 => 2,
            FatKind::Fat32 => 4,
        };
        let at = cluster as u64 * bytes;
        (at / SECTOR as u64, (at % SECTOR as u64) as usize)
    }

    /// The raw entry of a data cluster (callers check `cluster`).
    fn entry(&mut self, cluster: u32) -> Result<u32, FsError> {
        let (sector, at) = self.entry_place(cluster);
        let s = self.read_sector(self.geo.fat_start + sector)?;
        Ok(match self.geo.kind {
            FatKind::Fat16 => u16::from_le_bytes([s[at], s[at + 1]]) as u32,
            FatKind::Fat32 => u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]]) & FAT32_MASK,
        })
    }

    pub(super) fn next(&mut self, cluster: u32) -> Result<Next, FsError> {
        let v = self.entry(cluster)?;
        let (end, bad) = match self.geo.kind {
            FatKind::Fat16 => (FAT16_END, FAT16_BAD),
            FatKind::Fat32 => (FAT32_END, FAT32_BAD),
        };
        Ok(match v {
            0 => Next::Free,
            v if v >= end => Next::End,
            v if v == bad => Next::Bad,
            v if self.geo.is_data_cluster(v) => Next::Cluster(v),
            _ => Next::Bad,
        })
    }

    /// Sets `cluster`'s entry in every FAT copy (staged).
    fn set(&mut self, cluster: u32, next: Next) -> Result<(), FsError> {
        let value = match (next, self.geo.kind) {
            (Next::Free, _) => 0,
            (Next::Cluster(c), _) => c,
            (Next::End, FatKind::Fat16) => 0xffff,
            (Next::End, FatKind::Fat32) => FAT32_MASK,
            (Next::Bad, FatKind::Fat16) => FAT16_BAD,
            (Next::Bad, FatKind::Fat32) => FAT32_BAD,
        };
        let (sector, at) = self.entry_place(cluster);
        for copy in 0..self.geo.fats {
            let lba = self.geo.fat_start + copy as u64 * self.geo.fat_sectors as u64 + sector;
            let mut s = self.read_sector(lba)?;
            match self.geo.kind {
                FatKind::Fat16 => s[at..at + 2].copy_from_slice(&(value as u16).to_le_bytes()),
                FatKind::Fat32 => {
                    // The top four bits are reserved: kept as they are.
                    let old = u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]]);
                    let v = (old & !FAT32_MASK) | value;
                    s[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            self.stage(lba, s);
        }
        Ok(())
    }

    /// The clusters of the chain starting at `first` (empty for 0), checked: every link a
    /// data cluster, no loop, ended by an end mark.
    pub(super) fn chain(&mut self, first: u32) -> Result<Vec<u32>, FsError> {
        let mut out = Vec::new();
        if first == 0 {
            return Ok(out);
        }
        if !self.geo.is_data_cluster(first) {
            return Err(FsError::Corrupt("a first cluster outside the volume"));
        }
        let mut c = first;
        loop {
            out.push(c);
            if out.len() > self.geo.clusters as usize {
                return Err(FsError::Corrupt("a cluster chain that loops"));
            }
            match self.next(c)? {
                Next::Cluster(n) => c = n,
                Next::End => return Ok(out),
                Next::Free => return Err(FsError::Corrupt("a cluster chain that runs into a free cluster")),
                Next::Bad => return Err(FsError::Corrupt("a cluster chain through a bad or out-of-range entry")),
            }
        }
    }

    /// `count` free clusters, chained to each other and ended (staged); the caller links
    /// the first.
    pub(super) fn allocate(&mut self, count: usize) -> Result<Vec<u32>, FsError> {
        let mut found = Vec::new();
        let total = self.geo.clusters;
        let mut c = self.next_free;
        for _ in 0..total {
            if found.len() == count {
                break;
            }
            if self.next(c)? == Next::Free && !found.contains(&c) {
                found.push(c);
            }
            c = if c + 1 >= total + 2 { 2 } else { c + 1 };
        }
        if found.len() < count {
            return Err(FsError::NoSpace);
        }
        for (i, &c) in found.iter().enumerate() {
            let next = found.get(i + 1).map_or(Next::End, |&n| Next::Cluster(n));
            self.set(c, next)?;
        }
        self.next_free = c;
        self.forget_free_count()?;
        Ok(found)
    }

    /// Makes `last` the end of its chain, or links it to `next`.
    pub(super) fn link(&mut self, last: u32, next: Option<u32>) -> Result<(), FsError> {
        self.set(last, next.map_or(Next::End, Next::Cluster))
    }

    /// Frees every cluster of `clusters` (staged).
    pub(super) fn free(&mut self, clusters: &[u32]) -> Result<(), FsError> {
        for &c in clusters {
            self.set(c, Next::Free)?;
        }
        self.forget_free_count()
    }

    /// Free clusters, counted in the FAT.
    pub(super) fn count_free(&mut self) -> Result<u32, FsError> {
        let mut free = 0;
        for c in 2..self.geo.clusters + 2 {
            if self.next(c)? == Next::Free {
                free += 1;
            }
        }
        Ok(free)
    }

    /// FAT32's FSInfo keeps a free-cluster count and a hint; rather than keep them right
    /// across crashes, they are marked unknown (0xffffffff) the first time the FAT changes,
    /// in the same batch as that change.
    fn forget_free_count(&mut self) -> Result<(), FsError> {
        let Some(lba) = self.geo.fs_info else { return Ok(()) };
        if self.fs_info_forgotten {
            return Ok(());
        }
        let mut s = self.read_sector(lba)?;
        if s[0..4] != *b"RRaA" || s[484..488] != *b"rrAa" {
            // Not an FSInfo sector: left alone.
            self.fs_info_forgotten = true;
            return Ok(());
        }
        s[488..496].fill(0xff);
        self.stage(lba, s);
        self.fs_info_forgotten = true;
        Ok(())
    }
}
