//! QEMU tests of the file system: the fs domain (FAT over `Block`, exporting `Files`) and
//! the shell's `ls`, `cat`, `write`, `rm`, `mkdir`, `df`, on both boards (virtio-blk on
//! virt, sdhci on rpi3), with a fresh default disk image (`Setup::FreshDisk`: an MBR and a
//! FAT16 partition holding README.TXT, `crate::disk`). After each case that writes, the
//! host checks the image with independent tools: `fsck.fat -n` on the partition, and
//! mtools' `mtype` for the files' bytes.

use crate::harness::case::{Check, DiskCheckedBy, Expect, ExpectAll, ExpectWithin, QemuTest, Reboot, Send, Setup, BOTH};
use std::cell::Cell;
use std::path::Path;

/// The partition passes `fsck.fat -n` and README.TXT is still as made.
fn the_volume_is_clean(disk: &Path) -> Result<(), String> {
    crate::disk::fsck_partition(disk)?;
    file_is(disk, "/README.TXT", crate::disk::README.as_bytes())
}

fn file_is(disk: &Path, file: &str, bytes: &[u8]) -> Result<(), String> {
    let found = crate::disk::mtype(disk, file)?;
    if found != bytes {
        return Err(format!(
            "{file} on the image holds {:?}, expected {:?}",
            String::from_utf8_lossy(&found),
            String::from_utf8_lossy(bytes)
        ));
    }
    Ok(())
}

fn note_was_written(disk: &Path) -> Result<(), String> {
    the_volume_is_clean(disk)?;
    file_is(disk, "/NOTE.TXT", b"hello\n")
}

fn files_kept_across_the_reboot(disk: &Path) -> Result<(), String> {
    the_volume_is_clean(disk)?;
    file_is(disk, "/KEEP.TXT", b"kept across a reboot\n")?;
    file_is(disk, "/DOCS/B.TXT", b"second boot\n")
}

/// The `df` lines of the transcript, as (used KiB, free KiB).
fn df_lines(transcript: &str) -> Vec<(u64, u64)> {
    transcript
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("df: ")?;
            let mut n = rest
                .split(" KiB")
                .map(|p| p.trim_start_matches(", ").split(' ').next_back().and_then(|x| x.parse::<u64>().ok()));
            let (_total, used, free) = (n.next()??, n.next()??, n.next()??);
            Some((used, free))
        })
        .collect()
}

/// `df` said less free space after the write than before, and the same as before once the
/// file and directory were removed.
fn df_went_down_and_back(transcript: &str) -> Result<(), String> {
    match df_lines(transcript).as_slice() {
        [before, during, after] if during.1 < before.1 && during.0 > before.0 && after == before => Ok(()),
        lines => Err(format!(
            "df (used, free) readings {lines:?}: expected free space to drop while the files existed and come back"
        )),
    }
}

thread_local! {
    /// Files the `fs-crash-writes` self test acknowledged (its PASS line), for the disk check
    /// that follows in the same case (both steps run on the case's thread).
    static CRASH_TEST_FILES: Cell<Option<u32>> = const { Cell::new(None) };
}

/// The self test's count of acknowledged files, from its PASS line.
fn crash_test_count(transcript: &str) -> Result<(), String> {
    let line = transcript
        .lines()
        .find(|l| l.contains("selftest fs-crash-writes: PASS"))
        .ok_or("no PASS line")?;
    let n: u32 = line
        .split("during the writes of ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no file count in {line:?}"))?;
    CRASH_TEST_FILES.with(|c| c.set(Some(n)));
    Ok(())
}

/// What the self test writes into file `n` (`kernel/src/selftest/fs.rs`, `contents`).
fn crash_test_contents(n: u32) -> Vec<u8> {
    format!("fs crash test file {n:04}\n").bytes().cycle().take(3000).collect()
}

