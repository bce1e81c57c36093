//! A FAT16/FAT32 file system over 512-byte sectors, in safe Rust, that trusts nothing it
//! reads: a corrupted or hostile image gives `FsError::Corrupt` (or `Unsupported`), never
//! a panic, an out-of-range index or an endless loop.
//!
//! Crash consistency: an operation writes new file data first, into clusters the FAT
//! still marks free (so a crash there loses only that data), then all its metadata — the
//! FAT copies, directory entries, FSInfo — in one `Sectors::write` call, which the domain
//! turns into one `Block` batch. So a crash of this domain leaves each operation either
//! done or not done. What a crash can lose: the operation in progress; and data written
//! over a file's existing bytes is written in place, so a crash in the middle of such a
//! write can leave some of those bytes new and some old.

pub mod dir;
pub mod layout;
pub mod names;
pub mod table;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use dir::{Dir, Entry};
use layout::{Geometry, SECTOR};

/// Why an operation failed. Nothing is changed on the volume when one is returned,
/// except for `Io` in the middle of a write (see the module's doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    /// The disk refused a read or write.
    Io,
    /// No FAT partition and no FAT volume at sector 0.
    NoVolume,
    /// The volume's structures contradict themselves: which one is said.
    Corrupt(&'static str),
    /// A volume this code does not handle: which kind is said.
    Unsupported(&'static str),
    NotFound,
    NotADirectory,
    IsADirectory,
    AlreadyExists,
    DirectoryNotEmpty,
    /// The path breaks a rule of `names::split`: which one is said.
    BadPath(&'static str),
    /// A name to create does not fit 8.3.
    NotShortName,
    /// No free cluster, or FAT16's fixed root directory is full.
    NoSpace,
    /// A write would start past the end of the file, or grow it past 4 GiB - 1.
    BadOffset,
    /// The root directory cannot be removed, written or made.
    IsRoot,
    /// The entry is marked read-only.
    ReadOnly,
}

impl core::fmt::Display for FsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FsError::Io => f.write_str("the disk refused a read or write"),
            FsError::NoVolume => f.write_str("no FAT volume: neither a FAT partition in the MBR nor a FAT boot sector at sector 0"),
            FsError::Corrupt(what) => write!(f, "the volume is corrupt: {what}"),
            FsError::Unsupported(what) => write!(f, "not supported: {what}"),
            FsError::NotFound => f.write_str("no such file or directory"),
            FsError::NotADirectory => f.write_str("a part of the path is a file, not a directory"),
            FsError::IsADirectory => f.write_str("it is a directory"),
            FsError::AlreadyExists => f.write_str("it exists already"),
            FsError::DirectoryNotEmpty => f.write_str("the directory is not empty"),
            FsError::BadPath(why) => write!(f, "bad path: {why}"),
            FsError::NotShortName => f.write_str("new names must be 8.3: 1-8 letters, digits or $%'-_@~`!(){}^#&, optionally a dot and 1-3 more"),
            FsError::NoSpace => f.write_str("no space left (or FAT16's root directory is full)"),
            FsError::BadOffset => f.write_str("the offset is past the end of the file, or the file would pass 4 GiB"),
            FsError::IsRoot => f.write_str("not possible on the root directory"),
            FsError::ReadOnly => f.write_str("the file is read-only"),
        }
    }
}

/// The disk under the volume, in 512-byte sectors.
pub trait Sectors {
    fn read(&mut self, lba: u64, out: &mut [u8; SECTOR]) -> Result<(), FsError>;
    /// Writes every sector given, as one batch where the disk allows.
    fn write(&mut self, sectors: &[(u64, [u8; SECTOR])]) -> Result<(), FsError>;
    /// The disk's size in sectors.
    fn count(&self) -> u64;
}

/// What `stat` and `list` say about an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub name: String,
    pub is_dir: bool,
    pub size: u32,
}

/// A mounted volume.
pub struct Volume<D: Sectors> {
    disk: D,
    geo: Geometry,
    /// Metadata sectors changed by the operation in progress, written by `commit`.
    staged: BTreeMap<u64, [u8; SECTOR]>,
    next_free: u32,
    fs_info_forgotten: bool,
}

/// What a path names.
enum Found {
    Root,
    Entry { parent: Dir, entry: Entry },
}

