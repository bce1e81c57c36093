//! QEMU tests of the attacker QvQ designs against (../shared/DESIGN.md, "The attacker we
//! design against"): signed, safe-Rust attack domains (`domains/attack-*`) that loop while
//! holding a lock, exhaust what they can allocate, abuse their device grants and feed odd
//! values to every safe runtime function. Each test boots the standard initrd plus the
//! attacker (`Setup::Attack`) and asserts containment: the attacker is refused or crashed
//! with a clear log line, the kernel does not panic, and the shell and the other domains
//! still answer. The compile-time attack classes (forged proxies, services-table calls,
//! look-alike interfaces, marker traits) are trybuild tests in
//! `domains/trusted/interfaces/tests/compile-fail/`.

use crate::harness::case::{Check, Expect, ExpectAll, ExpectAny, ExpectWithin, QemuTest, Send, Setup, Step, BOTH};
use crate::harness::fixtures::Attacker;

const fn attacker(krate: &'static str, variant: u32) -> Attacker {
    Attacker {
        krate,
        name: krate,
        variant,
        restart: "hold",
        virt_devices: &[],
        rpi3_devices: &[],
        replaces: None,
    }
}

/// attack-mutex in relay's place (it exports Relay, so `relay panic|fault` reach it).
const fn mutex(variant: u32) -> Attacker {
    Attacker {
        restart: "restart",
        replaces: Some("relay.qvd"),
        ..attacker("attack-mutex", variant)
    }
}

/// attack-budget in relay's place (it exports Relay, so `relay panic` reaches it).
const fn budget(variant: u32) -> Attacker {
    Attacker {
        restart: "restart",
        replaces: Some("relay.qvd"),
        ..attacker("attack-budget", variant)
    }
}

/// attack-device with one grant without an interrupt: QEMU virt's fw-cfg, the rpi3's
/// random number generator (polled; no interrupt in the device tree). Not the mini UART:
/// that is the host link, which the kernel keeps. On rpi3 it takes the place of the RNG's
/// driver, so no second domain holds the generator while the attacker pokes at it (virt
/// has no `rng.qvd`: nothing is taken out there).
const fn device(variant: u32) -> Attacker {
    Attacker {
        virt_devices: &["qemu,fw-cfg-mmio"],
        rpi3_devices: &["brcm,bcm2835-rng"],
        replaces: Some("rng.qvd"),
        ..attacker("attack-device", variant)
    }
}

/// attack-device granted the GPIO block the rpi3's `gpio` driver holds (nothing replaced):
/// the kernel grants a device to one domain only.
const fn device_held_by_another(variant: u32) -> Attacker {
    Attacker {
        rpi3_devices: &["brcm,bcm2835-gpio"],
        ..attacker("attack-device", variant)
    }
}

/// attack-dma granted QEMU virt's first virtio-mmio transport (kept registers and all).
const fn dma(variant: u32) -> Attacker {
    Attacker {
        virt_devices: &["virtio,mmio"],
        ..attacker("attack-dma", variant)
    }
}

