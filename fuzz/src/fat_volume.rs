//! The FS domain's FAT code against any disk image: mounting it, listing, reading, and
//! writing into it either works or gives an error; it never panics, and reads stay within
//! the disk.

use crate::fat::layout::SECTOR;
use crate::fat::{FsError, Sectors, Volume};
use crate::Outcome;

/// A disk in memory: the image's bytes, then zeros up to `sectors`.
pub struct MemDisk {
    pub bytes: Vec<u8>,
    pub sectors: u64,
    /// Write calls left before every further one fails (a crash, for the consistency
    /// tests); `None`: no limit.
    pub writes_left: Option<usize>,
}

impl MemDisk {
    pub fn new(bytes: Vec<u8>) -> MemDisk {
        let sectors = bytes.len() as u64 / SECTOR as u64;
        MemDisk {
            bytes,
            sectors,
            writes_left: None,
        }
    }
}

impl Sectors for MemDisk {
    fn read(&mut self, lba: u64, out: &mut [u8; SECTOR]) -> Result<(), FsError> {
        assert!(lba < self.sectors, "read of sector {lba} past the disk's {}", self.sectors);
        let at = lba as usize * SECTOR;
        out.fill(0);
        if let Some(src) = self.bytes.get(at..) {
            let n = src.len().min(SECTOR);
            out[..n].copy_from_slice(&src[..n]);
        }
        Ok(())
    }

    fn write(&mut self, sectors: &[(u64, [u8; SECTOR])]) -> Result<(), FsError> {
        if let Some(left) = &mut self.writes_left {
            if *left == 0 {
                return Err(FsError::Io);
            }
            *left -= 1;
        }
        for (lba, s) in sectors {
            assert!(*lba < self.sectors, "write of sector {lba} past the disk's {}", self.sectors);
            let at = *lba as usize * SECTOR;
            if self.bytes.len() < at + SECTOR {
                self.bytes.resize(at + SECTOR, 0);
            }
            self.bytes[at..at + SECTOR].copy_from_slice(s);
        }
        Ok(())
    }

    fn count(&self) -> u64 {
        self.sectors
    }
}

/// The disk the check mounts: the input, then zeros up to this size. The seeds
/// (`cargo xtask fuzz --seed`, xtask/src/fuzz/seeds.rs) are volumes made for a disk of this
/// size: a larger volume would not fit and be refused.
pub const FUZZ_DISK_BYTES: u64 = 4 << 20;

/// Mounts `data` as the start of a `FUZZ_DISK_BYTES` disk and works on it.
pub fn fat_volume(data: &[u8]) -> Outcome {
    let mut disk = MemDisk::new(data.to_vec());
    disk.sectors = FUZZ_DISK_BYTES / SECTOR as u64;
    let Ok(mut v) = Volume::mount(disk) else {
        return Outcome::Refused;
    };
    let mut buf = [0u8; 1024];
    if let Ok(list) = v.list("/") {
        for e in list.iter().take(16) {
            let path = format!("/{}", e.name);
            let _ = v.stat(&path);
            if e.is_dir {
                let _ = v.list(&path);
            } else {
                let _ = v.read(&path, 0, &mut buf);
            }
        }
    }
    let _ = v.write("/FUZZ.TXT", 0, b"written by the fuzzer");
    if v.read("/FUZZ.TXT", 0, &mut buf) == Ok(21) {
        assert_eq!(&buf[..21], b"written by the fuzzer", "a file written reads back");
    }
    let _ = v.mkdir("/FUZZDIR");
    let _ = v.write("/FUZZDIR/A.TXT", 0, &[7u8; 3000]);
    let _ = v.remove("/FUZZ.TXT");
    let _ = v.usage();
    Outcome::Accepted
}
