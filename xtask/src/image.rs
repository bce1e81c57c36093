//! Building the boot artefacts: kernel8.img (raw image with the arm64 Linux header),
//! initrd.img, and for rpi3 the device tree QEMU gets with `-dtb`. A kernel built with its
//! `selftest` feature (self tests and benchmarks: `test`, `bench`, `run --selftest`) is
//! written as kernel8-selftest.img / kernel-selftest.elf, so neither build is ever mistaken
//! for the other.

use crate::board::Board;
use crate::paths::{self, out_dir, workspace_root};
use crate::setup::{cargo, KERNEL_TARGET};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which kernel to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// What ships (`run`, `dist`, `build`): no test-only code.
    Release,
    /// With the kernel's `selftest` feature: the self tests `qvq.test=NAME` selects and the
    /// benchmarks (`test`, `bench`, `run --selftest`).
    Selftest,
}

impl Kernel {
    /// The kernel's cargo features for `board`, with the host-link receiver if `host_link`.
    pub fn features(self, board: Board, host_link: bool) -> String {
        let mut f = board.name().to_string();
        if self == Kernel::Selftest {
            f.push_str(",selftest");
        }
        if host_link {
            f.push_str(",hostlink");
        }
        f
    }

    /// Added to the output file names, so a release and a selftest build never share one.
    fn suffix(self) -> &'static str {
        match self {
            Kernel::Release => "",
            Kernel::Selftest => "-selftest",
        }
    }
}

/// Paths of what `build` made.
pub struct Built {
    /// The raw image (kernel8.img, or kernel8-selftest.img).
    pub kernel: PathBuf,
    /// The kernel ELF, for gdb (kernel.elf, or kernel-selftest.elf).
    pub elf: PathBuf,
    pub initrd: PathBuf,
    pub dtb: Option<PathBuf>,
}

/// Builds the kernel ELF for `board`; returns its path. Cargo is run every time: it rebuilds
/// when the features changed and always leaves the binary of this feature set at the path.
fn build_kernel_elf(board: Board, kernel: Kernel, host_link: bool) -> Result<PathBuf, String> {
    let root = workspace_root();
    let status = cargo()
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--package",
            "qvq-kernel",
            "--target",
            KERNEL_TARGET,
            "--features",
            &kernel.features(board, host_link),
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the kernel for {} failed", board.name()));
    }
    Ok(root.join("target").join(KERNEL_TARGET).join("release/qvq-kernel"))
}

fn u16_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]) as u64)
        .ok_or_else(|| "ELF truncated".to_string())
}
fn u32_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()) as u64)
        .ok_or_else(|| "ELF truncated".to_string())
}
fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| "ELF truncated".to_string())
}

/// Lays the ELF's loadable bytes out flat from the lowest load address, as a boot loader
/// expects a raw image. BSS is not included (its size is in the header's image_size).
pub fn elf_to_raw_image(elf: &[u8]) -> Result<Vec<u8>, String> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) {
        return Err("kernel is not an ELF64 file".into());
    }
    let phoff = u64_at(elf, 0x20)? as usize;
    let phentsize = u16_at(elf, 0x36)? as usize;
    let phnum = u16_at(elf, 0x38)? as usize;
    let mut segments = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(elf, ph)? != 1 {
            continue; // not PT_LOAD
        }
        let (offset, paddr, filesz) = (u64_at(elf, ph + 8)?, u64_at(elf, ph + 24)?, u64_at(elf, ph + 32)?);
        if filesz > 0 {
            segments.push((paddr, offset as usize, filesz as usize));
        }
    }
    let base = segments.iter().map(|s| s.0).min().ok_or("kernel ELF has no loadable bytes")?;
    let end = segments.iter().map(|s| s.0 + s.2 as u64).max().unwrap();
    let mut image = vec![0u8; (end - base) as usize];
    for (paddr, offset, filesz) in segments {
        let at = (paddr - base) as usize;
        let src = elf.get(offset..offset + filesz).ok_or("segment outside the ELF file")?;
        image[at..at + filesz].copy_from_slice(src);
    }
    if image.get(0x38..0x3c) != Some(b"ARM\x64") {
        return Err("kernel image lacks the arm64 Image header magic at 0x38".into());
    }
    Ok(image)
}

