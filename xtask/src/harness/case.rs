//! The QEMU test machinery: a test case is a board setup plus a console conversation
//! (`Step`s); `run_qemu_test` boots it under the harness and holds the conversation. The
//! cases themselves are in `crate::tests`.

use super::{dtb_variant, fixtures, Boot, Session};
use crate::board::Board;
use crate::image::{self, Built};
use crate::paths::{self, out_dir};
use crate::swap::Fault;
use std::time::Duration;

/// One step of a console conversation.
#[derive(Clone, Copy)]
pub enum Step {
    /// Wait for this text (after the previous match).
    Expect(&'static str),
    /// Type this.
    Send(&'static str),
    /// Wait for all of these, in any order (output of different threads).
    ExpectAll(&'static [&'static str]),
    /// Wait for this text for up to this many seconds (a long-running command).
    ExpectWithin(&'static str, u64),
    /// Check the transcript so far.
    Check(fn(&str) -> Result<(), String>),
    /// Wait for any one of these (after the previous match): outcomes that are all fine.
    ExpectAny(&'static [&'static str]),
    /// Push a domain over the host link (the setup must provide one).
    Push(PushStep),
    /// What `cargo xtask swap NAME` does: rebuild, sign newer than anything signed here, push,
    /// swapped. Its record of signed versions is the test's own (`test_records`).
    SwapCommand(&'static str),
    /// A conversation over the host link (frames the `Push` step never sends): given the
    /// board and the link's socket.
    Link(fn(Board, &std::path::Path) -> Result<(), String>),
    /// Waits for QEMU to exit, then checks a block of the disk image on the host (the
    /// setup must attach one: `Setup::FreshDisk`).
    DiskHas(DiskCheck),
    /// After QEMU exits (status as expected), `f` checks the whole disk image.
    DiskCheckedBy(fn(&std::path::Path) -> Result<(), String>),
    /// Waits for QEMU to exit (status as expected), then boots the same setup again, on the
    /// same disk image: what the first run wrote must be there for the second.
    Reboot,
}
pub use Step::{Check, DiskCheckedBy, DiskHas, Expect, ExpectAll, ExpectAny, ExpectWithin, Link, Push, Reboot, Send, SwapCommand};

/// What `DiskHas` checks: block `lba` (4096 bytes) of the image holds `bytes` from byte
/// `offset` of the block on.
#[derive(Clone, Copy)]
pub struct DiskCheck {
    pub lba: u64,
    pub offset: usize,
    pub bytes: &'static [u8],
}

/// One push: `domain` signed as `version` (its signature broken if `tamper`), sent with
/// `fault`; the kernel's answer (or the link's error) must contain `answer`, and the new
/// version must (or must not) be swapped in.
#[derive(Clone, Copy)]
pub struct PushStep {
    pub domain: &'static str,
    pub version: &'static str,
    pub tamper: bool,
    pub fault: Fault,
    pub swapped: bool,
    pub answer: &'static str,
}

/// How a test changes the standard boot.
#[derive(Clone, Copy)]
pub enum Setup {
    Standard,
    NoInitrd,
    /// QEMU without `-semihosting`: power-off must go through PSCI.
    NoSemihosting,
    /// The standard initrd with one bit of the sample envelope's manifest flipped.
    TamperedInitrd,
    /// The standard initrd, with the hello domain's restart policy set to `fatal`.
    FatalHello,
    /// The standard initrd plus unsigned, tampered, wrong-key, revoked, malformed and
    /// over-privileged domains.
    RejectionInitrd,
    /// rpi3: no `-dtb`, so the kernel gets an ATAG pointer instead of a device tree.
    NoDtb,
    /// rpi3: the project DTS with these changes applied.
    DtsChanges(&'static str),
    /// The standard initrd plus versions of hello a swap must refuse.
    SwapFixtures,
    /// The standard boot with the host link connected to a socket.
    HostLink,
    /// The standard initrd plus domains the trust policy refuses, each for its own rule.
    PolicyInitrd,
    /// The standard initrd plus a second domain that exports `Console`.
    SecondExporter,
    /// The same with this much RAM (QEMU `-m`, virt only: raspi3b's is fixed).
    HostLinkRam(&'static str),
    /// The host link's socket connected to a kernel built without the receiver (what
    /// `cargo xtask dist` makes by default), as `kernel8-selftest-nohostlink.img`.
    NoReceiver,
    /// The standard first versions with `hello` replaced by `attack-admin` (imports
    /// `Kernel`), signed as `hello` by the limited test key.
    LimitedKeyImportsKernel,
    /// The standard initrd plus attack domains (`crate::tests::attacks`).
    Attack(&'static [fixtures::Attacker]),
    /// The standard boot with a fresh default disk image attached (`crate::disk`: 16 MiB,
    /// an MBR starting with `disk::FIRST_LINE`, a FAT16 partition holding README.TXT, a raw
    /// area from `disk::RAW_FIRST_BLOCK`), rewritten for each case as
    /// `target/qvq/<board>/test-disk.img`, with the board's signed domains in `/DOMAINS`
    /// (`disk::put_domains`). `DiskHas` steps read it after QEMU exits.
    FreshDisk,
    /// `FreshDisk`, booted from an initrd without domain `name` (every version of it), which
    /// is on the disk still: for `load disk:PATH`.
    FreshDiskWithout(&'static str),
    /// The card image `cargo xtask dist --image` writes (`dist::write_card`: an MBR, one
    /// FAT32 partition with the boot files and `/domains`), made from this build's kernel
    /// and initrd, attached as the disk: the real-Pi workflow in QEMU.
    DistCard,
    /// `Setup::Attack`'s initrd without domain `name` (every version of it), with
    /// `FreshDisk`'s disk (the board's signed domains in `/DOMAINS`, `name`'s included): for
    /// attackers that import `Kernel` and `Files` and hand the kernel envelopes.
    AttackWithDiskWithout(&'static [fixtures::Attacker], &'static str),
    /// The boot folder `cargo xtask dist --bench` makes (`dist_bench::bench_folder`): its
    /// kernel and initrd, with its cmdline.txt as the command line (the Pi firmware's
    /// job), without `-icount` (the counts are whatever QEMU's cycle counter gives).
    DistBench,
}

/// One QEMU boot test: boot `setup` with `append` on each of `boards`, hold the console
/// conversation `steps`, and expect QEMU to exit with `exit_status`.
pub struct QemuTest {
    pub name: &'static str,
    pub boards: &'static [Board],
    pub append: &'static str,
    pub setup: Setup,
    pub steps: &'static [Step],
    pub exit_status: i32,
}

pub const BOTH: &[Board] = &[Board::Virt, Board::Rpi3];
pub const RPI3: &[Board] = &[Board::Rpi3];
/// Exit status of a kernel fault report (kernel/src/exception.rs).
pub const FAULT: i32 = 3;

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn run_qemu_test(t: &QemuTest, board: Board, built: &Built) -> Result<(), String> {
    let mut boot = Boot::from_build(board, built);
    boot.append = t.append.to_string();
    match t.setup {
        Setup::Standard => {}
        Setup::NoInitrd => boot.initrd = None,
        Setup::NoDtb => boot.dtb = None,
        Setup::NoSemihosting => boot.semihosting = false,
        Setup::FatalHello => {
            let path = out_dir(board).join("fatal-initrd.img");
            image::write_initrd(&path, &fixtures::fatal_hello_entries(board)?)?;
            boot.initrd = Some(path);
        }
        Setup::RejectionInitrd => {
            let path = out_dir(board).join("rejection-initrd.img");
            image::write_initrd(&path, &fixtures::rejection_entries(board)?)?;
            boot.initrd = Some(path);
        }
        Setup::TamperedInitrd => {
            let mut entries = fixtures::first_versions(board, image::initrd_entries(board)?)?;
            entries[0].1[84] ^= 0x01; // first manifest byte: the signature no longer matches
            let path = out_dir(board).join("tampered-initrd.img");
            image::write_initrd(&path, &entries)?;
            boot.initrd = Some(path);
        }
        Setup::SwapFixtures => {
            let path = out_dir(board).join("swap-fixtures-initrd.img");
            image::write_initrd(&path, &fixtures::swap_fixture_entries(board)?)?;
            boot.initrd = Some(path);
        }
        Setup::PolicyInitrd => {
            let path = out_dir(board).join("policy-initrd.img");
            image::write_initrd(&path, &fixtures::policy_entries(board)?)?;
            boot.initrd = Some(path);
        }
        Setup::SecondExporter => {
            let path = out_dir(board).join("second-exporter-initrd.img");
            image::write_initrd(&path, &fixtures::second_exporter_entries(board)?)?;
            boot.initrd = Some(path);
        }
        Setup::LimitedKeyImportsKernel => {
            let path = out_dir(board).join("limited-key-imports-kernel-initrd.img");
            image::write_initrd(&path, &fixtures::limited_key_imports_kernel_entries(board)?)?;
            boot.initrd = Some(path);
        }
        Setup::Attack(attackers) => {
            let path = out_dir(board).join(format!("attack-{}-initrd.img", t.name));
            image::write_initrd(&path, &fixtures::attack_entries(board, attackers)?)?;
            boot.initrd = Some(path);
        }
        Setup::NoReceiver => {
            boot.kernel = image::build_kernel(board, image::Kernel::Selftest, false, "-nohostlink")?.0;
            boot.host_link = Some(out_dir(board).join("test-hostlink.sock"));
        }
        Setup::HostLink | Setup::HostLinkRam(_) => {
            boot.host_link = Some(out_dir(board).join("test-hostlink.sock"));
            if let Setup::HostLinkRam(ram) = t.setup {
                boot.extra.extend(["-m".to_string(), ram.to_string()]); // the last -m wins
            }
            // Each test starts with no versions signed by `swap`, so its numbers are its own.
            let records = test_records(board);
            if records.exists() {
                std::fs::remove_dir_all(&records).map_err(|e| format!("cannot clear {}: {e}", records.display()))?;
            }
        }
        Setup::FreshDisk => {
            let path = crate::disk::test_path(board);
            crate::disk::make_fresh(&path)?;
            crate::disk::put_domains(&path, board)?;
            boot.disk = Some(path);
        }
        Setup::DistBench => {
            let folder = out_dir(board).join("test-dist-bench");
            crate::dist_bench::bench_folder(board, &folder)?;
            boot.kernel = folder.join("kernel8.img");
            boot.initrd = Some(folder.join("initrd.img"));
            let cmdline = std::fs::read_to_string(folder.join("cmdline.txt")).map_err(|e| format!("cmdline.txt: {e}"))?;
            boot.append = cmdline.trim().to_string();
        }
        Setup::DistCard => {
            let folder = out_dir(board).join("test-card-files");
            let initrd = boot.initrd.clone().ok_or("DistCard: the boot has no initrd")?;
            crate::dist::fill_folder(&folder, &boot.kernel, &initrd)?;
            let card = out_dir(board).join("test-card.img");
            crate::dist::write_card(&card, &folder, board)?;
            boot.disk = Some(card);
        }
        Setup::FreshDiskWithout(_) | Setup::AttackWithDiskWithout(..) => {
            let (attackers, name) = match t.setup {
                Setup::AttackWithDiskWithout(a, name) => (a, name),
                Setup::FreshDiskWithout(name) => (&[][..], name),
                _ => unreachable!(),
            };
            let path = crate::disk::test_path(board);
            crate::disk::make_fresh(&path)?;
            crate::disk::put_domains(&path, board)?;
            boot.disk = Some(path);
            let mut entries = if attackers.is_empty() {
                image::initrd_entries(board)?
            } else {
                fixtures::attack_entries(board, attackers)?
            };
            // `NAME.qvd` and its kept versions `NAME-VERSION.qvd`.
            let versioned = format!("{name}-");
            let of_name = |e: &str| e == format!("{name}.qvd") || e.strip_prefix(&versioned).is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()));
            entries.retain(|e| !of_name(&e.0));
            let initrd = out_dir(board).join(format!("without-{name}-{}-initrd.img", t.name));
            image::write_initrd(&initrd, &entries)?;
            boot.initrd = Some(initrd);
        }
        Setup::DtsChanges(changes) => {
            let dir = out_dir(board).join("test-dtbs");
            boot.dtb = Some(dtb_variant(&paths::rpi3_dts(), changes, &dir, t.name)?);
            boot.initrd = None;
        }
    }
    let mut s = Session::start(&boot)?;
    let result = (|| {
        for step in t.steps {
            match *step {
                Expect(p) => s.expect(p, TIMEOUT)?,
                ExpectAll(ps) => s.expect_all(ps, TIMEOUT)?,
                ExpectAny(ps) => expect_any(&mut s, ps, TIMEOUT)?,
                Send(text) => s.send(text)?,
                ExpectWithin(p, secs) => s.expect(p, Duration::from_secs(secs))?,
                Check(f) => f(&s.transcript())?,
                Push(p) => push_step(&p, board, boot.host_link.as_deref().ok_or("this setup has no host link")?)?,
                SwapCommand(name) => {
                    let socket = boot.host_link.as_deref().ok_or("this setup has no host link")?;
                    let options = crate::swap::SwapOptions {
                        socket: Some(socket),
                        ..Default::default()
                    };
                    if !crate::swap::swap(board, name, &options, &test_records(board))? {
                        return Err(format!("`cargo xtask swap {name}` did not swap"));
                    }
                }
                Link(conversation) => conversation(board, boot.host_link.as_deref().ok_or("this setup has no host link")?)?,
                DiskHas(c) => {
                    let disk = boot.disk.as_deref().ok_or("this setup attaches no disk")?;
                    // QEMU has written what the guest's finished requests wrote (no cache of
                    // its own over a raw file), but only its exit is sure to end all writes.
                    let status = s.wait_exit(TIMEOUT)?;
                    if status != t.exit_status {
                        return Err(format!("QEMU exit status {status}, expected {}", t.exit_status));
                    }
                    crate::disk::check_block(disk, c.lba, c.offset, c.bytes)?;
                }
                DiskCheckedBy(f) => {
                    let disk = boot.disk.as_deref().ok_or("this setup attaches no disk")?;
                    let status = s.wait_exit(TIMEOUT)?;
                    if status != t.exit_status {
                        return Err(format!("QEMU exit status {status}, expected {}", t.exit_status));
                    }
                    f(disk)?;
                }
                Reboot => {
                    let status = s.wait_exit(TIMEOUT)?;
                    if status != t.exit_status {
                        return Err(format!("QEMU exit status {status} before the reboot, expected {}", t.exit_status));
                    }
                    s = Session::start(&boot)?;
                }
            }
        }
        let status = s.wait_exit(TIMEOUT)?;
        if status != t.exit_status {
            return Err(format!("QEMU exit status {status}, expected {}", t.exit_status));
        }
        Ok(())
    })();
    result.map_err(|e| {
        format!(
            "{e}\n--- command ---\n{}\n--- console transcript ---\n{}--- end of transcript ---",
            s.command_line,
            s.transcript()
        )
    })
}

/// Where the tests' `swap` records the versions it signed (not the user's record).
fn test_records(board: Board) -> std::path::PathBuf {
    out_dir(board).join("test-signed-versions")
}

fn push_step(p: &PushStep, board: Board, socket: &std::path::Path) -> Result<(), String> {
    let (mut envelope, signed) = crate::swap::signed_domain(board, p.domain, Some(p.version))?;
    let signed = qvq_sign::loader::manifest::Version::parse(&signed).ok_or_else(|| format!("signed version {signed:?}"))?;
    crate::swap::record_signed(&test_records(board), p.domain, &signed)?;
    if p.tamper {
        let last = envelope.len() - 1;
        envelope[last] ^= 0x01;
    }
    let mut link = crate::swap::Link::connect(socket, Duration::from_secs(10))?;
    let outcome = link.push(p.domain, &envelope, 0, p.fault);
    let (swapped, answer) = match outcome {
        Ok(x) => x,
        Err(e) => (false, e),
    };
    if swapped != p.swapped || !answer.contains(p.answer) {
        return Err(format!(
            "push of {} {}: expected swapped={} and {:?}, got swapped={swapped}: {answer}",
            p.domain, p.version, p.swapped, p.answer
        ));
    }
    Ok(())
}

/// Waits until one of `patterns` appears after the previous match; continues after the
/// earliest one found.
fn expect_any(s: &mut Session, patterns: &[&str], timeout: Duration) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    let (lock, cond) = &*s.output;
    let mut out = lock.lock().unwrap();
    loop {
        let rest = &out.text[s.cursor..];
        if let Some(end) = patterns.iter().filter_map(|p| rest.find(p).map(|at| at + p.len())).min() {
            s.cursor += end;
            return Ok(());
        }
        let now = std::time::Instant::now();
        if out.closed || now >= deadline {
            let why = if out.closed { "QEMU exited" } else { "timed out" };
            return Err(format!("{why} waiting for any of {patterns:?}"));
        }
        out = cond.wait_timeout(out, deadline - now).unwrap().0;
    }
}
