//! `cargo xtask`: builds, packs, boots and tests QvQ. Run `cargo xtask --help`.

mod bench;
mod bench_growth;
mod bench_hostlink;
mod board;
mod disk;
mod dist;
mod dist_bench;
mod domains;
mod fuzz;
mod harness;
mod image;
mod layers;
mod new_domain;
mod paths;
mod plot;
mod safety;
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
        /// Attach this raw disk image (default: target/qvq/<board>/disk.img, made if
        /// missing and never overwritten: 16 MiB, block 0 starting with the line
        /// "QvQ disk: made by cargo xtask", the rest zeros). virt: a virtio-blk device on
        /// virtio-mmio, for the `Block` driver (the shell's `blk` commands); rpi3: the SD
        /// card of the Arasan SDHCI controller, for the sdhci `Block` driver (QEMU wants
        /// an SD card's size to be a power of 2).
        #[arg(long, value_name = "PATH")]
        disk: Option<PathBuf>,
    },
    /// Rebuild and sign domain NAME and hot-swap it into the QEMU that `cargo xtask run`
    /// started (pushed over the host link; the running version keeps serving if refused).
    ///
    /// First it asks the link which version of NAME runs; if none does, it stops before
    /// building anything (a domain boots only from the board recipe, initrd/<board>.toml;
    /// loading a new domain at run time does not exist yet).
    ///
    /// The version signed comes from this machine, never from the link: the highest of
    /// domains/NAME/domain.toml's, the board recipe's further versions of NAME, and the
    /// highest `swap` signed before (recorded in target/qvq/<board>/signed-versions/NAME),
    /// with the patch number raised by one. The version the link reports is shown and
    /// compared: if it is higher than every local one, `swap` stops and asks for
    /// `--version`. There is no downgrade option: the kernel refuses any version not newer
    /// than the running one unless its manifest is signed as a permitted downgrade.
    ///
    /// State: the running version's state goes to the new one when both declare the same
    /// state type, and nothing goes when neither declares any. A swap where one declares
    /// state and the other none, or the types differ, is refused unless --fresh is given.
    #[command(verbatim_doc_comment)]
    Swap {
        /// The domain: a crate under domains/ (or, with --envelope, the name in its manifest).
        name: String,
        /// The board the QEMU of `cargo xtask run` emulates (its recipe, key and socket).
        #[arg(long, value_enum, default_value = "virt")]
        board: Board,
        /// Sign with this version (MAJOR.MINOR.PATCH) instead of the one chosen from local
        /// state; recorded like a chosen one. Not with --envelope.
        #[arg(long, value_name = "X.Y.Z", conflicts_with = "envelope")]
        version: Option<String>,
        /// The host link socket (default: target/qvq/<board>/hostlink.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Push this envelope, signed elsewhere (e.g. `qvq-sign sign` with another key),
        /// instead of building and signing; its manifest must name NAME. The kernel
        /// verifies it and applies its key's policy like any other.
        #[arg(long, value_name = "FILE")]
        envelope: Option<PathBuf>,
        /// Start the new version fresh: the running version's state is discarded, not
        /// handed over (neither version's state hook is called). Needed when one version
        /// declares state and the other none, or their state types differ. Every other
        /// check (signature, key policy, rollback floor, version) stays.
        #[arg(long)]
        fresh: bool,
    },
    /// Make a new domain: domains/NAME (a safe-Rust crate with state hooks from its first
    /// version), added to domains/Cargo.toml and to both board recipes; a new interface it
    /// exports is declared in the IDL (domains/trusted/interfaces/src/idl.rs) with two
    /// methods to start from (`get`, `add`). Nothing is overwritten.
    ///
    /// Example: `cargo xtask new-domain counter --export Counter`, then `cargo xtask run`
    /// and `call Counter add 5` at the qvq$ prompt. domains/README.md, "Write a domain",
    /// goes on from there.
    #[command(verbatim_doc_comment)]
    NewDomain {
        /// The domain's name: a-z, 0-9, - and _, starting with a letter (it names the crate).
        name: String,
        /// An interface it exports (repeatable): one the IDL has (its methods get stubs
        /// that refuse), or a new CamelCase name (declared in the IDL for you).
        #[arg(long = "export", value_name = "IFACE")]
        exports: Vec<String>,
        /// An interface it imports (repeatable); the IDL must have it.
        #[arg(long = "import", value_name = "IFACE")]
        imports: Vec<String>,
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
    /// Check and build domains under the safety rules, without signing: allow-listed
    /// dependencies by id and source, one binary inside its crate, no build scripts or
    /// proc-macros unless allowed, `-F unsafe_code` enforced by the compiler
    /// (domains/README.md, "Build checks").
    CheckDomains {
        /// Domains to check (default: every domain of the workspace).
        names: Vec<String>,
        /// The domain workspace (default: domains/).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// The allow-list (default: the workspace's allowed-crates.toml).
        #[arg(long)]
        allow_list: Option<PathBuf>,
        /// Where to build (default: target/domains/).
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Instruction counts of calls, proxies, domain loading and the block driver (QEMU,
    /// -icount shift=0): virt's virtio-blk, or with --board rpi3 the SD card driver.
    Bench {
        #[arg(long, value_enum, default_value = "virt")]
        board: Board,
        /// Only the growth tables (xtask/src/bench_growth.rs): how each cost grows.
        #[arg(long)]
        growth: bool,
        /// Only the host link's figure (xtask/src/bench_hostlink.rs): a push of the console
        /// driver, its guest instructions per KiB and the host-measured KiB/s.
        #[arg(long)]
        host_link: bool,
    },
    /// Fuzz the parsers of untrusted bytes (cargo-fuzz, nightly) from the seed corpora in
    /// fuzz/corpus/, or regenerate those seeds (--seed).
    Fuzz(fuzz::Args),
    /// Make a Raspberry Pi 3 boot folder (`--out`: kernel8.img, initrd.img, config.txt,
    /// domains/) and/or a whole SD-card image (`--image`). Its kernel has no host-link
    /// receiver unless `--host-link` asks for one.
    Dist {
        #[arg(long, value_enum, default_value = "rpi3")]
        board: Board,
        /// Folder to fill (created if missing) with the files for the card's boot partition.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// A whole SD-card image to write (64 MiB: an MBR and one FAT32 partition holding
        /// the boot files and a `domains/` folder of signed domains); write it to a card
        /// and add the firmware files FIRMWARE.txt names.
        #[arg(long)]
        image: Option<PathBuf>,
        /// Build the kernel with the host-link receiver (the board recipe must enable it):
        /// whoever reaches the board's second serial port can then push signed domains.
        #[arg(long)]
        host_link: bool,
        /// A boot folder (`--out`) whose kernel runs the benchmark at boot and prints the
        /// PMU's cycle counts (cycles of the board's Cortex-A53, not QEMU instructions).
        #[arg(long)]
        bench: bool,
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
    // The domain build runs this binary as its rustc wrapper (safety::wrapper).
    if let Some(code) = safety::wrapper::run_if_wrapper() {
        return code;
    }
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
            disk,
        } => setup::ensure_build_tools(board)
            .and_then(|_| setup::ensure_test_tools())
            .and_then(|_| image::build(board, kernel(selftest)))
            .and_then(|b| harness::run_interactive(board, &b, initrd, gdb, &append, disk)),
        Command::Swap {
            name,
            board,
            version,
            socket,
            envelope,
            fresh,
        } => {
            let options = swap::SwapOptions {
                version: version.as_deref(),
                socket: socket.as_deref(),
                envelope: envelope.as_deref(),
                fresh,
            };
            setup::ensure_build_tools(board).and_then(|_| swap::swap(board, &name, &options, &swap::records_dir(board)))
        }
        Command::NewDomain { name, exports, imports } => new_domain::new_domain(&new_domain::Request { name, exports, imports }).map(|_| true),
        Command::Test { filter, qemu_only } => tests::run_all(filter.as_deref(), qemu_only),
        Command::CheckDomains {
            names,
            workspace,
            allow_list,
            target_dir,
        } => setup::ensure_rust_target().and_then(|_| {
            let ws = safety::Workspace::from_options(workspace, allow_list, target_dir);
            safety::check_domains(&ws, &names, domains::NOT_DOMAINS).map(|_| true)
        }),
        Command::Bench { board, host_link: true, .. } => bench_hostlink::bench_only(board),
        Command::Bench { board, growth: false, .. } => bench::bench(board),
        Command::Bench { board, growth: true, .. } => bench_growth::bench_only(board),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Dist {
            board,
            out,
            image,
            host_link,
            bench,
        } => setup::ensure_build_tools(board)
            .and_then(|_| if image.is_some() { setup::ensure_test_tools() } else { Ok(()) })
            .and_then(|_| dist::dist(board, out.as_deref(), image.as_deref(), host_link, bench))
            .map(|_| true),
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
