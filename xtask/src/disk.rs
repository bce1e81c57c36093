//! The disk image `cargo xtask run` attaches (`target/qvq/<board>/disk.img`) and the fresh
//! copy the block and file tests boot with (`test-disk.img`): 16 MiB, an MBR (whose boot
//! code area, unused, starts with [`FIRST_LINE`]) with one FAT16 partition from 1 MiB to
//! 15 MiB holding `README.TXT` ([`README`]), and the last MiB ([`RAW_FIRST_BLOCK`] on) left
//! raw, outside the partition, for the block tests that write blocks directly. The
//! partition is made by dosfstools' `mkfs.fat` and the file copied in by mtools' `mcopy`
//! (`cargo xtask setup` installs both). Also what QEMU is told to attach it as, the host's
//! reading of a block after QEMU has exited, and the host's checks of the partition
//! (`fsck.fat -n`, `mtype`).

use crate::board::Board;
use crate::paths::out_dir;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bytes in one block (the `Block` interface's `BLOCK_SIZE`).
pub const BLOCK: u64 = 4096;
/// The image's size: 4096 blocks (a power of two, as QEMU wants an SD card's size).
pub const BYTES: u64 = 16 << 20;
/// What block 0 (the MBR's boot code area) starts with.
pub const FIRST_LINE: &str = "QvQ disk: made by cargo xtask\n";
/// The FAT partition: its first sector (1 MiB) and its size in 512-byte sectors (14 MiB).
pub const PARTITION_START: u64 = 2048;
pub const PARTITION_SECTORS: u64 = 14 << 11;
/// The first block of the raw area after the partition (15 MiB): blocks from here to the
/// end belong to no partition, and the block tests write there.
pub const RAW_FIRST_BLOCK: u64 = (PARTITION_START + PARTITION_SECTORS) * 512 / BLOCK;
/// What the partition's `README.TXT` says.
pub const README: &str = "This is QvQ's disk image, made by cargo xtask (xtask/src/disk.rs).\r\n\
It has an MBR with one FAT16 partition from 1 MiB to 15 MiB (this volume, which the fs\r\n\
domain mounts: ls, cat, write, rm, mkdir and df in the shell), and the last MiB left raw,\r\n\
outside any partition, for the block tests.\r\n";

/// The image `run` attaches unless given `--disk` (made if missing, never overwritten).
pub fn default_path(board: Board) -> PathBuf {
    out_dir(board).join("disk.img")
}

/// The fresh image a test case with `Setup::FreshDisk` boots with (rewritten per case).
pub fn test_path(board: Board) -> PathBuf {
    out_dir(board).join("test-disk.img")
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e} (`cargo xtask setup` installs dosfstools and mtools)"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The MBR: [`FIRST_LINE`] in the boot code area, one FAT16 (LBA, type 0x0e) partition.
fn mbr() -> [u8; 512] {
    mbr_with_one_partition(FIRST_LINE.as_bytes(), 0x0e, false, PARTITION_START, PARTITION_SECTORS)
}

/// An MBR with `boot_code` at its start and one partition of `kind` (an MBR type byte)
/// from sector `start`, `sectors` long, addressed by LBA (its CHS fields say "use LBA").
pub fn mbr_with_one_partition(boot_code: &[u8], kind: u8, bootable: bool, start: u64, sectors: u64) -> [u8; 512] {
    let mut s = [0u8; 512];
    let code = boot_code.len().min(446);
    s[..code].copy_from_slice(&boot_code[..code]);
    let e = &mut s[446..462];
    e[0] = if bootable { 0x80 } else { 0x00 };
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[4] = kind;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[8..12].copy_from_slice(&(start as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// Writes the default image's contents to `file` (at `path`, already empty).
fn fill(file: &mut File, path: &Path) -> Result<(), String> {
    let part = path.with_extension("partition.tmp");
    let readme = path.with_extension("readme.tmp");
    let made = (|| {
        let _ = std::fs::remove_file(&part);
        run(Command::new("mkfs.fat")
            .args(["-F", "16", "-n", "QVQDISK", "-i", "51760000", "-h"])
            .arg(PARTITION_START.to_string())
            .arg("-C")
            .arg(&part)
            .arg((PARTITION_SECTORS / 2).to_string()))?;
        std::fs::write(&readme, README).map_err(|e| format!("cannot write {}: {e}", readme.display()))?;
        run(Command::new("mcopy").arg("-i").arg(&part).arg(&readme).arg("::/README.TXT"))?;
        std::fs::read(&part).map_err(|e| format!("cannot read {}: {e}", part.display()))
    })();
    let _ = std::fs::remove_file(&part);
    let _ = std::fs::remove_file(&readme);
    let volume = made?;
    if volume.len() as u64 != PARTITION_SECTORS * 512 {
        return Err(format!("mkfs.fat made {} bytes, not {}", volume.len(), PARTITION_SECTORS * 512));
    }
    (|| {
        file.write_all(&mbr())?;
        file.seek(SeekFrom::Start(PARTITION_START * 512))?;
        file.write_all(&volume)?;
        file.set_len(BYTES)?;
        file.sync_all()
    })()
    .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Makes the default image at `path` unless a file is there already (it is never
/// overwritten: it holds what the guest wrote). Returns true if it was made now.
pub fn ensure(path: &Path) -> Result<bool, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
    };
    if let Err(e) = fill(&mut file, path) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(true)
}

/// Writes a fresh default image at `path`, replacing whatever was there (the tests' copy).
pub fn make_fresh(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    fill(&mut file, path)
}

/// The image's FAT partition as mtools names it (`-i IMAGE@@OFFSET`).
fn partition_of(path: &Path) -> String {
    format!("{}@@{}", path.display(), PARTITION_START * 512)
}

/// The folder on the partition that holds the board's signed domains.
pub const DOMAINS_DIR: &str = "/DOMAINS";

/// Copies the board's signed domains (the initrd's envelopes, kept versions included,
/// named as in the initrd: `hello.qvd`, `hello-0.2.0.qvd`) into [`DOMAINS_DIR`] on the
/// image's FAT partition, replacing older copies: what `swap NAME disk:PATH` and `load
/// disk:PATH` take. Returns how many.
pub fn put_domains(path: &Path, board: Board) -> Result<usize, String> {
    let entries = crate::image::initrd_entries(board)?;
    let staging = path.with_extension("domains.tmp");
    let _ = std::fs::remove_dir_all(&staging);
    let folder = staging.join(DOMAINS_DIR.trim_start_matches('/'));
    let copied = (|| {
        std::fs::create_dir_all(&folder).map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        for (name, bytes) in &entries {
            let file = folder.join(name);
            std::fs::write(&file, bytes).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
        // -s: the folder and its files; -o: replace what a previous run copied; -Q: stop at
        // the first error.
        run(Command::new("mcopy")
            .args(["-s", "-o", "-Q", "-i"])
            .arg(partition_of(path))
            .arg(&folder)
            .arg("::/"))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    copied.map(|_| entries.len())
}

/// `fsck.fat -n` (check, change nothing) on the image's FAT partition (copied out first:
/// fsck.fat takes no offset). Ok if it finds nothing to fix; else what it says.
pub fn fsck_partition(path: &Path) -> Result<(), String> {
    fsck_volume_at(path, PARTITION_START, PARTITION_SECTORS)
}

/// `fsck.fat -n` on the volume of `sectors` sectors from sector `start` of the image.
pub fn fsck_volume_at(path: &Path, start: u64, sectors: u64) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let start = (start * 512) as usize;
    let volume = bytes
        .get(start..start + (sectors * 512) as usize)
        .ok_or_else(|| format!("{} is too small to hold the partition", path.display()))?;
    let copy = path.with_extension("fsck.tmp");
    std::fs::write(&copy, volume).map_err(|e| format!("cannot write {}: {e}", copy.display()))?;
    let r = run(Command::new("fsck.fat").arg("-n").arg(&copy));
    let _ = std::fs::remove_file(&copy);
    r.map(drop).map_err(|e| format!("the FAT partition of {} is not clean: {e}", path.display()))
}

/// The file `file` ("/DOCS/NOTE.TXT") of the image's FAT partition, as mtools' `mtype` reads it.
pub fn mtype(path: &Path, file: &str) -> Result<Vec<u8>, String> {
    mtype_at(path, PARTITION_START, file)
}

/// `mtype` of `file` on the volume from sector `start` of the image.
pub fn mtype_at(path: &Path, start: u64, file: &str) -> Result<Vec<u8>, String> {
    let out = Command::new("mtype")
        .arg("-i")
        .arg(format!("{}@@{}", path.display(), start * 512))
        .arg(format!("::{file}"))
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .map_err(|e| format!("cannot run mtype: {e} (`cargo xtask setup` installs mtools)"))?;
    if !out.status.success() {
        return Err(format!("mtype {file}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out.stdout)
}

/// Block `lba` of the image at `path` (all [`BLOCK`] bytes of it).
pub fn read_block(path: &Path, lba: u64) -> Result<Vec<u8>, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let offset = lba
        .checked_mul(BLOCK)
        .filter(|o| o + BLOCK <= len)
        .ok_or_else(|| format!("block {lba} is past the end of {} ({} blocks)", path.display(), len / BLOCK))?;
    let mut block = vec![0; BLOCK as usize];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut block))
        .map_err(|e| format!("cannot read block {lba} of {}: {e}", path.display()))?;
    Ok(block)
}

/// Checks that block `lba` of the image at `path` holds `bytes` from byte `offset` on.
pub fn check_block(path: &Path, lba: u64, offset: usize, bytes: &[u8]) -> Result<(), String> {
    let block = read_block(path, lba)?;
    let found = block
        .get(offset..offset + bytes.len())
        .ok_or_else(|| format!("bytes {offset}..{} do not fit in a {BLOCK}-byte block", offset + bytes.len()))?;
    if found == bytes {
        Ok(())
    } else {
        Err(format!(
            "block {lba} of {} at byte {offset}: expected {:?}, found {:?}",
            path.display(),
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(found)
        ))
    }
}

/// QEMU's arguments that attach the image at `path` on `board`: virt, a virtio-blk device
/// on a virtio-mmio transport (QEMU 7.2's default legacy interface); rpi3, the SD card of
/// the Arasan SDHCI controller (the sdhci domain drives it; a 16 MiB image is a standard
/// capacity card, byte-addressed, and QEMU wants an SD card's size to be a power of 2).
pub fn qemu_args(board: Board, path: &Path) -> Vec<String> {
    match board {
        Board::Virt => vec![
            "-drive".into(),
            format!("file={},if=none,format=raw,id=qvqdisk", path.display()),
            "-device".into(),
            "virtio-blk-device,drive=qvqdisk".into(),
        ],
        Board::Rpi3 => vec!["-drive".into(), format!("if=sd,format=raw,file={}", path.display())],
    }
}

/// What the guest sees the disk as, for `run`'s message.
pub fn described(board: Board) -> &'static str {
    match board {
        Board::Virt => "a virtio-blk device (virtio-mmio)",
        Board::Rpi3 => "the SD card of the Arasan SDHCI controller (the sdhci driver)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path in a scratch folder of this test's own (removed by the test).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("qvq-disk-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn a_new_image_is_16_mib_with_the_first_line_a_clean_fat_partition_and_a_raw_area() {
        let p = scratch("new.img");
        assert!(ensure(&p).unwrap());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), BYTES);
        let b0 = read_block(&p, 0).unwrap();
        assert!(b0.starts_with(FIRST_LINE.as_bytes()));
        assert_eq!(&b0[446..462], &mbr()[446..462]);
        assert_eq!(&b0[510..512], &[0x55, 0xaa]);
        assert_eq!(RAW_FIRST_BLOCK, 3840);
        fsck_partition(&p).unwrap();
        assert_eq!(mtype(&p, "/README.TXT").unwrap(), README.as_bytes());
        assert!(mtype(&p, "/NOPE.TXT").is_err());
        // Nothing but zeros between the MBR and the partition, and in the raw area.
        assert!(b0[512..].iter().all(|b| *b == 0));
        for lba in RAW_FIRST_BLOCK..BYTES / BLOCK {
            assert!(read_block(&p, lba).unwrap().iter().all(|b| *b == 0), "raw block {lba}");
        }
        assert!(read_block(&p, BYTES / BLOCK).is_err());
        check_block(&p, 0, 4, b"disk:").unwrap();
        assert!(check_block(&p, 0, 0, b"nope").is_err());
        assert!(check_block(&p, 0, 4095, b"xy").is_err());
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }

    #[test]
    fn ensure_never_overwrites_but_make_fresh_does() {
        let p = scratch("kept.img");
        std::fs::write(&p, b"mine").unwrap();
        assert!(!ensure(&p).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"mine");
        make_fresh(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), BYTES);
        check_block(&p, 0, 0, FIRST_LINE.as_bytes()).unwrap();
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }
}
