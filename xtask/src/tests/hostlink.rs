//! QEMU tests of swaps pushed from the host over the host link: the console driver
//! swapped while two printers run, bad and interrupted pushes, `cargo xtask swap`, and the
//! link as an attacker uses it (BEGIN floods on a small machine, a second transfer, the
//! retired downgrade flag), the FRESH flag, and `cargo xtask swap`'s checks before a push.

use crate::board::Board;
use crate::harness::case::{Check, Expect, ExpectAll, ExpectWithin, Link, Push, PushStep, QemuTest, Send, Setup, SwapCommand, BOTH};
use crate::swap::{Answer, Fault};
use pushlink::{Begin, Kind, CHUNK, FLAG_FRESH, MAX_ENVELOPE, RETIRED_FLAG_DOWNGRADE, WINDOW};
use std::path::Path;
use std::time::Duration;

const VIRT: &[Board] = &[Board::Virt];

pub fn cases() -> Vec<QemuTest> {
    vec![
        QemuTest {
            name: "swap-console-while-printing-loses-no-line",
            boards: BOTH,
            append: "",
            setup: Setup::HostLink,
            steps: &[
                Expect("push: listening for hot-swap pushes on the host link"),
                Expect("qvq$ "),
                // 1000 lines 10 ms apart: longer than the push takes on a loaded host (it
                // once outlasted 400 on rpi3, where the host link moves 12-20 KiB/s).
                Send("ticker 1000 10\r"),
                Expect("tick 1/1000"),
                Send("count 1000 10\r"),
                Expect("line 10/1000"),
                Push(PushStep {
                    domain: "console",
                    version: "0.4.0",
                    tamper: false,
                    fault: Fault::None,
                    swapped: true,
                    answer: "swapped console 0.1.0 -> 0.4.0 (a host push",
                }),
                // With the newline: the check below counts whole lines.
                ExpectAll(&["line 1000/1000\n", "tick 1000/1000\n"]),
                Check(every_numbered_line_exactly_once),
                Check(super::no_stranded_rref),
                Send("versions console\r"),
                Expect("console: running 0.4.0 from a host push"),
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
            name: "hostlink-begin-flood-on-128m-one-transfer-at-a-time",
            boards: VIRT,
            append: "",
            // The kernel heap is 1/16 of free RAM: about 7 MiB here, where two 4 MiB buffers
            // on the heap once ended in a kernel panic.
            setup: Setup::HostLinkRam("128M"),
            steps: &[
                Expect("push: listening for hot-swap pushes on the host link"),
                Expect("qvq$ "),
                Link(begins_during_a_transfer_are_refused),
                Expect("push: BEGIN for console refused: the transfer of hello is in progress"),
                ExpectWithin("push: transfer of hello interrupted: no frame for 3000 ms after 1024 of 4194304 bytes", 20),
                Link(buffers_are_freed_when_transfers_end),
                Push(PushStep {
                    domain: "hello",
                    version: "0.5.0",
                    tamper: false,
                    fault: Fault::None,
                    swapped: true,
                    answer: "swapped hello 0.1.0 -> 0.5.0 (a host push",
                }),
                Send("hello ping 7\r"),
                Expect("hello ping 7: 8"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "hostlink-refuses-the-downgrade-flag",
            boards: BOTH,
            append: "",
            setup: Setup::HostLink,
            steps: &[
                Expect("push: listening for hot-swap pushes on the host link"),
                Expect("qvq$ "),
                Send("swap hello\r"),
                Expect("swapped hello 0.1.0 -> 0.2.0 (hello-0.2.0.qvd"),
                Link(the_old_version_with_the_downgrade_flag_is_refused),
                Expect("push: BEGIN: the downgrade flag is refused: downgrades need a signed downgrade manifest"),
                Send("versions hello\r"),
                Expect("hello: running 0.2.0 from hello-0.2.0.qvd"),
                Send("hello ping 3\r"),
                Expect("hello ping 3: 4"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "hostlink-fresh-flag-discards-state-other-flags-refused",
            boards: BOTH,
            append: "",
            setup: Setup::HostLink,
            steps: &[
                Expect("push: listening for hot-swap pushes on the host link"),
                Expect("qvq$ "),
                Send("hello ping 1\r"),
                Expect("hello ping 1: 2"),
                Link(a_stateless_version_needs_the_fresh_flag),
                Expect("push: BEGIN: unknown flags 0x4 (this protocol defines only FRESH, 0x2"),
                Expect("push: BEGIN: unknown flags 0x80000000"),
                Expect("swapping (fresh start: no state handed over)"),
                Expect("swapped hello 0.1.0 -> 0.5.0 (a host push, key id "),
                Send("hello served\r"),
                Expect("hello served: 0 pings, answered by 0.5.0"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "hostlink-xtask-swap-checks-before-pushing",
            boards: BOTH,
            append: "",
            setup: Setup::HostLink,
            steps: &[
                Expect("push: listening for hot-swap pushes on the host link"),
                Expect("qvq$ "),
                Send("hello ping 1\r"),
                Expect("hello ping 1: 2"),
                Link(xtask_swap_stops_before_pushing),
                Check(nothing_was_pushed),
                Link(xtask_swap_pushes_an_envelope_signed_elsewhere),
                Expect("swapped hello 0.1.0 -> 0.6.0 (a host push, key id "),
                Expect("): 8 state bytes of type "),
                Send("hello served\r"),
                Expect("hello served: 1 pings, answered by 0.6.0"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "hostlink-window-reorder-duplicate-loss-overflow-version",
            boards: VIRT,
            append: "",
            setup: Setup::HostLink,
            steps: &[
                Expect("push: listening for hot-swap pushes on the host link (PCI 16550 at "),
                Expect(", interrupt-driven)"),
                Expect("qvq$ "),
                // Chunk 3 sent before chunk 2: both land in place, one transfer.
                Push(PushStep {
                    domain: "hello",
                    version: "0.5.0",
                    tamper: false,
                    fault: Fault::SwapChunks(2),
                    swapped: true,
                    answer: "swapped hello 0.1.0 -> 0.5.0 (a host push",
                }),
                Expect("push: chunk 2 is missing (chunk 3 came after it): resend"),
                // Chunk 4 twice: the copy is acknowledged and ignored.
                Push(PushStep {
                    domain: "hello",
                    version: "0.6.0",
                    tamper: false,
                    fault: Fault::DuplicateChunk(4),
                    swapped: true,
                    answer: "swapped hello 0.5.0 -> 0.6.0 (a host push",
                }),
                // Chunk 3 lost: the kernel asks for it once the next arrives; it is resent.
                Push(PushStep {
                    domain: "hello",
                    version: "0.7.0",
                    tamper: false,
                    fault: Fault::DropChunkOnce(3),
                    swapped: true,
                    answer: "swapped hello 0.6.0 -> 0.7.0 (a host push",
                }),
                Expect("push: chunk 3 is missing (chunk 4 came after it): resend"),
                // Chunk 1 damaged: NAKed, resent, while the window's later chunks go on.
                Push(PushStep {
                    domain: "hello",
                    version: "0.8.0",
                    tamper: false,
                    fault: Fault::CorruptChunkOnce(1),
                    swapped: true,
                    answer: "swapped hello 0.7.0 -> 0.8.0 (a host push",
                }),
                Expect("push: frame (kind 0x3, seq 1) failed its CRC-32: resend"),
                Link(a_hostile_host_past_the_window_or_of_another_version_is_refused),
                Expect("push: hello: chunk 16 is beyond the window (chunks 0 to 15 may be in flight, at most 16); transfer abandoned"),
                Expect("push: hello: chunk 0 carries 10 bytes, 1024 expected; transfer abandoned"),
                Expect("push: BEGIN: the host speaks host-link protocol 1, this kernel protocol 2"),
                Expect("push: BEGIN of host-link protocol 1: this kernel speaks protocol 2"),
                Send("hello ping 7\r"),
                Expect("hello ping 7: 8"),
                Send("versions hello\r"),
                Expect("hello: running 0.8.0 from a host push"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "hostlink-absent-without-the-feature",
            boards: VIRT,
            append: "",
            setup: Setup::NoReceiver,
            steps: &[
                Expect("push: this kernel has no host-link receiver (built without the `hostlink` feature)"),
                Expect("qvq$ "),
                Link(nothing_answers_on_the_link),
                Send("hello ping 1\r"),
                Expect("hello ping 1: 2"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
    ]
}

/// A kernel without the receiver leaves the second serial port alone: a QUERY goes
/// unanswered.
fn nothing_answers_on_the_link(_: Board, socket: &Path) -> Result<(), String> {
    let mut link = crate::swap::Link::connect(socket, Duration::from_secs(10))?;
    match link.query("hello") {
        Err(e) if e.contains("no answer from the kernel") => Ok(()),
        other => Err(format!("QUERY to a kernel without the receiver: expected no answer, got {other:?}")),
    }
}

/// A host that sends a chunk past the window, or of the wrong length, has its transfer
/// ended (its frames freed: the 4 MiB BEGINs that follow are accepted); a BEGIN of another
/// protocol version is refused by name, as is protocol 1's BEGIN kind.
fn a_hostile_host_past_the_window_or_of_another_version_is_refused(_: Board, socket: &Path) -> Result<(), String> {
    let mut link = crate::swap::Link::connect(socket, Duration::from_secs(10))?;
    if link.begin(&largest("hello"))? != WINDOW {
        return Err(format!("the kernel's window is not {WINDOW}"));
    }
    match link.chunk(WINDOW, &[0x5a; CHUNK], false) {
        Err(e) if e.contains(&format!("chunk {WINDOW} is beyond the window (chunks 0 to {} may be in flight", WINDOW - 1)) => {}
        other => return Err(format!("a chunk past the window: expected the transfer ended, got {other:?}")),
    }
    match link.end() {
        Err(e) if e.contains("END without a BEGIN") => {}
        other => return Err(format!("END after the overflow: expected no transfer, got {other:?}")),
    }
    link.begin(&largest("hello")).map_err(|e| format!("BEGIN after the overflow: {e}"))?;
    match link.chunk(0, &[0x5a; 10], false) {
        Err(e) if e.contains("chunk 0 carries 10 bytes, 1024 expected") => {}
        other => return Err(format!("a short chunk 0: expected the transfer ended, got {other:?}")),
    }
    match link.begin_as(1, &largest("hello")) {
        Err(e) if e.contains("the host speaks host-link protocol 1, this kernel protocol 2") => {}
        other => return Err(format!("a BEGIN claiming protocol 1: expected a refusal naming both versions, got {other:?}")),
    }
    link.send(Kind::BeginV1, 0, &[0; 16], false)?;
    match link.answer_nak()? {
        why if why.contains("BEGIN of host-link protocol 1: this kernel speaks protocol 2") => {}
        why => return Err(format!("protocol 1's BEGIN kind: expected a NAK naming both versions, got {why:?}")),
    }
    // Nothing was left behind: a whole transfer still goes through.
    match link.query("hello")?.as_deref() {
        Some("0.8.0") => Ok(()),
        other => Err(format!("QUERY hello after the refusals answered {other:?}, expected 0.8.0")),
    }
}

/// A 4 MiB BEGIN for `name` (the most a push may announce).
fn largest(name: &str) -> Begin<'_> {
    Begin {
        size: MAX_ENVELOPE as u32,
        crc: 0,
        flags: 0,
        name,
    }
}

/// One transfer at a time: with a 4 MiB transfer of hello in progress, more BEGINs (of any
/// name) are refused with the transfer's name, and the transfer itself goes on.
fn begins_during_a_transfer_are_refused(_: Board, socket: &Path) -> Result<(), String> {
    let mut link = crate::swap::Link::connect(socket, Duration::from_secs(10))?;
    link.begin(&largest("hello")).map_err(|e| format!("the first BEGIN: {e}"))?;
    for name in ["console", "hello", "shell", "relay", "hello", "console", "nosuch", "hello"] {
        match link.begin(&largest(name)) {
            Ok(_) => return Err(format!("a BEGIN for {name} was accepted while hello's transfer was in progress")),
            Err(e) if e.contains(&format!("BEGIN for {name} refused: the transfer of hello is in progress (0 of 4194304 bytes")) => {}
            Err(e) => return Err(format!("a BEGIN for {name} during a transfer: unexpected answer: {e}")),
        }
    }
    if link.chunk(0, &[0x5a; CHUNK], false)? != Answer::Ack(1) {
        return Err("the transfer in progress did not take its first chunk after the refused BEGINs".into());
    }
    match link.query("hello")?.as_deref() {
        Some("0.1.0") => Ok(()),
        other => Err(format!("QUERY hello during the transfer answered {other:?}, expected 0.1.0")),
    }
}

/// Each 4 MiB buffer returns to the pool when its transfer ends: 40 of them (160 MiB, more
/// than the machine has) are taken and released in turn without running out.
fn buffers_are_freed_when_transfers_end(_: Board, socket: &Path) -> Result<(), String> {
    let mut link = crate::swap::Link::connect(socket, Duration::from_secs(10))?;
    for i in 0..40 {
        link.begin(&largest("hello")).map_err(|e| format!("BEGIN {i}: {e}"))?;
        match link.end() {
            Err(e) if e.contains("END after 0 of 4194304 bytes") => {}
            other => return Err(format!("END {i} of an empty transfer: expected a NAK, got {other:?}")),
        }
    }
    Ok(())
}

/// The finding: the old signed hello 0.1.0, pushed with the downgrade flag, replaced 0.2.0.
/// Now that BEGIN is refused (so is one with an unknown flag), and without the flag the
/// swap refuses the older version, whose manifest is not signed as a downgrade.
fn the_old_version_with_the_downgrade_flag_is_refused(board: Board, socket: &Path) -> Result<(), String> {
    let (old, _) = crate::swap::signed_domain(board, "hello", Some("0.1.0"))?;
    let mut link = crate::swap::Link::connect(socket, Duration::from_secs(10))?;
    match link.push("hello", &old, RETIRED_FLAG_DOWNGRADE, Fault::None) {
        Err(e) if e.contains("the downgrade flag is refused: downgrades need a signed downgrade manifest") => {}
        other => return Err(format!("push of hello 0.1.0 with the downgrade flag: expected a refused BEGIN, got {other:?}")),
    }
    match link.push("hello", &old, 0x4, Fault::None) {
        Err(e) if e.contains("unknown flags 0x4") => {}
        other => return Err(format!("push with flag 0x4: expected a refused BEGIN, got {other:?}")),
    }
    match link.push("hello", &old, 0, Fault::None) {
        Ok((false, m))
            if m.contains(
                "swap hello refused: a host push is version 0.1.0, older than the running 0.2.0 (a downgrade needs a manifest signed with `downgrade = true`)",
            ) => {}
        other => return Err(format!("push of hello 0.1.0 over 0.2.0 without a flag: expected a refused swap, got {other:?}")),
    }
    match link.query("hello")?.as_deref() {
        Some("0.2.0") => Ok(()),
        other => Err(format!("after the refused downgrades, QUERY hello answered {other:?}, expected 0.2.0")),
    }
}

/// hello 0.1.0 keeps state, the fixture `swap-no-state` (signed as hello 0.5.0) keeps none:
/// pushed without a flag it is refused, naming `--fresh`; a FRESH BEGIN with any other bit
/// is refused; with FRESH alone it goes in, and the count starts from zero.
fn a_stateless_version_needs_the_fresh_flag(board: Board, socket: &Path) -> Result<(), String> {
    let (stateless, _) = crate::swap::signed_domain(board, "swap-no-state", Some("0.5.0"))?;
    let mut link = crate::swap::Link::connect(socket, Duration::from_secs(10))?;
    match link.push("hello", &stateless, 0, Fault::None) {
        Ok((false, m))
            if m.contains("swap hello refused: the running version keeps state ")
                && m.contains("and the new one takes none, so it would be lost; `cargo xtask swap hello --fresh` discards the state") => {}
        other => return Err(format!("push of a stateless hello without FRESH: expected a refused swap, got {other:?}")),
    }
    for (flags, unknown) in [
        (FLAG_FRESH | 0x4, "unknown flags 0x4 "),
        (FLAG_FRESH | 0x8000_0000, "unknown flags 0x80000000 "),
    ] {
        match link.push("hello", &stateless, flags, Fault::None) {
            Err(e) if e.contains(unknown) => {}
            other => return Err(format!("push with flags {flags:#x}: expected a refused BEGIN, got {other:?}")),
        }
    }
    match link.query("hello")?.as_deref() {
        Some("0.1.0") => {}
        other => return Err(format!("after the refusals QUERY hello answered {other:?}, expected 0.1.0")),
    }
    match link.push("hello", &stateless, FLAG_FRESH, Fault::None) {
        Ok((true, m))
            if m.contains("swapped hello 0.1.0 -> 0.5.0 (a host push") && m.contains("): fresh start: the old version's state was discarded; window ") => {}
        other => return Err(format!("push with FRESH: expected a swap with a fresh start, got {other:?}")),
    }
    Ok(())
}

/// `cargo xtask swap` stops before building or pushing for a name that does not run (a
/// crate that exists, `rogue`, is not in the recipe), and refuses an envelope of another
/// domain than the one named.
fn xtask_swap_stops_before_pushing(board: Board, socket: &Path) -> Result<(), String> {
    let records = crate::paths::out_dir(board).join("test-signed-versions");
    let options = crate::swap::SwapOptions {
        socket: Some(socket),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    match crate::swap::swap(board, "rogue", &options, &records) {
        Err(e) if e.contains("rogue is not running on the board") && e.contains("must be in the board recipe") && e.contains("Nothing was built or pushed") => {
        }
        other => return Err(format!("`xtask swap rogue`: expected the not-running hint, got {other:?}")),
    }
    // No build ran: it answered within the link's round trip.
    if started.elapsed() > Duration::from_secs(5) {
        return Err(format!("`xtask swap rogue` took {:?}: it built something before stopping", started.elapsed()));
    }
    if records.join("rogue").exists() {
        return Err("`xtask swap rogue` recorded a signed version".into());
    }
    let (hello, _) = crate::swap::signed_domain(board, "hello", Some("0.6.0"))?;
    let file = crate::paths::out_dir(board).join("test-envelope-hello.qvd");
    std::fs::write(&file, hello).map_err(|e| e.to_string())?;
    let options = crate::swap::SwapOptions {
        envelope: Some(&file),
        ..options
    };
    match crate::swap::swap(board, "console", &options, &records) {
        Err(e) if e.contains("it is an envelope of domain \"hello\" (version 0.6.0), not \"console\"") => Ok(()),
        other => Err(format!("`xtask swap console --envelope <hello>`: expected a wrong-name error, got {other:?}")),
    }
}

/// Neither refusal above reached the kernel.
fn nothing_was_pushed(t: &str) -> Result<(), String> {
    match t.find("push: receiving") {
        Some(at) => Err(format!("a transfer started: {}", t[at..].lines().next().unwrap_or(""))),
        None => Ok(()),
    }
}

/// `cargo xtask swap hello --envelope FILE` pushes the file as it is (hello 0.6.0, signed
/// by `xtask_swap_stops_before_pushing`).
fn xtask_swap_pushes_an_envelope_signed_elsewhere(board: Board, socket: &Path) -> Result<(), String> {
    let file = crate::paths::out_dir(board).join("test-envelope-hello.qvd");
    let records = crate::paths::out_dir(board).join("test-signed-versions");
    let options = crate::swap::SwapOptions {
        socket: Some(socket),
        envelope: Some(&file),
        ..Default::default()
    };
    match crate::swap::swap(board, "hello", &options, &records) {
        Ok(true) => Ok(()),
        other => Err(format!("`xtask swap hello --envelope {}`: expected a swap, got {other:?}", file.display())),
    }
}

/// `ticker 1000` and `count 1000` printed every numbered line exactly once, intact, and
/// the console swap happened while they were printing.
fn every_numbered_line_exactly_once(t: &str) -> Result<(), String> {
    const N: usize = 1000;
    // From the first numbered line (the boot log mentions the timer's tick).
    let t = &t[t.find(&format!("tick 1/{N}")).ok_or("no first tick")?..];
    for tag in ["tick", "line"] {
        let mentions = t.matches(&format!("{tag} ")).count();
        for i in 1..=N {
            let n = t.matches(&format!("{tag} {i}/{N}\n")).count();
            if n != 1 {
                return Err(format!("\"{tag} {i}/{N}\" appears {n} times"));
            }
        }
        if mentions != N {
            return Err(format!("{mentions} lines mention \"{tag} \", expected {N} (a line was cut or garbled)"));
        }
        let swap = t.find("swapped console").ok_or("no swap")?;
        let (first, last) = (t.find(&format!("{tag} 1/{N}\n")), t.find(&format!("{tag} {N}/{N}\n")));
        if !(first < Some(swap) && Some(swap) < last) {
            return Err(format!("the swap did not happen while the {tag} lines were printing"));
        }
    }
    Ok(())
}
