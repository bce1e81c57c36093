//! `cargo xtask test`: host unit tests, then QEMU boot tests on both boards. The last line
//! printed is `N passed, N failed`.

use crate::harness::{dtb_variant, Boot, Session};
use crate::image::{self, Built};
use crate::swap::Fault;
use crate::Board;
use std::process::Command;
use std::time::{Duration, Instant};

/// One step of a console conversation.
#[derive(Clone, Copy)]
enum Step {
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
    /// Push a domain over the host link (the setup must provide one).
    Push(PushStep),
    /// What `cargo xtask swap NAME` does: rebuild, sign newer than what runs, push, swapped.
    SwapCommand(&'static str),
}
use Step::{Check, Expect, ExpectAll, ExpectWithin, Push, Send, SwapCommand};

/// One push: `domain` signed as `version` (its signature broken if `tamper`), sent with
/// `fault`; the kernel's answer (or the link's error) must contain `answer`, and the new
/// version must (or must not) be swapped in.
#[derive(Clone, Copy)]
struct PushStep {
    domain: &'static str,
    version: &'static str,
    tamper: bool,
    fault: Fault,
    swapped: bool,
    answer: &'static str,
}

/// How a test changes the standard boot.
#[derive(Clone, Copy)]
enum Setup {
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
}

struct QemuTest {
    name: &'static str,
    boards: &'static [Board],
    append: &'static str,
    setup: Setup,
    steps: &'static [Step],
    exit_status: i32,
}

const BOTH: &[Board] = &[Board::Virt, Board::Rpi3];
const RPI3: &[Board] = &[Board::Rpi3];
/// Exit status of a kernel fault report (kernel/src/exception.rs).
const FAULT: i32 = 3;

const BANNER: Step = Expect("QvQ 0.1.0 - a language-isolated microkernel for AArch64");

fn qemu_tests() -> Vec<QemuTest> {
    vec![
        QemuTest {
            name: "swap-from-the-initrd-keeps-state-and-serves",
            boards: BOTH,
            append: "",
            setup: Setup::Standard,
            steps: &[
                Expect("initrd: hello-0.2.0.qvd is hello 0.2.0, kept for swapping in"),
                Expect("qvq$ "),
                Send("hello ping 1\r"),
                Expect("hello ping 1: 2"),
                Send("hello ping 2\r"),
                Expect("hello ping 2: 3"),
                Send("hello served\r"),
                Expect("hello served: 2 pings, answered by 0.1.0"),
                Send("swap hello\r"),
                Expect("swapped hello 0.1.0 -> 0.2.0 (hello-0.2.0.qvd, key id"),
                Expect("qvq$ "),
                Send("hello served\r"),
                Expect("hello served: 2 pings, answered by 0.2.0"),
                Send("versions hello\r"),
                Expect("hello: running 0.2.0 from hello-0.2.0.qvd"),
                Expect("available: hello.qvd 0.1.0"),
                Expect("available: hello-0.2.0.qvd 0.2.0 (running)"),
                Expect("retired: 0.1.0 from hello.qvd at"),
                Expect("qvq$ "),
                Send("swap hello\r"),
                Expect("swap hello refused: the initrd holds no version of hello newer than 0.2.0"),
                Send("swap hello hello.qvd\r"),
                Expect("swap hello refused: hello.qvd is version 0.1.0, older than the running 0.2.0 (a downgrade needs the explicit flag)"),
                Send("swap hello 0.1.0 --downgrade\r"),
                Expect("swapped hello 0.2.0 -> 0.1.0 (hello.qvd"),
                Send("hello ping 3\r"),
                Expect("hello ping 3: 4"),
                Send("hello served\r"),
                Expect("hello served: 3 pings, answered by 0.1.0"),
                Send("relay fault\r"),
                Expect("relay: hello crashed inside relay's call; relay answered normally"),
                // A call that stays in flight past the drain limit: the swap is refused and
                // the call still completes on the old version; afterwards the swap goes through.
                Send("hello nap 1500\r"),
                Expect("qvq$ "),
                Send("swap hello\r"),
                Expect("swap hello refused: 1 calls into the running version did not return within 500 ms"),
                Expect("hello nap 1500: done"),
                Send("swap hello\r"),
                Expect("swapped hello 0.1.0 -> 0.2.0"),
                Send("swap nosuch\r"),
                Expect("swap nosuch refused: no running domain is named \"nosuch\""),
                Send("swap\r"),
                Expect("usage: swap NAME [ENTRY] [--downgrade]"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "swap-200-times-while-threads-call-loses-no-call",
            boards: BOTH,
            append: "",
            setup: Setup::Standard,
            steps: &[
                Expect("qvq$ "),
                Send("swap-stress 200 hello.qvd hello-0.2.0.qvd\r"),
                ExpectWithin("swap-stress answers by version:", 240),
                Expect("swap-stress: 200 swaps, 0 refused; "),
                Expect(" pings, 0 errors, 0 wrong answers; served count matches\n"),
                Check(stress_answers_from_both_versions),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "swap-console-while-printing-loses-no-line",
            boards: BOTH,
            append: "",
            setup: Setup::HostLink,
            steps: &[
                Expect("push: listening for hot-swap pushes on the host link"),
                Expect("qvq$ "),
                Send("ticker 400 10\r"),
                Expect("tick 1/400"),
                Send("count 400 10\r"),
                Expect("line 10/400"),
                Push(PushStep {
                    domain: "console",
                    version: "0.4.0",
                    tamper: false,
                    fault: Fault::None,
                    swapped: true,
                    answer: "swapped console 0.1.0 -> 0.4.0 (a host push",
                }),
                ExpectAll(&["line 400/400", "tick 400/400"]),
                Check(every_numbered_line_exactly_once),
                Send("versions console\r"),
                Expect("console: running 0.4.0 from a host push"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "refused-swaps-leave-the-old-version-serving",
            boards: BOTH,
            append: "",
            setup: Setup::SwapFixtures,
            steps: &[
                Expect("domain hello-badsig rejected: bad signature"),
                Expect("qvq$ "),
                Send("mem\r"),
                Expect("free frames ("),
                Expect(" KiB)"),
                Send("swap hello hello-badsig\r"),
                Expect("swap hello refused: hello-badsig.qvd: bad signature"),
                Send("swap hello hello-0.0.1\r"),
                Expect("swap hello refused: hello-0.0.1.qvd is version 0.0.1, older than the running 0.1.0"),
                Send("swap hello hello-revokedkey --downgrade\r"),
                Expect("swap hello refused: hello-revokedkey.qvd: revoked key"),
                Send("swap hello hello-wronghash\r"),
                Expect("swap hello refused: the new version's Hello has interface hash"),
                Send("swap hello hello-initpanic\r"),
                Expect("panicked at"),
                Expect("swap hello refused: the new version's initialisation failed: crashed during initialisation"),
                Send("swap hello hello-otherstate\r"),
                Expect("swap hello refused: state type mismatch: the running version hands over state"),
                Send("hello ping 5\r"),
                Expect("hello ping 5: 6"),
                Send("versions hello\r"),
                Expect("hello: running 0.1.0 from hello.qvd (domain 2, generation 1"),
                Send("mem\r"),
                Expect("free frames ("),
                Expect(" KiB)"),
                Check(free_frames_unchanged),
                Send("swap hello hello-0.2.0\r"),
                Expect("swapped hello 0.1.0 -> 0.2.0"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "host-push-swaps-and-refuses-bad-pushes",
            boards: BOTH,
            append: "",
            setup: Setup::HostLink,
            steps: &[
                Expect("push: listening for hot-swap pushes on the host link"),
                Expect("qvq$ "),
                Push(PushStep {
                    domain: "hello",
                    version: "0.5.0",
                    tamper: true,
                    fault: Fault::None,
                    swapped: false,
                    answer: "swap hello refused: a host push: bad signature",
                }),
                Push(PushStep {
                    domain: "hello",
                    version: "0.5.0",
                    tamper: false,
                    fault: Fault::StopAfterChunks(5),
                    swapped: false,
                    answer: "stopped after 5 chunks",
                }),
                ExpectWithin("push: transfer of hello interrupted: no frame for 3000 ms after 5120 of", 20),
                Send("versions hello\r"),
                Expect("hello: running 0.1.0 from hello.qvd"),
                Push(PushStep {
                    domain: "hello",
                    version: "0.5.0",
                    tamper: false,
                    fault: Fault::CorruptChunkOnce(3),
                    swapped: true,
                    answer: "swapped hello 0.1.0 -> 0.5.0 (a host push",
                }),
                Expect("push: frame (kind 0x3, seq 3) failed its CRC-32: resend"),
                SwapCommand("hello"),
                Send("versions hello\r"),
                Expect("hello: running 0.5.1 from a host push"),
                Expect("retired: 0.5.0 from a host push"),
                Send("hello ping 7\r"),
                Expect("hello ping 7: 8"),
                // The shell itself, and relay (which imports hello): the old shell's thread,
                // waiting for input inside the console, is dropped, so no keystroke is lost.
                Push(PushStep {
                    domain: "shell",
                    version: "0.2.0",
                    tamper: false,
                    fault: Fault::None,
                    swapped: true,
                    answer: "swapped shell 0.1.0 -> 0.2.0",
                }),
                Expect("thread shell:shell ended: its domain was swapped out"),
                Push(PushStep {
                    domain: "relay",
                    version: "0.2.0",
                    tamper: false,
                    fault: Fault::None,
                    swapped: true,
                    answer: "swapped relay 0.1.0 -> 0.2.0",
                }),
                Send("hello ping 8\r"),
                Expect("hello ping 8: 9"),
                Send("relay panic\r"),
                Expect("relay: hello crashed inside relay's call; relay answered normally"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
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
                Expect("initrd: 6 entries"),
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
            steps: &[Expect("KERNEL FAULT: data abort (same EL)"), Expect("on write in thread \"init\""), Expect("is in the guard page of thread \"init\""), Expect("stack overflow")],
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
            steps: &[Expect("selftest threads: start"), Expect("round 0"), Expect("round 1"), Expect("selftest threads: PASS"), Expect("alternations")],
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
            steps: &[BANNER, Expect("warning: initrd: none (no linux,initrd-start in /chosen)"), Expect("selftest boot: PASS")],
            exit_status: 0,
        },
        QemuTest {
            name: "tampered-domain-is-rejected",
            boards: BOTH,
            append: "qvq.test=boot",
            setup: Setup::TamperedInitrd,
            steps: &[
                Expect("domain console rejected: bad signature"),
                Expect("domain hello started"),
                Expect("domain shell rejected: imports Console, which no running domain exports"),
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
            steps: &[Expect("semihosting: not available"), Expect("qvq$ "), Send("poweroff\r"), Expect("power off (status 0)")],
            exit_status: 0,
        },
        QemuTest {
            name: "shell-domain-answers-interactively",
            boards: BOTH,
            append: "",
            setup: Setup::Standard,
            steps: &[
                Expect("QvQ shell."),
                Expect("qvq$ "),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Expect("qvq$ "),
                Send("hello sum\r"),
                Expect("hello sum 1..8: 36"),
                Expect("qvq$ "),
                Send("domains\r"),
                Expect("0   kernel"),
                Expect("console      0.1.0    running"),
                Expect("hello        0.1.0    running"),
                Expect("shell        0.1.0    running"),
                Expect("qvq$ "),
                Send("hello ping x\r"),
                Expect("usage: hello ping N"),
                Expect("qvq$ "),
                Send("mem now\r"),
                Expect("mem: takes no arguments"),
                Expect("qvq$ "),
                Send("launch\r"),
                Expect("unknown command 'launch'. commands: help"),
                Expect("qvq$ "),
                Send("crash hello panic\r"),
                Expect("domain hello crashed: panicked"),
                Expect("domain hello reclaimed: 28 KiB image, 64 KiB heap"),
                ExpectAll(&["crash hello panic: error: callee crashed", "domain hello restarted: generation 2"]),
                Send("hello ping 1\r"),
                Expect("hello ping 1: 2"),
                Expect("qvq$ "),
                Send("mem\r"),
                Expect("free frames ("),
                Expect(" KiB)"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "bad-domains-rejected-each-with-its-reason",
            boards: BOTH,
            append: "",
            setup: Setup::RejectionInitrd,
            steps: &[
                Expect("domain unsigned rejected: bad magic"),
                Expect("domain tampered rejected: bad signature"),
                Expect("domain wrongkey rejected: unknown key"),
                Expect("domain revoked rejected: revoked key"),
                Expect("domain malformed rejected: truncated envelope"),
                Expect("domain rogue rejected: imports Hello, which its signed manifest does not declare"),
                Expect("domain rogue rejected: initialisation failed"),
                Expect("qvq$ "),
                Send("hello ping 6\r"),
                Expect("hello ping 6: 7"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "every-failure-kind-crashes-only-the-domain",
            boards: BOTH,
            append: "qvq.restart_limit=0",
            setup: Setup::Standard,
            steps: &[
                Expect("qvq$ "),
                Send("crash hello panic\r"),
                Expect("domain hello crashed: panicked: panicked at"),
                Expect("domain hello reclaimed: 28 KiB image, 64 KiB heap"),
                ExpectAll(&["crash hello panic: error: callee crashed", "domain hello restarted: generation 2"]),
                Send("crash hello oom\r"),
                Expect("domain hello crashed: panicked: private heap exhausted: a 4096-byte allocation failed"),
                ExpectAll(&["crash hello oom: error: callee crashed", "domain hello restarted: generation 3"]),
                Send("crash hello overflow\r"),
                Expect("domain hello crashed: stack overflow (hit the guard page at"),
                ExpectAll(&["crash hello overflow: error: callee crashed", "domain hello restarted: generation 4"]),
                Send("crash hello fault\r"),
                Expect("domain hello crashed: data abort (same EL) [EC 0x25], translation fault at level"),
                ExpectAll(&["crash hello fault: error: callee crashed", "domain hello restarted: generation 5"]),
                Send("crash hello loop\r"),
                Expect("domain hello crashed: a call ran past its CPU budget (100 ms); taken back at the timer interrupt"),
                ExpectAll(&["crash hello loop: error: callee crashed", "domain hello restarted: generation 6"]),
                Send("hello ping 9\r"),
                Expect("hello ping 9: 10"),
                Expect("qvq$ "),
                Send("domains\r"),
                Expect("hello        0.1.0    running   "),
                Expect("6      6         5"),
                Expect("qvq$ "),
                Send("crash\r"),
                Expect("usage: crash hello panic|oom|overflow|fault|loop | crash NAME"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "restart-rate-limit-holds-then-restart-command",
            boards: BOTH,
            append: "qvq.restart_window_ms=60000",
            setup: Setup::Standard,
            steps: &[
                Expect("qvq$ "),
                Send("crash hello panic\r"),
                ExpectAll(&["callee crashed", "restarted: generation 2"]),
                Send("crash hello panic\r"),
                ExpectAll(&["callee crashed", "restarted: generation 3"]),
                Send("crash hello panic\r"),
                ExpectAll(&["callee crashed", "restarted: generation 4"]),
                Send("crash hello panic\r"),
                ExpectAll(&["domain hello held: it crashed more than 3 times within 60000 ms", "crash hello panic: error: callee crashed"]),
                Send("hello ping 1\r"),
                Expect("hello ping: error: callee unavailable"),
                Expect("qvq$ "),
                Send("domains\r"),
                Expect("hello        0.1.0    held"),
                Expect("qvq$ "),
                Send("restart hello\r"),
                ExpectAll(&["restart: hello is restarting", "domain hello restarted: generation 5"]),
                Send("hello ping 1\r"),
                Expect("hello ping 1: 2"),
                Expect("qvq$ "),
                Send("restart nobody\r"),
                Expect("restart: no domain named nobody"),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "crash-and-restart-1000-times-returns-all-memory",
            boards: BOTH,
            append: "qvq.test=crash-loop qvq.restart_limit=0",
            setup: Setup::Standard,
            steps: &[Expect("selftest crash-loop: PASS (1000 crash-and-restart rounds"), Expect(": unchanged)")],
            exit_status: 0,
        },
        QemuTest {
            name: "nested-call-unwinds-only-the-crashed-domain",
            boards: BOTH,
            append: "",
            setup: Setup::Standard,
            steps: &[
                Expect("qvq$ "),
                Send("relay panic\r"),
                Expect("domain hello crashed: panicked"),
                ExpectAll(&[
                    "relay: hello.fail(0) ended with outcome 1; relay carries on",
                    "domain hello restarted: generation 2",
                    "relay: hello crashed inside relay's call; relay answered normally",
                ]),
                Send("relay fault\r"),
                Expect("domain hello crashed: data abort"),
                ExpectAll(&[
                    "relay: hello.fail(4) ended with outcome 1; relay carries on",
                    "domain hello restarted: generation 3",
                    "relay: hello crashed inside relay's call; relay answered normally",
                ]),
                Send("domains\r"),
                Expect("relay        0.1.0    running   "),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "crashes-while-several-threads-call",
            boards: BOTH,
            append: "qvq.test=threads-crash qvq.restart_limit=0",
            setup: Setup::Standard,
            steps: &[Expect("selftest threads-crash: PASS")],
            exit_status: 0,
        },
        QemuTest {
            name: "console-driver-crash-recovers",
            boards: BOTH,
            append: "",
            setup: Setup::Standard,
            steps: &[
                Expect("qvq$ "),
                Send("crash console\r"),
                Expect("domain console crashed: crash injected from the shell"),
                Expect("domain console reclaimed: 32 KiB image, 64 KiB heap, 0 shared-heap blocks (0 bytes), 1 interrupt routes"),
                Expect("thread console:console-rx ended: its domain crashed"),
                Expect("domain console restarted: generation 2"),
                // Input reaches the new driver and everything the shell writes comes out.
                Send("hello ping 5\r"),
                Expect("hello ping 5: 6"),
                Expect("qvq$ "),
                Send("domains\r"),
                Expect("ID  NAME         VERSION  STATE     KEY ID            GEN  CALLS  RESTARTS"),
                Expect("0   kernel"),
                Expect("console      0.1.0    running   "),
                Expect("hello        0.1.0    running   "),
                Expect("shell        0.1.0    running   "),
                Expect("qvq$ "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "shadow-proxy-hides-a-restart",
            boards: BOTH,
            append: "qvq.test=shadow",
            setup: Setup::Standard,
            steps: &[Expect("domain hello crashed: crash injected by selftest shadow"), Expect("selftest shadow: PASS (plain proxy: Err(Unavailable); shadow proxy: Ok(6) after the restart; handle generation 1 -> 2)")],
            exit_status: 0,
        },
        QemuTest {
            name: "fatal-domain-crash-powers-off",
            boards: &[Board::Virt],
            append: "",
            setup: Setup::FatalHello,
            steps: &[
                Expect("qvq$ "),
                Send("crash hello panic\r"),
                Expect("domain hello crashed: panicked"),
                Expect("domain hello is fatal to the system: powering off"),
            ],
            exit_status: FAULT,
        },
        QemuTest {
            name: "domain-code-is-not-writable",
            boards: BOTH,
            append: "qvq.test=domain-wx-write",
            setup: Setup::Standard,
            steps: &[Expect("writing to the hello domain's code"), Expect("KERNEL FAULT: data abort (same EL) [EC 0x25], permission fault"), Expect("on write")],
            exit_status: FAULT,
        },
        QemuTest {
            name: "domain-data-is-not-executable",
            boards: BOTH,
            append: "qvq.test=domain-wx-exec",
            setup: Setup::Standard,
            steps: &[Expect("jumping into the hello domain's data"), Expect("KERNEL FAULT: instruction abort (same EL) [EC 0x21], permission fault")],
            exit_status: FAULT,
        },
        QemuTest {
            name: "no-device-tree-falls-back-to-board",
            boards: RPI3,
            append: "",
            setup: Setup::NoDtb,
            steps: &[
                Expect("warning: devicetree: no valid flattened device tree at"),
                Expect("falling back to rpi3 board defaults"),
                Expect("no memory node; using the board's RAM layout"),
                Expect("qvq> "),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "dt-without-uart-uses-board-uart",
            boards: RPI3,
            append: "qvq.test=boot",
            setup: Setup::DtsChanges("/ { aliases { /delete-property/ serial0; }; chosen { /delete-property/ stdout-path; }; };\n/delete-node/ &uart0;"),
            steps: &[Expect("warning: devicetree: no arm,pl011 node; using the board's UART"), Expect("console: PL011 at 0x3f201000 (board default)"), Expect("selftest boot: PASS")],
            exit_status: 0,
        },
        QemuTest {
            name: "dt-without-timer-or-intc-uses-board",
            boards: RPI3,
            append: "qvq.test=ticks",
            setup: Setup::DtsChanges(
                "&uart0 { /delete-property/ interrupt-parent; /delete-property/ interrupts; };\n/delete-node/ &intc;\n/delete-node/ &local_intc;\n/ { /delete-property/ interrupt-parent; /delete-node/ timer; };",
            ),
            steps: &[
                Expect("no interrupt controller node; using the board's"),
                Expect("no arm,armv8-timer node; using the board's timer interrupt"),
                Expect("selftest ticks: PASS"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "initrd-outside-ram-is-refused",
            boards: RPI3,
            append: "qvq.test=boot",
            setup: Setup::DtsChanges("/ { chosen { linux,initrd-start = <0x3e000000>; linux,initrd-end = <0x3e001000>; }; };"),
            steps: &[Expect("warning: initrd: [0x3e000000, 0x3e001000) lies outside RAM; ignored"), Expect("selftest boot: PASS")],
            exit_status: 0,
        },
        QemuTest {
            name: "initrd-overlapping-kernel-is-refused",
            boards: RPI3,
            append: "qvq.test=boot",
            setup: Setup::DtsChanges("/ { chosen { linux,initrd-start = <0x80000>; linux,initrd-end = <0x90000>; }; };"),
            steps: &[Expect("warning: initrd: [0x80000, 0x90000) overlaps the kernel image"), Expect("selftest boot: PASS")],
            exit_status: 0,
        },
        QemuTest {
            name: "malformed-initrd-range-is-refused",
            boards: RPI3,
            append: "qvq.test=boot",
            setup: Setup::DtsChanges("/ { chosen { linux,initrd-start = <0x2000000>; }; };"),
            steps: &[Expect("warning: initrd: ignored: only one of linux,initrd-start and linux,initrd-end is present"), Expect("selftest boot: PASS")],
            exit_status: 0,
        },
    ]
}

/// The board's domains followed by one domain for each way of being refused.
/// Only the entries the recipe lists without a `version` (no second version to fall back to).
fn first_versions(board: Board, entries: Vec<(String, Vec<u8>)>) -> Result<Vec<(String, Vec<u8>)>, String> {
    let firsts: Vec<String> = crate::domains::recipe(board)?
        .iter()
        .filter(|e| e.version.is_none())
        .map(|e| e.file_name())
        .collect();
    Ok(entries.into_iter().filter(|e| firsts.contains(&e.0)).collect())
}

fn rejection_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = first_versions(board, image::initrd_entries(board)?)?;
    let hello_elf = std::fs::read(image::build_domain_elf("hello")?).map_err(|e| e.to_string())?;
    let manifest = crate::domains::manifest("hello", None, true)?;
    let hello = entries
        .iter()
        .find(|e| e.0 == "hello.qvd")
        .map(|e| e.1.clone())
        .ok_or("no hello in the recipe")?;
    let mut tampered = hello.clone();
    tampered[84] ^= 0x01;
    let scratch = image::out_dir(board).join("throwaway");
    let (key, _, _) = qvq_sign::keygen(&scratch.join("wrong"), true)?;
    let wrong = qvq_sign::sign(&manifest, &hello_elf, &qvq_sign::read_signing_key(&key)?)?;
    let revoked = qvq_sign::sign(&manifest, &hello_elf, &qvq_sign::read_signing_key(&image::revoked_test_key())?)?;
    let rogue_elf = std::fs::read(image::build_domain_elf("rogue")?).map_err(|e| e.to_string())?;
    let rogue = qvq_sign::sign(
        &crate::domains::manifest("rogue", None, true)?,
        &rogue_elf,
        &qvq_sign::read_signing_key(&image::ensure_dev_key()?)?,
    )?;
    entries.extend([
        ("unsigned.qvd".to_string(), hello_elf),
        ("tampered.qvd".to_string(), tampered),
        ("wrongkey.qvd".to_string(), wrong),
        ("revoked.qvd".to_string(), revoked),
        ("malformed.qvd".to_string(), hello[..100].to_vec()),
        ("rogue.qvd".to_string(), rogue),
    ]);
    Ok(entries)
}

/// The swap fixtures: versions of hello each refused for its own reason.
fn swap_fixture_entries(board: Board) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = image::initrd_entries(board)?;
    let dev = qvq_sign::read_signing_key(&image::ensure_dev_key()?)?;
    let revoked = qvq_sign::read_signing_key(&image::revoked_test_key())?;
    let hello_elf = std::fs::read(image::build_domain_elf("hello")?).map_err(|e| e.to_string())?;
    let version = |v: &str| crate::domains::RecipeEntry {
        name: "hello".into(),
        devices: vec![],
        restart: None,
        version: Some(v.into()),
    };
    let hello = |v: &str| crate::domains::manifest("hello", Some(&version(v)), true);
    let mut badsig = qvq_sign::sign(&hello("0.3.0")?, &hello_elf, &dev)?;
    let last = badsig.len() - 1;
    badsig[last] ^= 0x01; // the signature's last byte
    let mut wrong_hash = hello("0.3.0")?;
    wrong_hash.exports[0].hash[0] ^= 0x01;
    let fixture = |name: &str| -> Result<Vec<u8>, String> {
        let elf = std::fs::read(image::build_domain_elf(name)?).map_err(|e| e.to_string())?;
        qvq_sign::sign(&crate::domains::manifest(name, None, true)?, &elf, &dev)
    };
    entries.extend([
        ("hello-badsig.qvd".to_string(), badsig),
        ("hello-0.0.1.qvd".to_string(), qvq_sign::sign(&hello("0.0.1")?, &hello_elf, &dev)?),
        ("hello-revokedkey.qvd".to_string(), qvq_sign::sign(&hello("0.3.0")?, &hello_elf, &revoked)?),
        ("hello-wronghash.qvd".to_string(), qvq_sign::sign(&wrong_hash, &hello_elf, &dev)?),
        ("hello-initpanic.qvd".to_string(), fixture("swap-init-panics")?),
        ("hello-otherstate.qvd".to_string(), fixture("swap-other-state")?),
    ]);
    Ok(entries)
}

/// `swap-stress`: callers got answers from both versions.
fn stress_answers_from_both_versions(t: &str) -> Result<(), String> {
    let line = t
        .lines()
        .rev()
        .find(|l| l.starts_with("swap-stress answers by version:"))
        .ok_or("no swap-stress summary")?;
    let by_version = line.split("answers by version:").nth(1).ok_or("no answers by version")?;
    let counts: Vec<u64> = by_version.split_whitespace().skip(1).step_by(2).filter_map(|n| n.parse().ok()).collect();
    if counts.len() == 2 && counts.iter().all(|c| *c > 0) && by_version.contains("0.1.0:") && by_version.contains("0.2.0:") {
        Ok(())
    } else {
        Err(format!("expected answers from both 0.1.0 and 0.2.0: {line}"))
    }
}

/// `ticker 400` and `count 400` printed every numbered line exactly once, intact, and the
/// console swap happened while they were printing.
fn every_numbered_line_exactly_once(t: &str) -> Result<(), String> {
    // From the first numbered line (the boot log mentions the timer's tick).
    let t = &t[t.find("tick 1/400").ok_or("no tick 1/400")?..];
    for tag in ["tick", "line"] {
        let mentions = t.matches(&format!("{tag} ")).count();
        for i in 1..=400 {
            let n = t.matches(&format!("{tag} {i}/400\n")).count();
            if n != 1 {
                return Err(format!("\"{tag} {i}/400\" appears {n} times"));
            }
        }
        if mentions != 400 {
            return Err(format!("{mentions} lines mention \"{tag} \", expected 400 (a line was cut or garbled)"));
        }
        let swap = t.find("swapped console").ok_or("no swap")?;
        let (first, last) = (t.find(&format!("{tag} 1/400\n")), t.find(&format!("{tag} 400/400\n")));
        if !(first < Some(swap) && Some(swap) < last) {
            return Err(format!("the swap did not happen while the {tag} lines were printing"));
        }
    }
    Ok(())
}

/// The two `mem` reports show the same number of free frames.
fn free_frames_unchanged(t: &str) -> Result<(), String> {
    let frames: Vec<&str> = t.lines().filter(|l| l.ends_with(" KiB)") && l.contains(" free frames (")).collect();
    match frames.as_slice() {
        [.., before, after] if before == after => Ok(()),
        [.., before, after] => Err(format!("free frames changed: {before} -> {after}")),
        _ => Err("fewer than two mem reports".into()),
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn run_qemu_test(t: &QemuTest, board: Board, built: &Built) -> Result<(), String> {
    let mut boot = Boot::from_build(board, built);
    boot.append = t.append.to_string();
    match t.setup {
        Setup::Standard => {}
        Setup::NoInitrd => boot.initrd = None,
        Setup::NoDtb => boot.dtb = None,
        Setup::NoSemihosting => boot.semihosting = false,
        Setup::FatalHello => {
            let mut entries = image::initrd_entries(board)?;
            let elf = std::fs::read(image::build_domain_elf("hello")?).map_err(|e| e.to_string())?;
            let entry = crate::domains::RecipeEntry {
                name: "hello".into(),
                devices: vec![],
                restart: Some("fatal".into()),
                version: None,
            };
            let manifest = crate::domains::manifest("hello", Some(&entry), true)?;
            let signed = qvq_sign::sign(&manifest, &elf, &qvq_sign::read_signing_key(&image::ensure_dev_key()?)?)?;
            for e in entries.iter_mut().filter(|e| e.0 == "hello.qvd") {
                e.1 = signed.clone();
            }
            let path = image::out_dir(board).join("fatal-initrd.img");
            image::write_initrd(&path, &entries)?;
            boot.initrd = Some(path);
        }
        Setup::RejectionInitrd => {
            let path = image::out_dir(board).join("rejection-initrd.img");
            image::write_initrd(&path, &rejection_entries(board)?)?;
            boot.initrd = Some(path);
        }
        Setup::TamperedInitrd => {
            let mut entries = first_versions(board, image::initrd_entries(board)?)?;
            entries[0].1[84] ^= 0x01; // first manifest byte: the signature no longer matches
            let path = image::out_dir(board).join("tampered-initrd.img");
            image::write_initrd(&path, &entries)?;
            boot.initrd = Some(path);
        }
        Setup::SwapFixtures => {
            let path = image::out_dir(board).join("swap-fixtures-initrd.img");
            image::write_initrd(&path, &swap_fixture_entries(board)?)?;
            boot.initrd = Some(path);
        }
        Setup::HostLink => boot.host_link = Some(image::out_dir(board).join("test-hostlink.sock")),
        Setup::DtsChanges(changes) => {
            let dir = image::out_dir(board).join("test-dtbs");
            boot.dtb = Some(dtb_variant(&image::rpi3_dts(), changes, &dir, t.name)?);
            boot.initrd = None;
        }
    }
    let mut s = Session::start(&boot)?;
    let result = (|| {
        for step in t.steps {
            match *step {
                Expect(p) => s.expect(p, TIMEOUT)?,
                ExpectAll(ps) => s.expect_all(ps, TIMEOUT)?,
                Send(text) => s.send(text)?,
                ExpectWithin(p, secs) => s.expect(p, Duration::from_secs(secs))?,
                Check(f) => f(&s.transcript())?,
                Push(p) => push_step(&p, board, boot.host_link.as_deref().ok_or("this setup has no host link")?)?,
                SwapCommand(name) => {
                    let socket = boot.host_link.as_deref().ok_or("this setup has no host link")?;
                    if !crate::swap::swap(board, name, None, false, Some(socket))? {
                        return Err(format!("`cargo xtask swap {name}` did not swap"));
                    }
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

fn push_step(p: &PushStep, board: Board, socket: &std::path::Path) -> Result<(), String> {
    let (mut envelope, _) = crate::swap::signed_domain(board, p.domain, Some(p.version))?;
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

/// Runs `cargo test` in `dir` with `args`; returns (passed, failed) from its summaries.
fn cargo_test(dir: &std::path::Path, args: &[&str], env: &[(&str, &std::path::Path)]) -> (usize, usize) {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir).arg("test").args(args).args(["--", "--show-output"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            println!("cannot run cargo test: {e}");
            return (0, 1);
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (mut passed, mut failed) = (0, 0);
    for line in stdout.lines() {
        if line.contains("single-bit flips") {
            println!("{line}");
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            let num = |key: &str| {
                rest.split(';')
                    .find_map(|p| p.trim().strip_suffix(key).and_then(|n| n.trim().rsplit(' ').next()?.parse::<usize>().ok()))
                    .unwrap_or(0)
            };
            passed += num(" passed");
            failed += num(" failed");
        }
    }
    if !out.status.success() {
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        failed = failed.max(1);
    }
    (passed, failed)
}

/// Host tests: the root workspace's crates, then the interface crate of the domain
/// workspace (whose compile-fail tests check `RRef` ownership).
fn host_tests() -> (usize, usize) {
    println!("== host unit tests (cargo test) ==");
    // The signed-domain chain tests need a real domain ELF built for the kernel's target.
    let sample = match image::build_domain_elf("sample") {
        Ok(p) => p,
        Err(e) => {
            println!("{e}");
            return (0, 1);
        }
    };
    let root = image::workspace_root();
    let (p1, f1) = cargo_test(&root, &["--workspace", "--exclude", "qvq-kernel"], &[("QVQ_SAMPLE_DOMAIN_ELF", &sample)]);
    // Host builds of the domain workspace (and trybuild's) go under the root target/.
    let host_dir = root.join("target/domains-host");
    let (p2, f2) = cargo_test(&root.join("domains"), &["--package", "qvq-interfaces"], &[("CARGO_TARGET_DIR", &host_dir)]);
    let (passed, failed) = (p1 + p2, f1 + f2);
    println!("host: {passed} passed, {failed} failed");
    (passed, failed)
}

pub fn run_all(filter: Option<&str>, qemu_only: bool) -> Result<bool, String> {
    crate::setup::ensure_rust_target()?;
    crate::setup::ensure_qemu()?;
    let (mut passed, mut failed) = if qemu_only { (0, 0) } else { host_tests() };

    for board in [Board::Virt, Board::Rpi3] {
        let tests: Vec<_> = qemu_tests()
            .into_iter()
            .filter(|t| t.boards.contains(&board) && filter.is_none_or(|f| t.name.contains(f)))
            .collect();
        if tests.is_empty() {
            continue;
        }
        println!("== QEMU tests on {} ==", board.name());
        let built = match image::build(board) {
            Ok(b) => b,
            Err(e) => {
                println!("build for {} failed: {e}", board.name());
                failed += tests.len();
                continue;
            }
        };
        for t in &tests {
            let start = Instant::now();
            match run_qemu_test(t, board, &built) {
                Ok(()) => {
                    passed += 1;
                    println!("ok   {}/{} ({:.1} s)", board.name(), t.name, start.elapsed().as_secs_f32());
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {}/{}: {e}", board.name(), t.name);
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}
