//! `cargo xtask dist --board rpi3 --bench --out DIR`: a boot folder whose kernel runs the
//! benchmark at boot and prints the PMU's cycle counts on the console: cycles of a real
//! Cortex-A53 at its clock, next to (never mixed with) the QEMU instruction counts of
//! `cargo xtask bench`. Its kernel is the selftest build (`Kernel::Selftest`, no host-link
//! receiver), chosen by the boot command line in `cmdline.txt` (`qvq.test=bench-hw`:
//! kernel/src/bench_growth.rs, `hardware`); the normal `dist` kernel never has the self
//! tests. Its initrd is the board's plus the growth bench's domains. The block driver's
//! bench is left out: on a board its disk is the boot card.

use crate::board::Board;
use crate::image::{self, Kernel};
use std::path::{Path, PathBuf};

/// The boot command line the firmware reads from `cmdline.txt` into `/chosen/bootargs`.
pub const CMDLINE: &str = "qvq.test=bench-hw";

/// Fills `out` with the bench's boot folder; returns (kernel, initrd) as built in
/// target/qvq/<board>/.
pub fn bench_folder(board: Board, out: &Path) -> Result<(PathBuf, PathBuf), String> {
    let (kernel, _) = image::build_kernel(board, Kernel::Selftest, false, "-dist-bench")?;
    let mut entries = image::initrd_entries(board)?;
    entries.extend(crate::bench_growth::growth_entries()?);
    let initrd = crate::paths::out_dir(board).join("initrd-dist-bench.img");
    image::write_initrd(&initrd, &entries)?;
    crate::dist::fill_folder(out, &kernel, &initrd)?;
    std::fs::write(out.join("cmdline.txt"), format!("{CMDLINE}\n")).map_err(|e| format!("cannot write cmdline.txt: {e}"))?;
    println!(
        "{}: kernel8.img (with the benchmark, run at boot by cmdline.txt: {CMDLINE}), initrd.img (the board's domains and the growth bench's), config.txt, FIRMWARE.txt",
        out.display()
    );
    println!("On the board, the console prints `bench: NAME: N` and `growth: NAME: N` lines in PMU cycles, then `bench-hw: done`.");
    Ok((kernel, initrd))
}
