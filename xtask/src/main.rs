//! `cargo xtask`: builds, packs, boots and tests QvQ. Run `cargo xtask --help`.

mod bench;
mod board;
mod dist;
mod domains;
mod fuzz;
mod harness;
mod image;
mod layers;
mod paths;
mod setup;
mod swap;
mod tests;

use board::Board;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, boot, test and package QvQ", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build target/qvq/<board>/kernel8.img and initrd.img (and rpi3.dtb for rpi3).
    Build {
        #[arg(long, value_enum, default_value = "virt")]
        board: Board,
        /// Build the kernel with its self tests and benchmarks (kernel8-selftest.img).
        #[arg(long)]
        selftest: bool,
    },
    /// Build, then boot QEMU with the console on this terminal (quit: Ctrl-A then X).
    Run {
        #[arg(long, value_enum, default_value = "virt")]
        board: Board,
        /// Boot this initrd instead of the one the build packs.
        #[arg(long)]
        initrd: Option<PathBuf>,
        /// Wait for gdb on localhost:1234 before the first instruction.
        #[arg(long)]
        gdb: bool,
        /// Kernel command line (e.g. `qvq.test=threads`, which needs `--selftest`).
        #[arg(long, default_value = "")]
        append: String,
        /// Build the kernel with its self tests and benchmarks (`selftest` feature), so
        /// `--append qvq.test=NAME` can run one.
        #[arg(long)]
        selftest: bool,
    },
    /// Rebuild and sign domain NAME and hot-swap it into the QEMU that `cargo xtask run`
    /// started (pushed over the host link; the running version keeps serving if refused).
    Swap {
        /// The domain (a crate under domains/).
        name: String,
        #[arg(long, value_enum, default_value = "virt")]
        board: Board,
        /// Sign with this version (default: domain.toml's, or the running one's patch + 1
        /// if domain.toml's is not newer).
        #[arg(long)]
        version: Option<String>,
        /// Allow a version lower than (or equal to) the running one.
        #[arg(long)]
        downgrade: bool,
        /// The host link socket (default: target/qvq/<board>/hostlink.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Host unit tests of every host crate, then QEMU boot tests on both boards.
    Test {
        /// Only run QEMU tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Skip the host unit tests.
        #[arg(long)]
        qemu_only: bool,
    },
    /// Instruction counts of calls, proxies and domain loading (QEMU virt, -icount shift=0).
    Bench,
    /// Fuzz the parsers of untrusted bytes (cargo-fuzz, nightly) from the seed corpora in
    /// fuzz/corpus/, or regenerate those seeds (--seed).
    Fuzz(fuzz::Args),
    /// Make a Raspberry Pi 3 boot folder (kernel8.img, initrd.img, config.txt).
    Dist {
        #[arg(long, value_enum, default_value = "rpi3")]
        board: Board,
        /// Folder to fill (created if missing).
        #[arg(short, long)]
        out: PathBuf,
    },
}

/// The kernel `--selftest` asks for.
fn kernel(selftest: bool) -> image::Kernel {
    if selftest {
        image::Kernel::Selftest
    } else {
        image::Kernel::Release
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { board, selftest } => setup::ensure_build_tools(board).and_then(|_| image::build(board, kernel(selftest))).map(|b| {
            println!("built {}", b.kernel.display());
            println!("built {}", b.initrd.display());
            if let Some(d) = &b.dtb {
                println!("built {}", d.display());
            }
            true
        }),
        Command::Run {
            board,
            initrd,
            gdb,
            append,
            selftest,
        } => setup::ensure_build_tools(board)
            .and_then(|_| setup::ensure_qemu())
            .and_then(|_| image::build(board, kernel(selftest)))
            .and_then(|b| harness::run_interactive(board, &b, initrd, gdb, &append)),
        Command::Swap {
            name,
            board,
            version,
            downgrade,
            socket,
        } => setup::ensure_build_tools(board).and_then(|_| swap::swap(board, &name, version.as_deref(), downgrade, socket.as_deref())),
        Command::Test { filter, qemu_only } => tests::run_all(filter.as_deref(), qemu_only),
        Command::Bench => bench::bench(),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Dist { board, out } => setup::ensure_build_tools(board).and_then(|_| dist::dist(board, &out)).map(|_| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