const DMA_QUEUE_PFN: &[Attacker] = &[dma(1)];
const DMA_QUEUE_DESC: &[Attacker] = &[dma(2)];
const DMA_PAGE_SIZE: &[Attacker] = &[dma(3)];
const DMA_QUEUE_ALIGN: &[Attacker] = &[dma(4)];
const DMA_MISUSE: &[Attacker] = &[dma(5)];
const DMA_QUOTA_RACE: &[Attacker] = &[dma(6)];
const DMA_QUEUE_SEL: &[Attacker] = &[dma(7)];
const DMA_STATUS: &[Attacker] = &[dma(8)];
const MUTEX_CALL: &[Attacker] = &[mutex(2)];
const MUTEX_THREAD: &[Attacker] = &[mutex(1)];
const MUTEX_PANIC: &[Attacker] = &[mutex(3)];
const HEAP: &[Attacker] = &[attacker("attack-heap", 1)];
const THREAD_BOMB: &[Attacker] = &[attacker("attack-bomb", 1)];
const EVENT_BOMB: &[Attacker] = &[attacker("attack-bomb", 2)];
const INIT_LOOP: &[Attacker] = &[attacker("attack-initloop", 1)];
const INIT_SLEEPS: &[Attacker] = &[attacker("attack-initloop", 2)];
const INIT_WAITS: &[Attacker] = &[attacker("attack-initloop", 3)];
const DEVICE_1: &[Attacker] = &[device(1)];
const DEVICE_2: &[Attacker] = &[device(2)];
const DEVICE_3: &[Attacker] = &[device(3)];
const DEVICE_4: &[Attacker] = &[device(4)];
const DEVICE_FW_CFG_DMA: &[Attacker] = &[device(5)];
const DEVICE_HELD: &[Attacker] = &[device_held_by_another(1)];
const ODD_INPUTS: &[Attacker] = &[attacker("attack-inputs", 1)];
const HUGE_SLEEPS: &[Attacker] = &[attacker("attack-inputs", 2)];
const LOG_FORGERY: &[Attacker] = &[attacker("attack-inputs", 3)];
const REPLACE_SERVICES: &[Attacker] = &[attacker("attack-inputs", 4)];
const KEEP_ACROSS_RESTART: &[Attacker] = &[Attacker {
    restart: "restart",
    ..attacker("attack-inputs", 5)
}];
const STACK_CALL: &[Attacker] = &[attacker("attack-stack", 1)];
const STACK_RREF: &[Attacker] = &[attacker("attack-stack", 2)];
const STACK_LOG: &[Attacker] = &[attacker("attack-stack", 3)];
const BUDGET_LOGGING: &[Attacker] = &[budget(1)];
const BUDGET_PINGING: &[Attacker] = &[budget(2)];
const SWAP_EXPORT_LOOPS: &[Attacker] = &[attacker("attack-swap", 1), attacker("attack-swap", 2)];
const LOAD_RACE: &[Attacker] = &[attacker("attack-load", 1)];
const SWAP_IMPORT_LOOPS: &[Attacker] = &[attacker("attack-swap", 2), attacker("attack-swap", 3)];

/// The kernel never panicked, and no attacker reported an escape.
fn kernel_intact(t: &str) -> Result<(), String> {
    for bad in ["KERNEL PANIC", "ESCAPE"] {
        if let Some(at) = t.find(bad) {
            let line_end = t[at..].find('\n').map_or(t.len(), |n| at + n);
            return Err(format!("found {bad:?}: {}", &t[at..line_end]));
        }
    }
    Ok(())
}

/// Of the racing loads of one envelope, at most one started a domain: one domain per
/// name, one exporter per interface, one record per domain number.
fn at_most_one_load(t: &str) -> Result<(), String> {
    let over = line_after(t, "load race over: ")?;
    let started = t.matches("domain relay started").count();
    // `domains` rows: ID NAME VERSION STATE ...
    let relays = t
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == "relay" && f[3] == "running"
        })
        .count();
    if !over.starts_with("1 of") || started != 1 || relays != 1 {
        return Err(format!(
            "racing loads: {over:?}; {started} \"domain relay started\" lines, {relays} relay records running"
        ));
    }
    Ok(())
}

/// The end of every attack test: the shell answers, hello answers, the kernel is intact.
const SHELL_ANSWERS: &[Step] = &[
    Send("hello ping 41\r"),
    Expect("hello ping 41: 42"),
    Expect("qvq$ "),
    Check(kernel_intact),
    Send("poweroff\r"),
    Expect("power off (status 0)"),
];

/// An attack on QEMU virt only (virtio-mmio exists there).
fn virt_attack(name: &'static str, attackers: &'static [Attacker], steps: &'static [Step]) -> QemuTest {
    QemuTest {
        boards: &[crate::board::Board::Virt],
        ..attack(name, attackers, steps)
    }
}

/// A kept register write crashes the driver before it reaches the device.
const DMA_REGISTER_STEPS: &[Step] = &[
    Expect("attack-dma: writing register"),
    Expect("domain attack-dma crashed: panicked"),
    Expect("gives it a memory address to read or write: only the runtime's VirtQueue writes it"),
    Expect("DMA buffers ("),
    Expect("domain attack-dma held"),
];