impl<D: Sectors> Volume<D> {
    /// Finds the volume on `disk` and checks its layout.
    pub fn mount(mut disk: D) -> Result<Volume<D>, FsError> {
        let mut s0 = [0u8; SECTOR];
        disk.read(0, &mut s0)?;
        let (start, sectors) = layout::find_volume(&s0, disk.count())?;
        let mut boot = [0u8; SECTOR];
        disk.read(start, &mut boot)?;
        let geo = layout::parse_boot_sector(&boot, start, sectors)?;
        Ok(Volume {
            disk,
            geo,
            staged: BTreeMap::new(),
            next_free: 2,
            fs_info_forgotten: false,
        })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// Gives the disk back (the host tests read the image it holds).
    #[allow(dead_code)]
    pub fn into_disk(self) -> D {
        self.disk
    }

    pub(crate) fn read_sector(&mut self, lba: u64) -> Result<[u8; SECTOR], FsError> {
        if let Some(s) = self.staged.get(&lba) {
            return Ok(*s);
        }
        let mut s = [0u8; SECTOR];
        self.disk.read(lba, &mut s)?;
        Ok(s)
    }

    pub(crate) fn stage(&mut self, lba: u64, s: [u8; SECTOR]) {
        self.staged.insert(lba, s);
    }

    /// Writes the staged metadata, all in one call.
    fn commit(&mut self) -> Result<(), FsError> {
        let writes: Vec<(u64, [u8; SECTOR])> = core::mem::take(&mut self.staged).into_iter().collect();
        if writes.is_empty() {
            return Ok(());
        }
        self.disk.write(&writes)
    }

    /// Runs `op`; its staged metadata is written if it succeeds and dropped if not.
    fn operation<R>(&mut self, op: impl FnOnce(&mut Self) -> Result<R, FsError>) -> Result<R, FsError> {
        self.staged.clear();
        match op(self) {
            Ok(r) => {
                self.commit()?;
                Ok(r)
            }
            Err(e) => {
                self.staged.clear();
                // A hint into clusters allocated and then dropped is still a valid hint.
                Err(e)
            }
        }
    }

    fn root(&self) -> Dir {
        match self.geo.kind {
            layout::FatKind::Fat16 => Dir::FixedRoot,
            layout::FatKind::Fat32 => Dir::Chain(self.geo.root_cluster),
        }
    }

    fn dir_of(&self, e: &Entry) -> Result<Dir, FsError> {
        if !e.is_dir() {
            return Err(FsError::NotADirectory);
        }
        // A directory entry whose first cluster is 0 names the root (as `..` does).
        Ok(if e.first_cluster == 0 { self.root() } else { Dir::Chain(e.first_cluster) })
    }

    fn resolve(&mut self, parts: &[&str]) -> Result<Found, FsError> {
        let Some((last, parents)) = parts.split_last() else {
            return Ok(Found::Root);
        };
        let parent = self.walk(parents)?;
        match self.find(parent, last)? {
            Some(entry) => Ok(Found::Entry { parent, entry }),
            None => Err(FsError::NotFound),
        }
    }

    /// The directory the path `parts` names.
    fn walk(&mut self, parts: &[&str]) -> Result<Dir, FsError> {
        let mut dir = self.root();
        for part in parts {
            let e = self.find(dir, part)?.ok_or(FsError::NotFound)?;
            dir = self.dir_of(&e)?;
        }
        Ok(dir)
    }

    pub fn stat(&mut self, path: &str) -> Result<Stat, FsError> {
        let parts = names::split(path)?;
        Ok(match self.resolve(&parts)? {
            Found::Root => Stat {
                name: String::from("/"),
                is_dir: true,
                size: 0,
            },
            Found::Entry { entry, .. } => Stat {
                is_dir: entry.is_dir(),
                size: if entry.is_dir() { 0 } else { entry.size },
                name: entry.name,
            },
        })
    }

    /// The entries of the directory at `path`.
    pub fn list(&mut self, path: &str) -> Result<Vec<Stat>, FsError> {
        let parts = names::split(path)?;
        let dir = match self.resolve(&parts)? {
            Found::Root => self.root(),
            Found::Entry { entry, .. } => self.dir_of(&entry)?,
        };
        Ok(self
            .entries(dir)?
            .into_iter()
            .map(|e| Stat {
                is_dir: e.is_dir(),
                size: if e.is_dir() { 0 } else { e.size },
                name: e.name,
            })
            .collect())
    }

    fn file(&mut self, path: &str) -> Result<(Dir, Entry), FsError> {
        let parts = names::split(path)?;
        match self.resolve(&parts)? {
            Found::Root => Err(FsError::IsADirectory),
            Found::Entry { entry, .. } if entry.is_dir() => Err(FsError::IsADirectory),
            Found::Entry { parent, entry } => Ok((parent, entry)),
        }
    }

    /// The file's clusters, checked to hold its size.
    fn file_chain(&mut self, e: &Entry) -> Result<Vec<u32>, FsError> {
        let chain = self.chain(e.first_cluster)?;
        if (chain.len() as u64) < (e.size as u64).div_ceil(self.geo.cluster_bytes() as u64) {
            return Err(FsError::Corrupt("a file larger than its cluster chain"));
        }
        Ok(chain)
    }

    /// Reads up to `out.len()` bytes of the file at `path` from `offset`; returns how many
    /// (0 at or past the end).
    pub fn read(&mut self, path: &str, offset: u64, out: &mut [u8]) -> Result<usize, FsError> {
        let (_, e) = self.file(path)?;
        if offset >= e.size as u64 {
            return Ok(0);
        }
        let chain = self.file_chain(&e)?;
        let n = out.len().min((e.size as u64 - offset) as usize);
        let mut done = 0;
        while done < n {
            let at = offset + done as u64;
            let lba = self.data_sector(&chain, at)?;
            let within = (at % SECTOR as u64) as usize;
            let take = (SECTOR - within).min(n - done);
            let s = self.read_sector(lba)?;
            out[done..done + take].copy_from_slice(&s[within..within + take]);
            done += take;
        }
        Ok(n)
    }

    /// The sector holding byte `at` of a file with clusters `chain`.
    fn data_sector(&self, chain: &[u32], at: u64) -> Result<u64, FsError> {
        let cb = self.geo.cluster_bytes() as u64;
        let c = *chain.get((at / cb) as usize).ok_or(FsError::Corrupt("a file larger than its cluster chain"))?;
        Ok(self.geo.cluster_sector(c) + (at % cb) / SECTOR as u64)
    }

    /// Writes `data` into the file at `path` from `offset` (at most its size: no holes),
    /// making the file if it does not exist (its parent must).
    pub fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), FsError> {
        let parts = names::split(path)?;
        self.operation(|v| {
            let (slot, first, size) = match v.resolve(&parts) {
                Ok(Found::Root) => return Err(FsError::IsRoot),
                Ok(Found::Entry { entry, .. }) if entry.is_dir() => return Err(FsError::IsADirectory),
                Ok(Found::Entry { entry, .. }) if entry.attr & dir::ATTR_READ_ONLY != 0 => return Err(FsError::ReadOnly),
                Ok(Found::Entry { entry, .. }) => (entry.slot, entry.first_cluster, entry.size),
                Err(FsError::NotFound) => {
                    let (name, parents) = parts.split_last().ok_or(FsError::IsRoot)?;
                    let (short, case) = names::short_name(name)?;
                    let parent = v.walk(parents)?;
                    if v.find(parent, &names::show_short(&short, 0))?.is_some() {
                        return Err(FsError::AlreadyExists);
                    }
                    let slot = v.free_slot(parent)?;
                    v.put_entry(slot, &short, case, dir::ATTR_ARCHIVE, 0, 0)?;
                    (slot, 0, 0)
                }
                Err(e) => return Err(e),
            };
            if offset > size as u64 {
                return Err(FsError::BadOffset);
            }
            let end = offset
                .checked_add(data.len() as u64)
                .filter(|&e| e <= u32::MAX as u64)
                .ok_or(FsError::BadOffset)?;
            let mut chain = v.chain(first)?;
            let cb = v.geo.cluster_bytes() as u64;
            if (chain.len() as u64) < (size as u64).div_ceil(cb) {
                return Err(FsError::Corrupt("a file larger than its cluster chain"));
            }
            let need = end.div_ceil(cb) as usize;
            let mut first = first;
            if need > chain.len() {
                let new = v.allocate(need - chain.len())?;
                match chain.last() {
                    Some(&last) => v.link(last, Some(new[0]))?,
                    None => first = new[0],
                }
                chain.extend(new);
            }
            v.write_data(&chain, offset, data)?;
            v.update_entry(slot, first, size.max(end as u32))
        })
    }

