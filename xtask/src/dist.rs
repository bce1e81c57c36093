//! `cargo xtask dist`: a folder to copy onto a Raspberry Pi 3's FAT boot partition
//! (`--out`), or a whole SD-card image (`--image`: an MBR and one FAT32 partition holding
//! the same files and a `domains/` folder of signed domains, for `swap NAME disk:PATH` on
//! the board). Its kernel has no host-link receiver (no thread reads the second serial
//! port, nothing can be pushed) unless `--host-link` asks for it and the board recipe
//! enables it.

use crate::board::Board;
use std::path::Path;
use std::process::Command;

/// The card image: 64 MiB (a power of two, as QEMU wants an SD card's size), one FAT32
/// partition from 1 MiB to the end (type 0x0c, LBA), 512-byte clusters.
pub const CARD_BYTES: u64 = 64 << 20;
pub const CARD_PARTITION_START: u64 = 2048;
pub const CARD_PARTITION_SECTORS: u64 = CARD_BYTES / 512 - CARD_PARTITION_START;
/// The folder on the card's partition that holds the signed domains.
pub const CARD_DOMAINS: &str = "domains";

pub const CONFIG_TXT: &str = "\
# QvQ on a Raspberry Pi 3 (made by `cargo xtask dist`)
arm_64bit=1
enable_uart=1
kernel=kernel8.img
initramfs initrd.img followkernel
# Put the PL011 (UART0), QvQ's console, on GPIO 14/15 instead of Bluetooth.
dtoverlay=disable-bt
";

const FIRMWARE_NOTE: &str = "\
QvQ boot folder for the Raspberry Pi 3
======================================

This folder holds QvQ's files. Add the Raspberry Pi firmware files from the official
firmware repository (raspberrypi/firmware, folder boot/) before booting:

  bootcode.bin          first-stage loader (read by the SoC ROM)
  start.elf             GPU firmware; reads config.txt, loads kernel8.img and initrd.img
  fixup.dat             memory split data matching start.elf
  bcm2710-rpi-3-b.dtb   device tree the firmware hands the kernel in x0
                        (bcm2710-rpi-3-b-plus.dtb for a 3B+)
  overlays/disable-bt.dtbo   needed by `dtoverlay=disable-bt` in config.txt

Then copy everything to the FAT32 boot partition of an SD card, connect a 3.3 V USB
serial adapter to GPIO 14 (TX, pin 8), GPIO 15 (RX, pin 10) and ground (pin 6), and open
it at 115200 8N1 (e.g. `picocom -b 115200 /dev/ttyUSB0`). Power on: QvQ prints its banner.
";

/// Makes the boot folder `out` and/or the card image `image` (at least one).
pub fn dist(board: Board, out: Option<&Path>, image: Option<&Path>, host_link: bool, bench: bool) -> Result<(), String> {
    if board != Board::Rpi3 {
        return Err("dist makes a Raspberry Pi 3 boot folder or card image: use --board rpi3 (virt boots from QEMU: cargo xtask run)".into());
    }
    if bench {
        let out = match (out, image, host_link) {
            (Some(out), None, false) => out,
            _ => return Err("dist --bench makes a boot folder only: give --out FOLDER, without --image or --host-link".into()),
        };
        return crate::dist_bench::bench_folder(board, out).map(|_| ());
    }
    if out.is_none() && image.is_none() {
        return Err("dist needs --out FOLDER (a boot folder) or --image FILE (a whole SD-card image), or both".into());
    }
    if host_link && !crate::swap::recipe_enables_host_link(board)? {
        return Err(format!(
            "--host-link: {} does not enable the host link (top-level `host_link = true`)",
            crate::paths::recipe(board).display()
        ));
    }
    let built = crate::image::build_with(board, crate::image::Kernel::Release, host_link)?;
    let staging = crate::paths::out_dir(board).join("dist-staging");
    let folder = out.unwrap_or(&staging);
    fill_folder(folder, &built.kernel, &built.initrd)?;
    if let Some(out) = out {
        let dir = out.join(CARD_DOMAINS);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let entries = crate::image::initrd_entries(board)?;
        for (name, bytes) in &entries {
            std::fs::write(dir.join(name), bytes).map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
        }
        println!(
            "{}: kernel8.img, initrd.img, config.txt, FIRMWARE.txt, and {} signed domains in {CARD_DOMAINS}/ (for `swap NAME disk:/{CARD_DOMAINS}/FILE`)",
            out.display(),
            entries.len()
        );
    }
    if let Some(image) = image {
        let n = write_card(image, folder, board)?;
        println!(
            "{}: a {} MiB SD-card image (MBR, one FAT32 partition from 1 MiB) with those files and {n} signed domains in /{CARD_DOMAINS}",
            image.display(),
            CARD_BYTES >> 20
        );
        println!(
            "Write it to a card (e.g. `dd if={} of=/dev/sdX bs=4M conv=fsync`), then add the firmware files FIRMWARE.txt names to its partition.",
            image.display()
        );
    }
    if out.is_none() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    match host_link {
        true => println!("The kernel has the host-link receiver: anyone on the board's second serial port can push signed domains."),
        false => println!("The kernel has no host-link receiver (`--host-link` builds one in)."),
    }
    println!("Add the firmware files listed in FIRMWARE.txt before booting.");
    Ok(())
}