fn attack(name: &'static str, attackers: &'static [Attacker], steps: &'static [Step]) -> QemuTest {
    QemuTest {
        name,
        boards: BOTH,
        append: "",
        setup: Setup::Attack(attackers),
        steps,
        exit_status: 0,
    }
}

/// attack-dma's count: every misuse it tried was refused.
fn all_dma_misuse_refused(t: &str) -> Result<(), String> {
    let line = t.lines().find(|l| l.contains("DMA misuse refused: ")).ok_or("no count")?;
    let counts = line.rsplit("refused: ").next().unwrap_or("");
    let (a, b) = counts.trim().split_once(" of ").ok_or_else(|| format!("odd count: {line}"))?;
    if a != b || a == "0" {
        return Err(format!("not every misuse was refused: {line}"));
    }
    Ok(())
}

/// A huge sleep must not have been cut short by an overflowing deadline.
fn no_huge_sleep_woke(t: &str) -> Result<(), String> {
    match t.find("woke from sleep_ms(") {
        Some(at) => Err(format!("a thread woke early: {}", &t[at..t[at..].find('\n').map_or(t.len(), |n| at + n)])),
        None => Ok(()),
    }
}

/// No line of the console transcript begins with a timestamp an attacker wrote (a log
/// line with an embedded newline or carriage return forges a kernel line).
fn no_forged_line(t: &str) -> Result<(), String> {
    for forged in ["[    0.000001]", "[    0.000002]", "[    0.000003]"] {
        if t.split(['\n', '\r']).any(|line| line.starts_with(forged)) {
            return Err(format!("a domain forged a kernel log line starting {forged:?}"));
        }
    }
    Ok(())
}

/// The line of the transcript that starts with `prefix`, the rest of it.
fn line_after<'a>(t: &'a str, prefix: &str) -> Result<&'a str, String> {
    let at = t.find(prefix).ok_or_else(|| format!("no {prefix:?} line"))? + prefix.len();
    Ok(t[at..].split(['\r', '\n']).next().unwrap_or(""))
}

/// hello counted no ping for the calls refused for want of stack (the callee never ran).
fn served_unchanged(t: &str) -> Result<(), String> {
    let before = line_after(t, "attack-stack: hello.served() before: ")?;
    let after = line_after(t, "attack-stack: hello.served() after: ")?;
    if before.starts_with("Ok(") && before == after {
        Ok(())
    } else {
        Err(format!("hello.served() was {before} before the refused calls, {after} after"))
    }
}

/// The attacker crashed at the word the service's stack check touches (just below the
/// stack limit), not from an overflow somewhere in its own code or the kernel's.
fn service_touched_the_guard_page(t: &str) -> Result<(), String> {
    let line = line_after(t, "bytes of stack left: it must touch the guard page at ")?;
    let wanted = format!("domain attack-stack crashed: stack overflow (hit the guard page at {line})");
    match t.contains(&wanted) {
        true => Ok(()),
        false => Err(format!("no {wanted:?} line")),
    }
}

/// hello was never crashed (blamed for a stack overflow or a call it did not make last).
/// attack-inputs 5: all four instances (the first and three restarts) found their data as
/// loaded (an `ESCAPE` line says otherwise; `kernel_intact` catches it too).
fn every_instance_started_as_loaded(t: &str) -> Result<(), String> {
    match t.matches("attack-inputs: this instance starts from its data as loaded").count() {
        4 => Ok(()),
        n => Err(format!("{n} instances of attack-inputs started from their data as loaded, not 4")),
    }
}

fn hello_never_crashed(t: &str) -> Result<(), String> {
    match t.find("domain hello crashed") {
        Some(at) => Err(format!("hello crashed: {}", &t[at..t[at..].find('\n').map_or(t.len(), |n| at + n)])),
        None => Ok(()),
    }
}

