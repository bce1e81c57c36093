//! QEMU tests of the block device: the shell's `blk` commands over the `Block` interface,
//! with a fresh default disk image attached (`Setup::FreshDisk`, `crate::disk`) that
//! `DiskHas` reads on the host after QEMU exits. The same cases run on both boards, each
//! with its own driver: virtio-blk on virt (a virtio-mmio transport), sdhci on rpi3 (the
//! image as the SD card of the Arasan SDHCI controller). A case that names the driver is
//! written once, by a macro, for each board's driver name.

use crate::board::Board;
use crate::harness::case::{Check, DiskCheck, DiskCheckedBy, DiskHas, Expect, ExpectWithin, QemuTest, Send, Setup, BOTH, RPI3};

const VIRT: &[Board] = &[Board::Virt];

/// What the fresh image's block 0 starts with (`crate::disk::FIRST_LINE` without its
/// newline, which `blk read` shows as `.`).
const FIRST_LINE: &[u8] = b"QvQ disk: made by cargo xtask";

/// Blocks the kernel's `block-crash-writes` and `block-swap-io` self tests write each round
/// (their `BLOCKS`), from the image's raw area after the FAT partition (their `FIRST_BLOCK`).
const CRASH_TEST_BLOCKS: u64 = 64;
const CRASH_TEST_FIRST: u64 = crate::disk::RAW_FIRST_BLOCK;

/// What the self test writes into block `lba` in round `round` (its `pattern`).
fn crash_test_pattern(round: u32, lba: u64) -> Vec<u8> {
    let tag = format!("qvq block {lba:04} round {round:04};");
    tag.bytes().cycle().take(4096).collect()
}

/// After `block-crash-writes`: every block it wrote holds exactly its last round's pattern
/// (none lost, torn, or written to another block), and the rest of the image is as made
/// (the raw area's next block still zero, the MBR and the FAT partition untouched).
fn every_block_holds_its_last_write(disk: &std::path::Path) -> Result<(), String> {
    let first = crate::disk::read_block(disk, CRASH_TEST_FIRST)?;
    let text = String::from_utf8_lossy(&first[..40]).into_owned();
    let round: u32 = text
        .strip_prefix(&format!("qvq block {CRASH_TEST_FIRST:04} round "))
        .and_then(|r| r.get(..4))
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| format!("block {CRASH_TEST_FIRST} does not hold a round of the test: {text:?}"))?;
    for lba in CRASH_TEST_FIRST..CRASH_TEST_FIRST + CRASH_TEST_BLOCKS {
        if crate::disk::read_block(disk, lba)? != crash_test_pattern(round, lba) {
            return Err(format!("block {lba} does not hold round {round}'s write"));
        }
    }
    let after = CRASH_TEST_FIRST + CRASH_TEST_BLOCKS;
    if crate::disk::read_block(disk, after)?.iter().any(|b| *b != 0) {
        return Err(format!("block {after}, which the test never writes, was written"));
    }
    the_mbr_and_the_fat_partition_are_intact(disk)
}

/// Block 0 is still the image's MBR and the FAT partition passes `fsck.fat -n`.
fn the_mbr_and_the_fat_partition_are_intact(disk: &std::path::Path) -> Result<(), String> {
    crate::disk::check_block(disk, 0, 0, FIRST_LINE)?;
    crate::disk::check_block(disk, 0, 510, &[0x55, 0xaa])?;
    crate::disk::fsck_partition(disk)
}

/// The driver swapped to its kept 0.2.0 and restarted, with `blk` reads between: what was
/// written before is still there. One case per board, with that board's driver.
macro_rules! swapped_and_restarted {
    ($boards:expr, $driver:literal) => {
        QemuTest {
            name: "blk-driver-swapped-and-restarted-keeps-serving",
            boards: $boards,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("blk write 3900 before\r"),
                Expect("blk write 3900: wrote 6 bytes"),
                Expect("qvq$ "),
                Send(concat!("swap ", $driver, "\r")),
                Expect(concat!("swapped ", $driver, " 0.1.0 -> 0.2.0")),
                Expect("qvq$ "),
                Send("blk read 3900\r"),
                Expect("blk read 3900: |before"),
                Expect("qvq$ "),
                Send(concat!("restart ", $driver, "\r")),
                Expect(concat!("domain ", $driver, " restarted")),
                Send("blk read 3900\r"),
                Expect("blk read 3900: |before"),
                Expect("qvq$ "),
                Check(super::no_stranded_rref),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        }
    };
}