/// Writes the boot files into `out`: the kernel, the initrd, config.txt, FIRMWARE.txt.
pub fn fill_folder(out: &Path, kernel: &Path, initrd: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let copy = |from: &Path, name: &str| {
        std::fs::copy(from, out.join(name))
            .map(|_| ())
            .map_err(|e| format!("cannot copy {} into {}: {e}", from.display(), out.display()))
    };
    copy(kernel, "kernel8.img")?;
    copy(initrd, "initrd.img")?;
    let write = |name: &str, text: &str| std::fs::write(out.join(name), text).map_err(|e| format!("cannot write {name}: {e}"));
    write("config.txt", CONFIG_TXT)?;
    write("FIRMWARE.txt", FIRMWARE_NOTE)
}

fn tool(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e} (dosfstools and mtools: `cargo xtask test` installs them)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Writes the card image `image`: an MBR, one FAT32 partition holding the files of `folder`
/// and the board's signed domains in `/domains`. Returns how many domains.
pub fn write_card(image: &Path, folder: &Path, board: Board) -> Result<usize, String> {
    let part = image.with_extension("partition.tmp");
    let _ = std::fs::remove_file(&part);
    let made = (|| {
        tool(
            Command::new("mkfs.fat")
                .args(["-F", "32", "-s", "1", "-n", "QVQBOOT", "-h"])
                .arg(CARD_PARTITION_START.to_string())
                .arg("-C")
                .arg(&part)
                .arg((CARD_PARTITION_SECTORS / 2).to_string()),
        )?;
        for name in ["kernel8.img", "initrd.img", "config.txt", "FIRMWARE.txt"] {
            tool(Command::new("mcopy").arg("-i").arg(&part).arg(folder.join(name)).arg(format!("::/{name}")))?;
        }
        tool(Command::new("mmd").arg("-i").arg(&part).arg(format!("::/{CARD_DOMAINS}")))?;
        let entries = crate::image::initrd_entries(board)?;
        let staging = part.with_extension("domains.tmp");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
        for (name, bytes) in &entries {
            std::fs::write(staging.join(name), bytes).map_err(|e| e.to_string())?;
            tool(
                Command::new("mcopy")
                    .arg("-i")
                    .arg(&part)
                    .arg(staging.join(name))
                    .arg(format!("::/{CARD_DOMAINS}/{name}")),
            )?;
        }
        let _ = std::fs::remove_dir_all(&staging);
        let volume = std::fs::read(&part).map_err(|e| e.to_string())?;
        Ok::<_, String>((volume, entries.len()))
    })();
    let _ = std::fs::remove_file(&part);
    let (volume, n) = made?;
    let mut card = vec![0u8; CARD_BYTES as usize];
    // The card's one partition: FAT32 with LBA addressing (0x0c), bootable.
    card[..512].copy_from_slice(&crate::disk::mbr_with_one_partition(
        &[],
        0x0c,
        true,
        CARD_PARTITION_START,
        CARD_PARTITION_SECTORS,
    ));
    let start = (CARD_PARTITION_START * 512) as usize;
    let end = start
        .checked_add(volume.len())
        .filter(|e| *e <= card.len())
        .ok_or("mkfs.fat made a partition larger than the card")?;
    card[start..end].copy_from_slice(&volume);
    std::fs::write(image, card).map_err(|e| format!("cannot write {}: {e}", image.display()))?;
    Ok(n)
}
