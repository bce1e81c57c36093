//! The disk image `cargo xtask run` attaches (`target/qvq/<board>/disk.img`) and the fresh
//! copy the block tests boot with (`test-disk.img`): 16 MiB, block 0 starting with
//! [`FIRST_LINE`], every other byte zero. Also what QEMU is told to attach it as, and the
//! host's reading of a block after QEMU has exited.

use crate::board::Board;
use crate::paths::out_dir;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes in one block (the `Block` interface's `BLOCK_SIZE`).
pub const BLOCK: u64 = 4096;
/// The image's size: 4096 blocks.
pub const BYTES: u64 = 16 << 20;
/// What block 0 starts with.
pub const FIRST_LINE: &str = "QvQ disk: made by cargo xtask\n";

/// The image `run` attaches unless given `--disk` (made if missing, never overwritten).
pub fn default_path(board: Board) -> PathBuf {
    out_dir(board).join("disk.img")
}

/// The fresh image a test case with `Setup::FreshDisk` boots with (rewritten per case).
pub fn test_path(board: Board) -> PathBuf {
    out_dir(board).join("test-disk.img")
}

/// Writes the default image's contents to `file` (already empty): the first line, then
/// zeros up to [`BYTES`] (a sparse file where the filesystem allows).
fn fill(file: &mut File) -> std::io::Result<()> {
    file.write_all(FIRST_LINE.as_bytes())?;
    file.set_len(BYTES)?;
    file.sync_all()
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
    if let Err(e) = fill(&mut file) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(true)
}

/// Writes a fresh default image at `path`, replacing whatever was there (the tests' copy).
pub fn make_fresh(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    fill(&mut file).map_err(|e| format!("cannot write {}: {e}", path.display()))
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
    fn a_new_image_is_16_mib_with_the_first_line_and_zeros() {
        let p = scratch("new.img");
        assert!(ensure(&p).unwrap());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), BYTES);
        let b0 = read_block(&p, 0).unwrap();
        assert!(b0.starts_with(FIRST_LINE.as_bytes()));
        assert!(b0[FIRST_LINE.len()..].iter().all(|b| *b == 0));
        assert!(read_block(&p, BYTES / BLOCK - 1).unwrap().iter().all(|b| *b == 0));
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