    /// Writes file bytes straight to the disk (not staged: data goes before metadata).
    fn write_data(&mut self, chain: &[u32], offset: u64, data: &[u8]) -> Result<(), FsError> {
        let mut writes: Vec<(u64, [u8; SECTOR])> = Vec::new();
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let lba = self.data_sector(chain, at)?;
            let within = (at % SECTOR as u64) as usize;
            let take = (SECTOR - within).min(data.len() - done);
            let mut s = if take == SECTOR { [0u8; SECTOR] } else { self.read_sector(lba)? };
            s[within..within + take].copy_from_slice(&data[done..done + take]);
            writes.push((lba, s));
            done += take;
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.disk.write(&writes)
    }

    fn zero_cluster(&mut self, cluster: u32) -> Result<(), FsError> {
        let first = self.geo.cluster_sector(cluster);
        let writes: Vec<(u64, [u8; SECTOR])> = (0..self.geo.sectors_per_cluster as u64).map(|i| (first + i, [0u8; SECTOR])).collect();
        self.disk.write(&writes)
    }

    /// Shortens the file at `path` to `len` bytes (at most its size).
    pub fn truncate(&mut self, path: &str, len: u64) -> Result<(), FsError> {
        let (_, e) = self.file(path)?;
        if len > e.size as u64 {
            return Err(FsError::BadOffset);
        }
        if e.attr & dir::ATTR_READ_ONLY != 0 {
            return Err(FsError::ReadOnly);
        }
        self.operation(|v| {
            let chain = v.file_chain(&e)?;
            let keep = len.div_ceil(v.geo.cluster_bytes() as u64) as usize;
            if keep < chain.len() {
                v.free(&chain[keep..])?;
                if keep > 0 {
                    v.link(chain[keep - 1], None)?;
                }
            }
            let first = if keep == 0 { 0 } else { e.first_cluster };
            v.update_entry(e.slot, first, len as u32)
        })
    }

