//! QEMU tests of the kernel alone: boot, fault reports, W^X, timer, threads, scheduling,
//! the monitor without domains, power-off.

use super::BANNER;
use crate::board::Board;
use crate::harness::case::{Expect, ExpectAny, QemuTest, Send, Setup, BOTH, FAULT};

pub fn cases() -> Vec<QemuTest> {
    vec![
        QemuTest {
            name: "boot-to-banner",
            boards: BOTH,
            append: "qvq.test=boot",
            setup: Setup::Standard,
            steps: &[
                BANNER,
                Expect("memory: "),
                Expect("text RX, rodata R, data RW+XN"),
                Expect("keyring: trusts dev (key id "),
                // Both recipes share 8 entries (the fs domain among them). virt adds the
                // virtio-blk driver and two kept versions of it (11); rpi3 the SD driver and
                // two kept versions, the GPIO and RNG drivers and a kept GPIO version (14).
                ExpectAny(&["initrd: 11 entries", "initrd: 14 entries"]),
                Expect("domain console 0.1.0 verified (key id "),
                Expect("domain console started: exports Console"),
                Expect("domain hello 0.1.0 verified (key id "),
                Expect("domain shell 0.1.0 verified (key id "),
                Expect("domain shell started: exports -; imports Console, Kernel, Hello, Relay"),
                Expect("console: handing over to the console domain"),
                Expect("QvQ ready"),
                Expect("selftest boot: PASS"),
            ],
            exit_status: 0,
        },
        QemuTest {
            // QEMU's Cortex-A53 model (both boards) has the SHA-256 instructions; a real
            // Raspberry Pi 3 has not, and uses the portable code the test compares with.
            name: "sha256-instructions-agree-with-the-portable-code",
            boards: BOTH,
            append: "qvq.test=sha256",
            setup: Setup::Standard,
            steps: &[
                Expect("domain shell started"),
                Expect("selftest sha256: PASS (the CPU's SHA-256 instructions: known answers and 636 messages agree with the portable code; so does the CPU's CRC32 instructions"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "kernel-fault-is-reported",
            boards: BOTH,
            append: "qvq.test=fault",
            setup: Setup::Standard,
            steps: &[
                Expect("KERNEL FAULT: data abort (same EL) [EC 0x25], translation fault at level"),
                Expect("on read in thread \"init\""),
                Expect("FAR 0x0000000000000008"),
                Expect("ELR 0x"),
                Expect("x30"),
                Expect("power off (status 3)"),
            ],
            exit_status: FAULT,
        },
        QemuTest {
            name: "stack-overflow-hits-guard-page",
            boards: BOTH,
            append: "qvq.test=stack-overflow",
            setup: Setup::Standard,
            steps: &[
                Expect("KERNEL FAULT: data abort (same EL)"),
                Expect("on write in thread \"init\""),
                Expect("is in the guard page of thread \"init\""),
                Expect("stack overflow"),
            ],
            exit_status: FAULT,
        },
        QemuTest {
            name: "kernel-text-is-not-writable",
            boards: BOTH,
            append: "qvq.test=wx-write",
            setup: Setup::Standard,
            steps: &[Expect("KERNEL FAULT: data abort (same EL) [EC 0x25], permission fault"), Expect("on write")],
            exit_status: FAULT,
        },
        QemuTest {
            name: "kernel-data-is-not-executable",
            boards: BOTH,
            append: "qvq.test=wx-exec",
            setup: Setup::Standard,
            steps: &[Expect("KERNEL FAULT: instruction abort (same EL) [EC 0x21], permission fault")],
            exit_status: FAULT,
        },
        QemuTest {
            name: "timer-ticks",
            boards: BOTH,
            append: "qvq.test=ticks",
            setup: Setup::Standard,
            steps: &[Expect("timer: generic timer"), Expect("100 Hz tick on irq"), Expect("selftest ticks: PASS")],
            exit_status: 0,
        },
        QemuTest {
            name: "two-threads-preempt-each-other",
            boards: BOTH,
            append: "qvq.test=threads",
            setup: Setup::Standard,
            // The order of the rounds varies; the kernel itself checks that they interleave.
            steps: &[
                Expect("selftest threads: start"),
                Expect("round 0"),
                Expect("round 1"),
                Expect("selftest threads: PASS"),
                Expect("alternations"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "priorities-preempt-and-starve-correctly",
            boards: BOTH,
            append: "qvq.test=priorities",
            setup: Setup::Standard,
            steps: &[Expect("selftest priorities: PASS")],
            exit_status: 0,
        },
        QemuTest {
            name: "wait-queue-blocks-and-wakes",
            boards: BOTH,
            append: "qvq.test=waitqueue",
            setup: Setup::Standard,
            steps: &[Expect("selftest waitqueue: PASS")],
            exit_status: 0,
        },
        QemuTest {
            name: "missing-initrd-is-reported",
            boards: BOTH,
            append: "qvq.test=boot",
            setup: Setup::NoInitrd,
            steps: &[
                BANNER,
                Expect("warning: initrd: none (no linux,initrd-start in /chosen)"),
                Expect("selftest boot: PASS"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "unknown-selftest-fails-cleanly",
            boards: &[Board::Virt],
            append: "qvq.test=nonsense",
            setup: Setup::Standard,
            steps: &[Expect("selftest nonsense: FAIL: unknown test; known: boot, fault")],
            exit_status: 1,
        },
        QemuTest {
            name: "kernel-monitor-without-domains",
            boards: BOTH,
            append: "",
            setup: Setup::NoInitrd,
            steps: &[
                Expect("console: input on irq"),
                Expect("qvq> "),
                Send("uptime\r"),
                Expect("up "),
                Expect("qvq> "),
                Send("frobnicate\r"),
                Expect("unknown command 'frobnicate'. commands: help"),
                Expect("qvq> "),
                Send("irqs\r"),
                Expect("controller: "),
                Expect("timer"),
                Expect("console rx"),
                Send("threads now\r"),
                Expect("threads: takes no arguments"),
                Expect("qvq> "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "poweroff-without-semihosting-uses-psci",
            boards: &[Board::Virt],
            append: "",
            setup: Setup::NoSemihosting,
            steps: &[
                Expect("semihosting: not available"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
    ]
}
