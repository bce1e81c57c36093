//! `cargo xtask dist`: a folder to copy onto a Raspberry Pi 3's FAT boot partition. Its
//! kernel has no host-link receiver (no thread reads the second serial port, nothing can be
//! pushed) unless `--host-link` asks for it and the board recipe enables it.

use crate::board::Board;
use std::path::Path;

const CONFIG_TXT: &str = "\
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

pub fn dist(board: Board, out: &Path, host_link: bool) -> Result<(), String> {
    if board != Board::Rpi3 {
        return Err("dist makes a Raspberry Pi 3 boot folder: use --board rpi3 (virt boots from QEMU: cargo xtask run)".into());
    }
    if host_link && !crate::swap::recipe_enables_host_link(board)? {
        return Err(format!(
            "--host-link: {} does not enable the host link (top-level `host_link = true`)",
            crate::paths::recipe(board).display()
        ));
    }
    let built = crate::image::build_with(board, crate::image::Kernel::Release, host_link)?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let copy = |from: &Path, name: &str| {
        std::fs::copy(from, out.join(name))
            .map(|_| ())
            .map_err(|e| format!("cannot copy {} into {}: {e}", from.display(), out.display()))
    };
    copy(&built.kernel, "kernel8.img")?;
    copy(&built.initrd, "initrd.img")?;
    let write = |name: &str, text: &str| std::fs::write(out.join(name), text).map_err(|e| format!("cannot write {name}: {e}"));
    write("config.txt", CONFIG_TXT)?;
    write("FIRMWARE.txt", FIRMWARE_NOTE)?;
    println!("{}: kernel8.img, initrd.img, config.txt, FIRMWARE.txt", out.display());
    match host_link {
        true => println!("The kernel has the host-link receiver: anyone on the board's second serial port can push signed domains."),
        false => println!("The kernel has no host-link receiver (`--host-link` builds one in)."),
    }
    println!("Add the firmware files listed in {} before booting.", out.join("FIRMWARE.txt").display());
    Ok(())
}