/// The local development key (made on first use; git-ignored). Returns the private key
/// path. Also makes this machine's test keys: `revoked-test`, trusted like the dev key but
/// listed in keys/dev/revoked.toml, so tests can show a revoked signer is refused; and
/// `limited-test`, whose policy (keys/policy/limited-test.toml) allows only `hello`.
pub fn ensure_dev_key() -> Result<PathBuf, String> {
    let dev = paths::dev_keys_dir();
    let make = |name: &str| -> Result<(PathBuf, [u8; 32]), String> {
        let prefix = dev.join(name);
        let (private, public) = qvq_sign::key_paths(&prefix);
        if !private.exists() || !public.exists() {
            let (_, _, id) = qvq_sign::keygen(&prefix, true)?;
            eprintln!("xtask: made the local key {} (key id {})", private.display(), qvq_sign::hex(&id));
        }
        let id = qvq_sign::public_key_id(&qvq_sign::read_public_key(&public)?);
        Ok((private, id))
    };
    let (private, _) = make("dev")?;
    let (_, revoked_id) = make("revoked-test")?;
    make("limited-test")?;
    let revoked = dev.join("revoked.toml");
    let text = format!(
        "# This machine's revoked test key (made by xtask; git-ignored).\nkeys = [\"{}\"]\n",
        qvq_sign::hex(&revoked_id)
    );
    if std::fs::read_to_string(&revoked).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&revoked, text).map_err(|e| format!("cannot write {}: {e}", revoked.display()))?;
    }
    Ok(private)
}

/// Packs `(entry name, envelope)` pairs into an initrd image at `path`.
pub fn write_initrd(path: &Path, entries: &[(String, Vec<u8>)]) -> Result<(), String> {
    let img = initrd::pack(entries).map_err(|e| e.to_string())?;
    std::fs::write(path, img).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The signed domains of the board's initrd, in recipe order.
pub fn initrd_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    crate::domains::signed_initrd_entries(board, &ensure_dev_key()?)
}

/// Compiles a DTS file with dtc.
pub fn compile_dts(dts: &Path, dtb: &Path) -> Result<(), String> {
    let out = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(dtb)
        .arg(dts)
        .output()
        .map_err(|e| format!("cannot run dtc: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("dtc failed on {}:\n{}", dts.display(), String::from_utf8_lossy(&out.stderr)))
    }
}

/// Builds everything for `board`, the kernel with the host-link receiver if the board
/// recipe enables it (`host_link = true`).
pub fn build(board: Board, which: Kernel) -> Result<Built, String> {
    build_with(board, which, crate::swap::recipe_enables_host_link(board)?)
}

/// Builds the kernel alone and writes it as `kernel8<which><extra>.img` and
/// `kernel<which><extra>.elf`; returns (image, ELF). The receiver is in only if `host_link`.
pub fn build_kernel(board: Board, which: Kernel, host_link: bool, extra: &str) -> Result<(PathBuf, PathBuf), String> {
    let out = out_dir(board);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let elf_path = build_kernel_elf(board, which, host_link)?;
    let elf = std::fs::read(&elf_path).map_err(|e| format!("cannot read {}: {e}", elf_path.display()))?;
    let kernel = out.join(format!("kernel8{}{extra}.img", which.suffix()));
    std::fs::write(&kernel, elf_to_raw_image(&elf)?).map_err(|e| format!("cannot write {}: {e}", kernel.display()))?;
    let elf_out = out.join(format!("kernel{}{extra}.elf", which.suffix()));
    std::fs::write(&elf_out, &elf).map_err(|e| format!("cannot write {}: {e}", elf_out.display()))?;
    Ok((kernel, elf_out))
}

/// Builds everything for `board`; the kernel has the host-link receiver only if `host_link`.
pub fn build_with(board: Board, which: Kernel, host_link: bool) -> Result<Built, String> {
    let out = out_dir(board);
    ensure_dev_key()?;
    let (kernel, elf_out) = build_kernel(board, which, host_link, "")?;
    let initrd = out.join("initrd.img");
    write_initrd(&initrd, &initrd_entries(board)?)?;
    let dtb = match board {
        Board::Rpi3 => {
            let dtb = out.join("rpi3.dtb");
            compile_dts(&paths::rpi3_dts(), &dtb)?;
            Some(dtb)
        }
        Board::Virt => None,
    };
    Ok(Built {
        kernel,
        elf: elf_out,
        initrd,
        dtb,
    })
}