pub fn cases() -> Vec<QemuTest> {
    vec![
        // Class 7: a loop inside Mutex::with, in a call the shell makes.
        attack(
            "attack-mutex-loop-in-a-call",
            MUTEX_CALL,
            &[
                Expect("domain attack-mutex started: exports Relay"),
                Expect("qvq$ "),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Send("relay panic\r"),
                Expect("attack-mutex: looping inside Mutex::with in a call"),
                Expect("domain attack-mutex crashed: a call ran past its CPU budget"),
                ExpectAll(&["relay: error: callee crashed", "domain attack-mutex restarted: generation 2"]),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                // Once more, on the restarted instance.
                Send("relay panic\r"),
                Expect("domain attack-mutex crashed: a call ran past its CPU budget"),
                ExpectAll(&["relay: error: callee crashed", "domain attack-mutex restarted: generation 3"]),
                Step::Send("hello sum\r"),
                Expect("hello sum 1..8: 36"),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 7: the callee of a call made while holding a Mutex loops; its CPU budget
        // must still take it back (the caller's lock must not mask the watchdog).
        attack(
            "attack-mutex-callee-loops-under-a-mutex",
            MUTEX_CALL,
            &[
                Expect("qvq$ "),
                Send("relay fault\r"),
                Expect("attack-mutex: calling hello.fail(3) while holding a Mutex"),
                Expect("domain hello crashed: a call ran past its CPU budget"),
                ExpectAll(&[
                    "attack-mutex: hello.fail(3) under a Mutex ended with outcome 1",
                    "relay: hello crashed inside relay's call; relay answered normally",
                    "domain hello restarted: generation 2",
                ]),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 7: a panic while holding a Mutex (the unwind must not leave interrupts
        // masked or the lock held in the restarted instance).
        attack(
            "attack-mutex-panic-under-a-mutex",
            MUTEX_PANIC,
            &[
                Expect("qvq$ "),
                Send("relay panic\r"),
                Expect("domain attack-mutex crashed: panicked: panicked at"),
                ExpectAll(&["relay: error: callee crashed", "domain attack-mutex restarted: generation 2"]),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Send("relay panic\r"),
                Expect("attack-mutex panics while holding its Mutex"),
                ExpectAll(&["relay: error: callee crashed", "domain attack-mutex restarted: generation 3"]),
                Send("ticker 3 10\r"),
                ExpectAll(&["tick 1/3", "tick 2/3", "tick 3/3"]),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 7: a thread of the domain's own loops inside Mutex::with: a busy thread,
        // nothing more; the shell keeps answering and other threads keep running.
        attack(
            "attack-mutex-loop-in-a-thread",
            MUTEX_THREAD,
            &[
                Expect("attack-mutex: thread loops inside Mutex::with from now on"),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Send("ticker 3 10\r"),
                ExpectAll(&["tick 1/3", "tick 2/3", "tick 3/3"]),
                Send("crash hello panic\r"),
                ExpectAll(&["crash hello panic: error: callee crashed", "domain hello restarted: generation 2"]),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 8: leaking shared-heap blocks ends at the attacker's quota.
        attack(
            "attack-shared-heap-exhaustion",
            HEAP,
            &[
                Expect("attack-heap: leaking 64-byte shared-heap blocks"),
                Expect("domain attack-heap crashed: panicked"),
                Expect("domain attack-heap reclaimed:"),
                Expect("domain attack-heap held: its restart policy is hold"),
                Send("hello sum\r"),
                Expect("hello sum 1..8: 36"),
                Send("mem\r"),
                Expect("qvq$ "),
                Send("crash hello panic\r"),
                ExpectAll(&["crash hello panic: error: callee crashed", "domain hello restarted: generation 2"]),
                Send("hello sum\r"),
                Expect("hello sum 1..8: 36"),
                Send("swap hello\r"),
                Expect("swapped hello 0.1.0 -> 0.2.0 (hello-0.2.0.qvd, key id"),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 9: a thread bomb ends in the attacker's error; others can still start
        // threads and restart.
        attack(
            "attack-thread-bomb",
            THREAD_BOMB,
            &[
                Expect("attack-bomb: thread bomb starting"),
                // The manifest allows 5 threads; the bomb's first thread is one of them.
                Expect("attack-bomb: spawn refused after 4 threads"),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Send("ticker 3 10\r"),
                ExpectAll(&["tick 1/3", "tick 2/3", "tick 3/3"]),
                Send("crash hello panic\r"),
                ExpectAll(&["crash hello panic: error: callee crashed", "domain hello restarted: generation 2"]),
                Send("crash console\r"),
                Expect("domain console restarted: generation 2"),
                // A new version needs fresh frames: the bomb must have left them (charged
                // to the attacker's own limit, not the machine's).
                Send("swap hello\r"),
                Expect("swapped hello 0.1.0 -> 0.2.0 (hello-0.2.0.qvd, key id"),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 9: an event bomb ends in the attacker's error; a restarted console driver
        // can still make its event.
        attack(
            "attack-event-bomb",
            EVENT_BOMB,
            &[
                Expect("attack-bomb: event bomb starting"),
                // The manifest allows 7 events.
                Expect("attack-bomb: Event::new refused after 7 events"),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Send("crash console\r"),
                Expect("domain console restarted: generation 2"),
                Send("ticker 3 10\r"),
                ExpectAll(&["tick 1/3", "tick 2/3", "tick 3/3"]),
                Send("swap hello\r"),
                Expect("swapped hello 0.1.0 -> 0.2.0 (hello-0.2.0.qvd, key id"),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 10: an init that never returns; boot carries on.
        attack(
            "attack-init-loops-forever",
            INIT_LOOP,
            &[
                Expect("attack-initloop: init loops forever"),
                Expect("domain attack-initloop"),
                Expect("CPU budget"),
                Expect("qvq$ "),
                Send("domains\r"),
                Expect("shell        0.1.0    running"),
                Expect("qvq$ "),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 10 again: an init that blocks forever (sleeping, or waiting on its own
        // event) runs no CPU, so the kernel call's time limit ends it; boot carries on.
        attack(
            "attack-init-sleeps-forever",
            INIT_SLEEPS,
            &[
                Expect("attack-initloop: init sleeps forever"),
                Expect("domain attack-initloop crashed: the kernel's call into it (its initialisation or a state hook) did not return within 2000 ms"),
                Expect("domain attack-initloop rejected: crashed during initialisation"),
                Expect("QvQ ready"),
            ],
        )
        .then(SHELL_ANSWERS),
        attack(
            "attack-init-waits-forever",
            INIT_WAITS,
            &[
                Expect("attack-initloop: init waits forever on its own event"),
                Expect("domain attack-initloop crashed: the kernel's call into it (its initialisation or a state hook) did not return within 2000 ms"),
                Expect("domain attack-initloop rejected: crashed during initialisation"),
                Expect("QvQ ready"),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 12: claims past the grants, an interrupt wait without an interrupt, and
        // accesses at each edge of the granted range.
        attack("attack-device-read-at-size", DEVICE_1, DEVICE_STEPS).then(SHELL_ANSWERS),
        attack("attack-device-read-at-usize-max", DEVICE_2, DEVICE_STEPS).then(SHELL_ANSWERS),
        attack("attack-device-write-at-size", DEVICE_3, DEVICE_STEPS).then(SHELL_ANSWERS),
        attack("attack-device-read-straddling-the-end", DEVICE_4, DEVICE_STEPS).then(SHELL_ANSWERS),
        // Class 12b, red team: fw-cfg (grantable on virt) has a DMA interface that copies
        // to any address written into its DMA register. The register is kept
        // (`DEVICE_FW_CFG`): the write crashes the attacker before it reaches the device.
        // Before the fix the device wrote the attacker's chosen address (its heap, then the
        // kernel's text, after which the kernel was gone).
        virt_attack(
            "attack-device-fw-cfg-dma-refused",
            DEVICE_FW_CFG_DMA,
            &[
                Expect("attack-device: fw-cfg DMA: aiming the device at its own heap first"),
                Expect("domain attack-device crashed: panicked"),
                Expect("register 0x10 of this device gives it a memory address to read or write: no domain may write it"),
                Expect("qvq$ "),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 12c: a second driver for a device another domain drives (both would race
        // each other's register sequences): the grant is refused, the holder keeps serving.
        QemuTest {
            boards: &[crate::board::Board::Rpi3],
            ..attack(
                "attack-device-grant-of-a-held-device-refused",
                DEVICE_HELD,
                &[
                    Expect("device \"brcm,bcm2835-gpio\" is granted to domain gpio already: a device has one driver"),
                    Expect("qvq$ "),
                    Send("gpio mode 17 out\r"),
                    Expect("qvq$ "),
                    Send("gpio set 17\r"),
                    Expect("qvq$ "),
                    Send("gpio get 17\r"),
                    Expect("gpio get 17: 1"),
                    Expect("qvq$ "),
                ],
            )
        }
        .then(SHELL_ANSWERS),
        // Class 12b: a driver making its device reach memory it was not given.
        virt_attack("attack-dma-writes-queue-pfn", DMA_QUEUE_PFN, DMA_REGISTER_STEPS).then(SHELL_ANSWERS),
        virt_attack("attack-dma-writes-queue-desc", DMA_QUEUE_DESC, DMA_REGISTER_STEPS).then(SHELL_ANSWERS),
        virt_attack("attack-dma-writes-guest-page-size", DMA_PAGE_SIZE, DMA_REGISTER_STEPS).then(SHELL_ANSWERS),
        virt_attack("attack-dma-writes-queue-align", DMA_QUEUE_ALIGN, DMA_REGISTER_STEPS).then(SHELL_ANSWERS),
        // QueueSel and Status: another thread could change them in the middle of a
        // queue's set-up (the runtime writes them under its set-up lock).
        virt_attack("attack-dma-writes-queue-sel", DMA_QUEUE_SEL, DMA_REGISTER_STEPS).then(SHELL_ANSWERS),
        virt_attack("attack-dma-writes-status", DMA_STATUS, DMA_REGISTER_STEPS).then(SHELL_ANSWERS),
        virt_attack(
            "attack-dma-buffer-and-queue-misuse-refused",
            DMA_MISUSE,
            &[
                Expect("before the quota refused"),
                Expect("attack-dma: DMA misuse refused: "),
                // The whole line, then count.
                Expect("\n"),
                Check(all_dma_misuse_refused),
            ],
        )
        .then(SHELL_ANSWERS),
        // Threads racing `dma_alloc`'s quota check (checked before the frames are
        // allocated and zeroed, charged only after) must not hold more than the quota.
        virt_attack("attack-dma-quota-race", DMA_QUOTA_RACE, &[Expect("attack-dma: DMA quota race: "), Expect("\n")]).then(SHELL_ANSWERS),
        // Class 13: huge and odd inputs.
        attack(
            "attack-odd-inputs",
            ODD_INPUTS,
            &[
                Expect("attack-inputs: logged 1 MiB"),
                Expect("attack-inputs: logged odd text"),
                Expect("attack-inputs: spawn with a 10 KiB name: Ok(())"),
                Expect("attack-inputs: wait(u64::MAX) on a fresh event returned 0"),
                Expect("attack-inputs: wait(0) after 1000 signals returned 1000"),
                Expect("attack-inputs: wait_restartable outside a call returned 1000"),
                Expect("attack-inputs: keep_state with hello's state"),
                Expect("attack-inputs: odd inputs done"),
            ],
        )
        .then(SHELL_ANSWERS),
        attack(
            "attack-huge-sleeps",
            HUGE_SLEEPS,
            &[
                Expect("attack-inputs: sleepers started"),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Send("ticker 3 10\r"),
                ExpectAll(&["tick 1/3", "tick 2/3", "tick 3/3"]),
                Check(no_huge_sleep_woke),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 3: replacing the services table from safe code (`set_services`,
        // `runtime::start`, the `_start` that `entry!` generates) is refused at run time,
        // and the private heap is not set up again over live allocations.
        attack(
            "attack-replace-services",
            REPLACE_SERVICES,
            &[Expect(
                "attack-inputs: set_services again: false; runtime::start again: -1; _start again: -1; heap intact: true",
            )],
        )
        .then(SHELL_ANSWERS),
        // A domain that changes its statics and crashes, four times (then the rate limit
        // holds it): a restart re-uses the kept image, so each instance must find its
        // writable data copied back as loaded (SECURITY.md, "Restarts").
        attack(
            "attack-restart-starts-from-the-loaded-data",
            KEEP_ACROSS_RESTART,
            &[
                Expect("attack-inputs: this instance starts from its data as loaded"),
                Expect("domain attack-inputs crashed: panicked"),
                Expect("domain attack-inputs restarted: generation 2"),
                Expect("domain attack-inputs restarted: generation 3"),
                Expect("domain attack-inputs restarted: generation 4"),
                Expect("domain attack-inputs held: it crashed more than 3 times within 1000 ms"),
                Check(every_instance_started_as_loaded),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 14: a hot swap whose state export (in the running version) loops forever.
        attack(
            "attack-swap-export-loops",
            SWAP_EXPORT_LOOPS,
            &[
                Expect("attack-swap: variant 1 running"),
                Expect("qvq$ "),
                Send("swap attack-swap\r"),
                Expect("attack-swap: state export loops forever"),
                ExpectAny(&["swap attack-swap refused", "swap attack-swap: error"]),
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Send("ticker 3 10\r"),
                ExpectAll(&["tick 1/3", "tick 2/3", "tick 3/3"]),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 14: a hot swap whose state import (in the new version) loops forever; the
        // old version serves on.
        attack(
            "attack-swap-import-loops",
            SWAP_IMPORT_LOOPS,
            &[
                Expect("attack-swap: variant 2 running"),
                Expect("qvq$ "),
                Send("swap attack-swap\r"),
                Expect("attack-swap: state import loops forever"),
                Expect("swap attack-swap refused"),
                Send("domains\r"),
                Expect("attack-swap  0.2.0    running"),
                Expect("qvq$ "),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 14 (found here): log lines with embedded line breaks forge kernel lines.
        attack(
            "attack-log-forgery",
            LOG_FORGERY,
            &[
                Expect("attack-inputs: forgery done"),
                Expect("domain attack-inputs crashed: panicked"),
                Expect("ended: its domain crashed"),
                Check(no_forged_line),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 15 (found by the red team): a call made with almost no stack left would
        // overflow in the callee, which was crashed for it. The callee's adapter now
        // refuses a call that starts with less than CALL_STACK (10 KiB): the callee never
        // runs, is not crashed and counts nothing.
        attack(
            "attack-stack-call-with-no-stack-left",
            STACK_CALL,
            &[
                Expect("attack-stack: stack limit found at"),
                Expect("attack-stack: hello.served() before: Ok("),
                Expect("attack-stack: hello.ping(41) with 8192 bytes of stack left: Err(StackExhausted)"),
                Expect("attack-stack: hello.ping(41) with 6144 bytes of stack left: Err(StackExhausted)"),
                Expect("attack-stack: hello.ping(41) with 4096 bytes of stack left: Err(StackExhausted)"),
                Expect("attack-stack: hello.ping(41) with 3072 bytes of stack left: Err(StackExhausted)"),
                Expect("attack-stack: hello.ping(41) with 2048 bytes of stack left: Err(StackExhausted)"),
                Expect("attack-stack: hello.served() after: Ok("),
                Expect("attack-stack: 5 of 5 calls refused with StackExhausted"),
                Expect("attack-stack: hello.ping(41) with the whole stack: Ok(42)"),
                Check(served_unchanged),
                Check(hello_never_crashed),
                Send("hello served\r"),
                Expect("hello served: "),
                Expect("qvq$ "),
                Check(hello_never_crashed),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 15: a kernel service called with almost no stack left overflowed inside the
        // kernel (a kernel panic, with a lock held). A service now first checks for
        // SERVICE_STACK (6 KiB) and otherwise touches the guard page: the caller crashes
        // from a clean trap, nothing else does.
        attack(
            "attack-stack-service-with-no-stack-left",
            STACK_RREF,
            &[
                Expect("attack-stack: stack limit found at"),
                Expect("attack-stack: RRef::try_new (64 B, then 32 KiB) with 8192 bytes of stack left: returned 7"),
                Expect("attack-stack: RRef::try_new (64 B, then 32 KiB) with 3072 bytes of stack left: it must touch the guard page at"),
                Expect("domain attack-stack crashed: stack overflow"),
                Expect("domain attack-stack held"),
                Check(service_touched_the_guard_page),
                Send("hello sum\r"),
                Expect("hello sum 1..8: 36"),
                Check(hello_never_crashed),
            ],
        )
        .then(SHELL_ANSWERS),
        attack(
            "attack-stack-log-with-no-stack-left",
            STACK_LOG,
            &[
                Expect("attack-stack: stack limit found at"),
                Expect("attack-stack: log::write_str with 8192 bytes of stack left: returned 1"),
                Expect("attack-stack: log::write_str with 3072 bytes of stack left: it must touch the guard page at"),
                Expect("domain attack-stack crashed: stack overflow"),
                Expect("domain attack-stack held"),
                Check(service_touched_the_guard_page),
                Send("hello sum\r"),
                Expect("hello sum 1..8: 36"),
                Check(hello_never_crashed),
            ],
        )
        .then(SHELL_ANSWERS),
        // Class 7 (found by the red team): a call that loops forever but spends almost all
        // its time in the kernel's log path hid from the watchdog (which restarted its
        // count whenever another domain or the kernel was current). A call's CPU budget
        // now counts everything on its chain.
        attack(
            "attack-budget-loop-logging-in-a-call",
            BUDGET_LOGGING,
            &[
                Expect("domain attack-budget started: exports Relay"),
                Expect("qvq$ "),
                Send("relay panic\r"),
                Expect("attack-budget: looping forever in a call, logging"),
                Expect("attack-budget: still inside the call after 100 writes"),
                Expect("domain attack-budget crashed: a call ran past its CPU budget"),
                ExpectAll(&["relay: error: callee crashed", "domain attack-budget restarted: generation 2"]),
                Send("hello served\r"),
                Expect("hello served: "),
                Expect("qvq$ "),
            ],
        )
        .then(SHELL_ANSWERS),
        // Red team: an administrator (imports `Kernel`, as the shell does) hands the kernel
        // the same envelope from three threads at once (`Kernel::load_envelope`). Each load
        // checks the name and the exports, then instantiates, then installs: without
        // serialisation all pass the checks, and may get the same domain number.
        QemuTest {
            setup: crate::harness::case::Setup::AttackWithDiskWithout(LOAD_RACE, "relay"),
            ..attack(
                "attack-load-racing-loads-start-one-domain",
                LOAD_RACE,
                &[
                    ExpectWithin("attack-load: load race over: ", 60),
                    Expect("\n"),
                    Send("domains\r"),
                    Expect("qvq$ "),
                    Check(at_most_one_load),
                ],
            )
        }
        .then(SHELL_ANSWERS),
        // Class 7: the same, the loop calling hello (whose call count keeps moving) instead
        // of logging: the outer call is the one past its budget, and the one ended.
        attack(
            "attack-budget-colluding-pair",
            BUDGET_PINGING,
            &[
                Expect("domain attack-budget started: exports Relay"),
                Expect("qvq$ "),
                Send("relay panic\r"),
                Expect("attack-budget: looping forever in a call, calling hello.ping"),
                Expect("attack-budget: still inside the call after 10000 pings"),
                Expect("domain attack-budget crashed: a call ran past its CPU budget"),
                ExpectAll(&["relay: error: callee crashed", "domain attack-budget restarted: generation 2"]),
                Send("hello served\r"),
                Expect("hello served: "),
                Expect("qvq$ "),
                Check(hello_never_crashed),
            ],
        )
        .then(SHELL_ANSWERS),
    ]
}

const DEVICE_STEPS: &[Step] = &[
    Expect("attack-device: claims past the grant refused: 6 of 6"),
    Expect("attack-device: grant 0: "),
    Expect("attack-device: wait_irq on a grant without an interrupt returned false"),
    Expect("attack-device: read32(size-4) fine"),
    Expect("domain attack-device crashed: panicked: panicked at"),
    Expect("outside the granted"),
    Expect("domain attack-device held"),
];

trait Then {
    fn then(self, more: &'static [Step]) -> QemuTest;
}

impl Then for QemuTest {
    /// The same test with `more` steps after its own (leaked: tests live for the run).
    fn then(mut self, more: &'static [Step]) -> QemuTest {
        let steps: Vec<Step> = self.steps.iter().chain(more).copied().collect();
        self.steps = Box::leak(steps.into_boxed_slice());
        self
    }
}