pub fn cases() -> Vec<QemuTest> {
    vec![
        swapped_and_restarted!(VIRT, "virtio-blk"),
        swapped_and_restarted!(RPI3, "sdhci"),
        QemuTest {
            name: "block-driver-swapped-100-times-under-reads-and-writes-loses-nothing",
            boards: BOTH,
            append: "qvq.test=block-swap-io",
            setup: Setup::FreshDisk,
            steps: &[
                ExpectWithin("selftest block-swap-io: PASS (100 swaps during", 240),
                DiskCheckedBy(every_block_holds_its_last_write),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "block-driver-crashed-100-times-under-writes-loses-nothing",
            boards: BOTH,
            append: "qvq.test=block-crash-writes qvq.restart_limit=0",
            setup: Setup::FreshDisk,
            steps: &[
                ExpectWithin("selftest block-crash-writes: PASS (100 crashes during", 240),
                DiskCheckedBy(every_block_holds_its_last_write),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "blk-info-shows-the-disk-size",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("blk info\r"),
                Expect("blk info: 4096 blocks of 4096 bytes"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "blk-read-shows-the-images-first-line",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("blk read 0\r"),
                Expect("blk read 0: |QvQ disk: made by cargo xtask..."),
                Expect("0000  51 76 51 20 64 69 73 6b 3a 20 6d 61 64 65 20 62"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "blk-write-reads-back-and-reaches-the-image",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("blk write 3900 hello from qvq\r"),
                Expect("blk write 3900: wrote 14 bytes"),
                Expect("qvq$ "),
                Send("blk read 3900\r"),
                Expect("blk read 3900: |hello from qvq......"),
                Expect("qvq$ "),
                Send("blk flush\r"),
                Expect("blk flush: done"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
                DiskHas(DiskCheck {
                    lba: 3900,
                    offset: 0,
                    bytes: b"hello from qvq\0\0",
                }),
                DiskHas(DiskCheck {
                    lba: 0,
                    offset: 0,
                    bytes: FIRST_LINE,
                }),
                DiskCheckedBy(the_mbr_and_the_fat_partition_are_intact),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "blk-read-past-the-end-is-out-of-range",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("blk read 4096\r"),
                Expect("blk read: block 4096: out of range"),
                Expect("qvq$ "),
                Send("blk info\r"),
                Expect("blk info: 4096 blocks of 4096 bytes"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "blk-bench-counts-its-requests",
            boards: BOTH,
            append: "",
            setup: Setup::FreshDisk,
            steps: &[
                Expect("qvq$ "),
                Send("blk bench 8 4\r"),
                Expect("blk bench: 32 requests (4 rounds of 8 reads)"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        // Without a disk the driver is rejected at boot (its grant finds no block device);
        // the shell starts without Block and says so, and bad arguments get their errors.
        QemuTest {
            name: "blk-without-a-disk-says-the-driver-is-not-running",
            boards: VIRT,
            append: "",
            setup: Setup::Standard,
            steps: &[
                Expect("domain virtio-blk rejected: no virtio-mmio transport has a device of ID 2 behind it"),
                Expect("domain shell starts without Block"),
                Expect("qvq$ "),
                Send("blk info\r"),
                Expect("blk info: no block device on this board (its Block driver is not running)"),
                Expect("qvq$ "),
                Send("blk read x\r"),
                Expect("blk read: bad LBA 'x'"),
                Expect("qvq$ "),
                Send("blk bench 33\r"),
                Expect("blk bench: BATCH must be 1 to 32"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        // rpi3 always has the controller (its driver starts), but without a disk image
        // there is no card: the first call finds none and is refused; the rest of the
        // system carries on.
        QemuTest {
            name: "blk-without-a-disk-says-there-is-no-card",
            boards: RPI3,
            append: "",
            setup: Setup::Standard,
            steps: &[
                Expect("domain sdhci started: exports Block, BlockBench"),
                Expect("qvq$ "),
                Send("blk info\r"),
                Expect("sdhci: cannot start the SD card: no SD card in the slot"),
                Expect("blk info: error: refused"),
                Expect("qvq$ "),
                Send("blk read 0\r"),
                Expect("blk read: error: refused"),
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
