//! Where the volume is and how it is laid out: the MBR's first FAT partition (or a volume
//! without a partition table), and the FAT boot sector's BIOS parameter block. Every field
//! is checked against the others and against the disk before anything is read through
//! it; a field that does not add up is a `Corrupt` error naming it.
//!
//! Accepted: 512-byte sectors, 1–128 sectors per cluster (a power of two), one or two
//! FATs, FAT16 (4,085–65,524 clusters) and FAT32 (from 65,525). FAT12 and exFAT are
//! refused with their own error.

use super::FsError;

pub const SECTOR: usize = 512;

/// MBR partition types of a FAT16 or FAT32 volume.
const FAT_PARTITION_TYPES: &[u8] = &[0x04, 0x06, 0x0e, 0x0b, 0x0c];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatKind {
    Fat16,
    Fat32,
}

/// The volume's layout; every sector number is absolute on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub kind: FatKind,
    /// First sector of the volume (its boot sector).
    pub start: u64,
    pub sectors_per_cluster: u32,
    /// First sector of the first FAT.
    pub fat_start: u64,
    pub fat_sectors: u32,
    pub fats: u32,
    /// FAT16: the fixed root directory's first sector and its sector count.
    pub root_start: u64,
    pub root_sectors: u32,
    /// FAT32: the root directory's first cluster.
    pub root_cluster: u32,
    /// FAT32: the FSInfo sector (absolute), if any.
    pub fs_info: Option<u64>,
    /// First sector of cluster 2.
    pub data_start: u64,
    /// Clusters 2 .. 2 + clusters hold data.
    pub clusters: u32,
}

impl Geometry {
    pub fn cluster_bytes(&self) -> usize {
        self.sectors_per_cluster as usize * SECTOR
    }

    /// First sector of `cluster` (callers check it is a data cluster).
    pub fn cluster_sector(&self, cluster: u32) -> u64 {
        self.data_start + (cluster as u64 - 2) * self.sectors_per_cluster as u64
    }

    /// True for a cluster number that names a data cluster.
    pub fn is_data_cluster(&self, cluster: u32) -> bool {
        cluster >= 2 && cluster - 2 < self.clusters
    }
}

fn u16_at(s: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([s[at], s[at + 1]])
}

fn u32_at(s: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]])
}

/// Where the FAT volume starts and how many sectors it may use: the first FAT partition
/// of an MBR, or the whole disk when sector 0 is itself a FAT boot sector.
pub fn find_volume(sector0: &[u8; SECTOR], disk_sectors: u64) -> Result<(u64, u64), FsError> {
    if sector0[510] != 0x55 || sector0[511] != 0xaa {
        return Err(FsError::Corrupt("sector 0 has no boot signature (0x55 0xaa)"));
    }
    if looks_like_boot_sector(sector0) {
        return Ok((0, disk_sectors));
    }
    for i in 0..4 {
        let e = &sector0[446 + 16 * i..446 + 16 * (i + 1)];
        if !FAT_PARTITION_TYPES.contains(&e[4]) {
            continue;
        }
        let (start, len) = (u32_at(e, 8) as u64, u32_at(e, 12) as u64);
        if start == 0 || len == 0 || start.checked_add(len).is_none_or(|end| end > disk_sectors) {
            return Err(FsError::Corrupt("the FAT partition lies outside the disk"));
        }
        return Ok((start, len));
    }
    Err(FsError::NoVolume)
}

fn looks_like_boot_sector(s: &[u8; SECTOR]) -> bool {
    (s[0] == 0xeb || s[0] == 0xe9) && u16_at(s, 11) == SECTOR as u16 && s[13].is_power_of_two()
}

/// Reads the BIOS parameter block of the boot sector at `start`, a volume of at most
/// `sectors` sectors.
pub fn parse_boot_sector(b: &[u8; SECTOR], start: u64, sectors: u64) -> Result<Geometry, FsError> {
    if b[510] != 0x55 || b[511] != 0xaa {
        return Err(FsError::Corrupt("the boot sector has no signature (0x55 0xaa)"));
    }
    if &b[3..11] == b"EXFAT   " {
        return Err(FsError::Unsupported("exFAT volumes"));
    }
    let bytes_per_sector = u16_at(b, 11);
    if bytes_per_sector as usize != SECTOR {
        return Err(FsError::Unsupported("sector sizes other than 512 bytes"));
    }
    let spc = b[13] as u32;
    if spc == 0 || !spc.is_power_of_two() {
        return Err(FsError::Corrupt("sectors per cluster is not a power of two"));
    }
    let reserved = u16_at(b, 14) as u64;
    if reserved == 0 {
        return Err(FsError::Corrupt("no reserved sectors (the boot sector is one)"));
    }
    let fats = b[16] as u32;
    if fats == 0 || fats > 2 {
        return Err(FsError::Corrupt("the number of FATs is not 1 or 2"));
    }
    let root_entries = u16_at(b, 17) as u32;
    let total = match u16_at(b, 19) {
        0 => u32_at(b, 32) as u64,
        n => n as u64,
    };
    if total == 0 || total > sectors {
        return Err(FsError::Corrupt("the volume's sector count is zero or larger than its partition"));
    }
    let fat16_size = u16_at(b, 22) as u32;
    let fat_sectors = if fat16_size != 0 { fat16_size } else { u32_at(b, 36) };
    if fat_sectors == 0 {
        return Err(FsError::Corrupt("the FAT size is zero"));
    }
    let root_sectors = (root_entries * 32).div_ceil(SECTOR as u32);
    let data_start = reserved + fats as u64 * fat_sectors as u64 + root_sectors as u64;
    if data_start >= total {
        return Err(FsError::Corrupt("the FATs and root directory fill the whole volume"));
    }
    let clusters64 = (total - data_start) / spc as u64;
    let clusters = u32::try_from(clusters64).map_err(|_| FsError::Corrupt("too many clusters"))?;
    let kind = if clusters < 4085 {
        return Err(FsError::Unsupported("FAT12 volumes (fewer than 4,085 clusters)"));
    } else if clusters < 65525 {
        FatKind::Fat16
    } else {
        FatKind::Fat32
    };
    let entry_bytes = if kind == FatKind::Fat16 { 2 } else { 4 };
    if (clusters as u64 + 2) * entry_bytes > fat_sectors as u64 * SECTOR as u64 {
        return Err(FsError::Corrupt("the FAT is too small for the volume's clusters"));
    }
    let (root_cluster, fs_info) = match kind {
        FatKind::Fat16 => {
            if root_entries == 0 {
                return Err(FsError::Corrupt("a FAT16 volume without root directory entries"));
            }
            (0, None)
        }
        FatKind::Fat32 => {
            if root_entries != 0 || fat16_size != 0 {
                return Err(FsError::Corrupt("a FAT32 volume with FAT16 fields set"));
            }
            let root = u32_at(b, 44);
            if root < 2 || root - 2 >= clusters {
                return Err(FsError::Corrupt("the root directory's cluster is outside the volume"));
            }
            let info = u16_at(b, 48) as u64;
            (root, (info != 0 && info != 0xffff && info < reserved).then_some(start + info))
        }
    };
    Ok(Geometry {
        kind,
        start,
        sectors_per_cluster: spc,
        fat_start: start + reserved,
        fat_sectors,
        fats,
        root_start: start + reserved + fats as u64 * fat_sectors as u64,
        root_sectors,
        root_cluster,
        fs_info,
        data_start: start + data_start,
        clusters,
    })
}