/// After the fs domain crashed during the writes: the volume is clean, and /CRASHED holds
/// exactly the files the self test had acknowledged, each with its bytes.
fn every_acknowledged_file_is_there(disk: &Path) -> Result<(), String> {
    the_volume_is_clean(disk)?;
    let n = CRASH_TEST_FILES.with(Cell::get).ok_or("the self test's file count was not read")?;
    let out = std::process::Command::new("mdir")
        .args(["-b", "-i", &format!("{}@@{}", disk.display(), crate::disk::PARTITION_START * 512), "::/CRASHED"])
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .map_err(|e| format!("cannot run mdir: {e}"))?;
    if !out.status.success() {
        return Err(format!("mdir ::/CRASHED: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().rsplit('/').next().map(str::to_string))
        .filter(|l| !l.is_empty())
        .collect();
    found.sort();
    let expected: Vec<String> = (0..n).map(|i| format!("F{i:04}.TXT")).collect();
    if found != expected {
        return Err(format!(
            "/CRASHED holds {found:?}; the self test acknowledged F0000.TXT to F{:04}.TXT",
            n.saturating_sub(1)
        ));
    }
    for i in 0..n {
        file_is(disk, &format!("/CRASHED/F{i:04}.TXT"), &crash_test_contents(i))?;
    }
    Ok(())
}

/// The card image's partition passes `fsck.fat -n` and its config.txt is what dist wrote.
fn the_card_is_clean(disk: &Path) -> Result<(), String> {
    crate::disk::fsck_volume_at(disk, crate::dist::CARD_PARTITION_START, crate::dist::CARD_PARTITION_SECTORS)?;
    let config = crate::disk::mtype_at(disk, crate::dist::CARD_PARTITION_START, "/config.txt")?;
    if config != crate::dist::CONFIG_TXT.as_bytes() {
        return Err(format!("config.txt on the card holds {:?}", String::from_utf8_lossy(&config)));
    }
    Ok(())
}

pub fn cases() -> Vec<QemuTest> {
    vec![
        // Issue 16: the card `cargo xtask dist --image` makes, as the SD card of an rpi3:
        // its FAT32 partition lists the boot files, and a driver is swapped from it.
        QemuTest {
            name: "fs-dist-card-image-serves-the-boot-files-and-a-swap-from-it",
            boards: crate::harness::case::RPI3,
            append: "",
            setup: Setup::DistCard,
            steps: &[
                Expect("qvq$ "),
                Send("ls\r"),
                Expect("fs: mounted a FAT32 volume at sector 2048"),
                ExpectAll(&["kernel8.img", "initrd.img", "config.txt", "FIRMWARE.txt", "domains/"]),
                Expect("qvq$ "),
                Send("cat /config.txt\r"),
                Expect("arm_64bit=1"),
                Expect("qvq$ "),
                Send("swap console disk:/domains/console-0.2.0.qvd\r"),
                Expect("swapped console 0.1.0 -> 0.2.0"),
                Expect("qvq$ "),
                Send("domains\r"),
                Expect("console      0.2.0    running"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                DiskCheckedBy(the_card_is_clean),
            ],
            exit_status: 0,
        },
        // Issue 17: the boot folder of `cargo xtask dist --bench` boots (QEMU raspi3b, no
        // -icount) and prints the benchmark's PMU counts and the growth figures.
        QemuTest {
            name: "dist-bench-folder-boots-and-prints-cycle-counts",
            boards: crate::harness::case::RPI3,
            append: "",
            setup: Setup::DistBench,
            steps: &[
                Expect("command line: qvq.test=bench-hw"),
                Expect("bench-hw: the figures below are PMU cycles (not QEMU instructions) at a CPU clock of "),
                Expect("bench: cross-domain call through the proxy, no arguments: "),
                Expect("bench: swap window (slots paused to callers released): "),
                Expect("growth: proxy call, 6 args: "),
                Expect("growth: swap window, 65536 state bytes: "),
                Expect("growth: verify, 1024 KiB appended: "),
                Expect("bench-hw: done"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        // Issue 16: a hot swap from an envelope on the disk, verified as an initrd entry is.
        QemuTest {
            name: "fs-swap-from-the-disk-serves-and-bad-envelopes-are-refused",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("ls /DOMAINS\r"),
                Expect("hello-0.2.0.qvd"),
                Expect("qvq$ "),
                // Not a signed envelope: refused with the verifier's reason, hello serves on.
                Send("write /BAD.QVD not an envelope\r"),
                Expect("qvq$ "),
                Send("swap hello disk:/BAD.QVD\r"),
                Expect("swap hello refused: disk:/BAD.QVD: "),
                Expect("qvq$ "),
                Send("hello ping 1\r"),
                Expect("hello ping 1: 2"),
                Expect("qvq$ "),
                // The running version itself: refused by the same rule as from the initrd.
                Send("swap hello disk:/DOMAINS/hello.qvd\r"),
                Expect("swap hello refused: disk:/DOMAINS/hello.qvd is version 0.1.0, the version already running"),
                Expect("qvq$ "),
                // Another domain's envelope under hello's name.
                Send("swap hello disk:/DOMAINS/relay.qvd\r"),
                Expect("swap hello refused: disk:/DOMAINS/relay.qvd is domain \"relay\", not \"hello\""),
                Expect("qvq$ "),
                Send("swap hello disk:/NOSUCH.QVD\r"),
                Expect("swap disk:/NOSUCH.QVD: no such file or directory"),
                Expect("qvq$ "),
                Send("swap hello disk:/DOMAINS/hello-0.2.0.qvd\r"),
                Expect("swapped hello 0.1.0 -> 0.2.0"),
                Expect("qvq$ "),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Expect("qvq$ "),
                Send("domains\r"),
                Expect("hello        0.2.0    running"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                DiskCheckedBy(the_volume_is_clean),
            ],
            exit_status: 0,
        },
        // Issue 16: a domain that is not running, started from its envelope on the disk.
        QemuTest {
            name: "fs-load-from-the-disk-starts-a-domain-that-was-not-running",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDiskWithout("relay"),
            steps: &[
                Expect("qvq$ "),
                Send("load disk:/DOMAINS/hello-0.2.0.qvd\r"),
                Expect("load disk:/DOMAINS/hello-0.2.0.qvd refused: hello 0.2.0: a domain of that name is running already (use `swap hello disk:/DOMAINS/hello-0.2.0.qvd`)"),
                Expect("qvq$ "),
                Send("load /DOMAINS/relay.qvd\r"),
                Expect("usage: load disk:PATH"),
                Expect("qvq$ "),
                Send("load disk:/DOMAINS/relay.qvd\r"),
                Expect("loaded relay 0.1.0 from disk:/DOMAINS/relay.qvd"),
                Expect("qvq$ "),
                Send("domains\r"),
                Expect("relay        0.1.0    running"),
                Expect("qvq$ "),
                Send("load disk:/DOMAINS/relay.qvd\r"),
                Expect("a domain of that name is running already"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "fs-ls-shows-the-readme-of-the-default-disk",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("ls\r"),
                Expect("fs: mounted a FAT16 volume at sector 2048"),
                Expect("README.TXT"),
                Expect("DOMAINS/"),
                Expect("ls /: 2 entries"),
                Expect("qvq$ "),
                Send("cat /README.TXT\r"),
                Expect("This is QvQ's disk image, made by cargo xtask"),
                Expect("for the block tests."),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                DiskCheckedBy(the_volume_is_clean),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "fs-write-then-cat-reads-it-back",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("write /NOTE.TXT hello\r"),
                Expect("write /NOTE.TXT: wrote 6 bytes"),
                Expect("qvq$ "),
                Send("cat /NOTE.TXT\r"),
                Expect("\nhello\n"),
                Expect("qvq$ "),
                Send("ls /NOTE.TXT\r"),
                Expect("       6  NOTE.TXT"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                DiskCheckedBy(note_was_written),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "fs-mkdir-nested-write-rm-and-df",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("df\r"),
                Expect("KiB free"),
                Expect("qvq$ "),
                Send("mkdir /DOCS\r"),
                Expect("mkdir /DOCS: made"),
                Expect("qvq$ "),
                Send("write /DOCS/A.TXT nested and written\r"),
                Expect("write /DOCS/A.TXT: wrote 19 bytes"),
                Expect("qvq$ "),
                Send("ls /DOCS\r"),
                Expect("      19  A.TXT"),
                Expect("ls /DOCS: 1 entries"),
                Expect("qvq$ "),
                Send("df\r"),
                Expect("KiB free"),
                Expect("qvq$ "),
                Send("rm /DOCS\r"),
                Expect("rm /DOCS: the directory is not empty"),
                Expect("qvq$ "),
                Send("rm /DOCS/A.TXT\r"),
                Expect("rm /DOCS/A.TXT: removed"),
                Expect("qvq$ "),
                Send("rm /DOCS\r"),
                Expect("rm /DOCS: removed"),
                Expect("qvq$ "),
                Send("ls /DOCS\r"),
                Expect("ls /DOCS: no such file or directory"),
                Expect("qvq$ "),
                Send("df\r"),
                Expect("KiB free"),
                Expect("qvq$ "),
                Check(df_went_down_and_back),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                DiskCheckedBy(the_volume_is_clean),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "fs-hostile-paths-are-refused-with-their-reasons",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("cat /../x\r"),
                Expect("cat /../x: bad path: `.` and `..` are not allowed: paths start at the volume's root"),
                Expect("qvq$ "),
                Send("write /ABCDEFGHIJKLMNOP.TXT x\r"),
                Expect("write /ABCDEFGHIJKLMNOP.TXT: new names must be 8.3"),
                Expect("qvq$ "),
                Send("write /a:b x\r"),
                Expect("write /a:b: bad path: a control character or one of"),
                Expect("qvq$ "),
                Send("cat //README.TXT\r"),
                Expect("cat //README.TXT: bad path: an empty part"),
                Expect("qvq$ "),
                Send("cat /NOPE.TXT\r"),
                Expect("cat /NOPE.TXT: no such file or directory"),
                Expect("qvq$ "),
                Send("cat /\r"),
                Expect("cat /: it is a directory"),
                Expect("qvq$ "),
                Send("ls /README.TXT/X\r"),
                Expect("ls /README.TXT/X: a part of the path is a file, not a directory"),
                Expect("qvq$ "),
                Send("mkdir /README.TXT\r"),
                Expect("mkdir /README.TXT: it exists already"),
                Expect("qvq$ "),
                Send("rm /\r"),
                Expect("rm /: not possible on the root directory"),
                Expect("qvq$ "),
                Send("ls\r"),
                Expect("ls /: 2 entries"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                DiskCheckedBy(the_volume_is_clean),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "fs-files-persist-across-a-reboot",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("write /KEEP.TXT kept across a reboot\r"),
                Expect("write /KEEP.TXT: wrote 21 bytes"),
                Expect("qvq$ "),
                Send("mkdir /DOCS\r"),
                Expect("mkdir /DOCS: made"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                Reboot,
                Expect("qvq$ "),
                Send("cat /KEEP.TXT\r"),
                Expect("\nkept across a reboot\n"),
                Expect("qvq$ "),
                Send("write /DOCS/B.TXT second boot\r"),
                Expect("write /DOCS/B.TXT: wrote 12 bytes"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                DiskCheckedBy(files_kept_across_the_reboot),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "fs-crashed-30-times-during-writes-loses-no-acknowledged-file",
            boards: BOTH,
            append: "qvq.test=fs-crash-writes qvq.restart_limit=0",
            setup: Setup::FreshDisk,
            steps: &[
                ExpectWithin("selftest fs-crash-writes: PASS (30 crashes during the writes of", 240),
                Expect("\n"),
                Check(crash_test_count),
                DiskCheckedBy(every_acknowledged_file_is_there),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "fs-crash-fs-from-the-shell-then-it-mounts-again",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("write /NOTE.TXT hello\r"),
                Expect("write /NOTE.TXT: wrote 6 bytes"),
                Expect("qvq$ "),
                Send("crash fs\r"),
                // In either order: the restart can be logged before the shell's answer,
                // and the prompt before the restart's log line.
                ExpectAll(&["crash: fs crashed", "domain fs restarted"]),
                Send("cat /NOTE.TXT\r"),
                Expect("fs: mounted a FAT16 volume"),
                Expect("\nhello\n"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                DiskCheckedBy(note_was_written),
            ],
            exit_status: 0,
        },
        // A corrupted volume is the fs domain's error for its callers, and nothing else's:
        // the boot sector overwritten through `blk`, the fs domain restarted (it mounts
        // again), then `ls` is told what is wrong and the rest of the system carries on.
        QemuTest {
            name: "fs-corrupted-volume-is-an-error-for-the-caller-only",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("blk write 256 not a boot sector\r"),
                Expect("blk write 256: wrote 17 bytes"),
                Expect("qvq$ "),
                Send("ls\r"),
                Expect("fs: cannot mount: the volume is corrupt: the boot sector has no signature (0x55 0xaa)"),
                Expect("ls /: the volume is corrupt: the boot sector has no signature (0x55 0xaa)"),
                Expect("qvq$ "),
                Send("df\r"),
                Expect("df: the volume is corrupt: the boot sector has no signature (0x55 0xaa)"),
                Expect("qvq$ "),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "fs-without-a-disk-says-there-is-none",
            boards: BOTH,
            append: "",
            setup: Setup::Standard,
            steps: &[
                Expect("qvq$ "),
                Send("ls\r"),
                Expect("ls /: no disk: "),
                Expect("qvq$ "),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
    ]
}