    /// Removes the file or the empty directory at `path`.
    pub fn remove(&mut self, path: &str) -> Result<(), FsError> {
        let parts = names::split(path)?;
        self.operation(|v| {
            let Found::Entry { entry, .. } = v.resolve(&parts)? else {
                return Err(FsError::IsRoot);
            };
            if entry.attr & dir::ATTR_READ_ONLY != 0 {
                return Err(FsError::ReadOnly);
            }
            if entry.is_dir() {
                let d = v.dir_of(&entry)?;
                if !v.entries(d)?.is_empty() {
                    return Err(FsError::DirectoryNotEmpty);
                }
            }
            let chain = if entry.is_dir() {
                v.chain(entry.first_cluster)?
            } else {
                v.file_chain(&entry)?
            };
            v.delete_entry(&entry)?;
            v.free(&chain)
        })
    }

    /// Makes the directory `path` (its parent must exist).
    pub fn mkdir(&mut self, path: &str) -> Result<(), FsError> {
        let parts = names::split(path)?;
        let (name, parents) = parts.split_last().ok_or(FsError::IsRoot)?;
        let (short, case) = names::short_name(name)?;
        self.operation(|v| {
            let parent = v.walk(parents)?;
            if v.find(parent, name)?.is_some() || v.find(parent, &names::show_short(&short, 0))?.is_some() {
                return Err(FsError::AlreadyExists);
            }
            let slot = v.free_slot(parent)?;
            let c = v.allocate(1)?[0];
            // `.` and `..` in a zeroed cluster, written before the entry that makes it live.
            let parent_cluster = match parent {
                Dir::FixedRoot => 0,
                Dir::Chain(c) if Dir::Chain(c) == v.root() => 0,
                Dir::Chain(c) => c,
            };
            let first = v.geo.cluster_sector(c);
            let mut s = [0u8; SECTOR];
            for (i, (n, target)) in [(b".          ", c), (b"..         ", parent_cluster)].iter().enumerate() {
                let e = &mut s[32 * i..32 * (i + 1)];
                e[..11].copy_from_slice(*n);
                e[11] = dir::ATTR_DIRECTORY;
                for at in [16, 18, 24] {
                    e[at..at + 2].copy_from_slice(&dir::FIXED_DATE.to_le_bytes());
                }
                e[20..22].copy_from_slice(&((target >> 16) as u16).to_le_bytes());
                e[26..28].copy_from_slice(&(*target as u16).to_le_bytes());
            }
            let mut writes = alloc::vec![(first, s)];
            writes.extend((1..v.geo.sectors_per_cluster as u64).map(|i| (first + i, [0u8; SECTOR])));
            v.disk.write(&writes)?;
            v.put_entry(slot, &short, case, dir::ATTR_DIRECTORY, c, 0)
        })
    }

    /// (total bytes, free bytes) of the data area.
    pub fn usage(&mut self) -> Result<(u64, u64), FsError> {
        let cb = self.geo.cluster_bytes() as u64;
        let free = self.count_free()? as u64;
        Ok((self.geo.clusters as u64 * cb, free * cb))
    }
}
