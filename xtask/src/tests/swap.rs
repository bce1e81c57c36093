//! QEMU tests of hot swap from the initrd: state kept, versions ordered, the drain limit,
//! 200 swaps under load, every refusal leaving the old version serving, and state never
//! dropped without `--fresh`.

use crate::harness::case::{Check, Expect, ExpectWithin, QemuTest, Send, Setup, BOTH};

pub fn cases() -> Vec<QemuTest> {
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
                Expect("): 8 state bytes of type "),
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
                Expect("swap hello refused: hello.qvd is version 0.1.0, older than the running 0.2.0 (a downgrade needs a manifest signed with `downgrade = true`)"),
                Send("swap hello 0.1.0 --downgrade\r"),
                Expect("usage: swap NAME [ENTRY] [--fresh]"),
                Send("swap hello 0.1.1\r"),
                Expect("swapped hello 0.2.0 -> 0.1.1 (hello-0.1.1.qvd"),
                Send("hello ping 3\r"),
                Expect("hello ping 3: 4"),
                Send("hello served\r"),
                Expect("hello served: 3 pings, answered by 0.1.1"),
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
                Expect("swapped hello 0.1.1 -> 0.2.0"),
                Send("swap nosuch\r"),
                Expect("swap nosuch refused: no running domain is named \"nosuch\""),
                Send("swap\r"),
                Expect("usage: swap NAME [ENTRY] [--fresh]"),
                Check(super::no_stranded_rref),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "swap-state-is-never-dropped-without-fresh",
            boards: BOTH,
            append: "",
            setup: Setup::SwapFixtures,
            steps: STATE_RULES,
            exit_status: 0,
        },
        QemuTest {
            name: "swap-200-times-while-threads-call-loses-no-call",
            boards: BOTH,
            append: "",
            setup: Setup::Standard,
            steps: &[
                Expect("qvq$ "),
                Send("swap-stress 200 hello-0.1.1.qvd hello-0.2.0.qvd\r"),
                ExpectWithin("swap-stress answers by version:", 240),
                Expect("swap-stress: 200 swaps, 0 refused; "),
                Expect(" naps, 0 errors, 0 wrong answers; served count matches\n"),
                Check(stress_answers_from_both_versions),
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
                // Kept entries are not verified at boot (hello.qvd boots): each says so, and
                // each bad one is refused with its reason when a swap asks for it (below).
                Expect("initrd: hello-badsig.qvd is hello 0.3.0, kept for swapping in (not verified yet"),
                Expect("initrd: hello-0.0.1.qvd is hello 0.0.1, kept for swapping in (not verified yet"),
                Expect("qvq$ "),
                // Warm-up: a refused candidate is loaded at a fresh address, and the page
                // tables that first map it stay (tables are never freed). From the second
                // time on, a refusal must give back every frame.
                Send("swap hello hello-initpanic\r"),
                Expect("swap hello refused: the new version's initialisation failed"),
                Send("swap hello hello-otherstate\r"),
                Expect("swap hello refused: state type mismatch"),
                Send("mem\r"),
                Expect("free frames ("),
                Expect(" KiB)"),
                Send("swap hello hello-badsig\r"),
                Expect("swap hello refused: hello-badsig.qvd: bad signature"),
                Send("swap hello hello-0.0.1\r"),
                Expect("swap hello refused: hello-0.0.1.qvd: version 0.0.1 is below the rollback floor 0.1.0"),
                Send("swap hello hello-revokedkey\r"),
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
                // A version signed with a rollback floor: once it ran, the versions below
                // its floor are refused, even one signed as a permitted downgrade.
                Send("swap hello hello-floor\r"),
                Expect("swapped hello 0.2.0 -> 0.3.0 (hello-floor.qvd"),
                Send("swap hello hello-0.1.1\r"),
                Expect("swap hello refused: hello-0.1.1.qvd: version 0.1.1 is below the rollback floor 0.3.0"),
                Send("hello ping 7\r"),
                Expect("hello ping 7: 8"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
    ]
}

/// The state hand-over rules: hello (state `HelloState`), hello-nostate 0.1.5 and 0.1.6
/// (none), hello-0.2.0 (`HelloState`), hello-otherstate 0.3.0 (`HelloCounters`). Every swap
/// where one side keeps state and the other does not, or the types differ, is refused
/// (the running version keeps serving, its count intact) until asked with `--fresh`.
const STATE_RULES: &[crate::harness::case::Step] = &[
    Expect("qvq$ "),
    Send("hello ping 1\r"),
    Expect("hello ping 1: 2"),
    Send("hello ping 2\r"),
    Expect("hello ping 2: 3"),
    // Keeps state -> keeps none: refused, then a fresh start.
    Send("swap hello hello-nostate\r"),
    Expect("swap hello refused: the running version keeps state "),
    Expect(" and the new one takes none, so it would be lost; `swap hello hello-nostate --fresh` discards the state\n"),
    Send("hello served\r"),
    Expect("hello served: 2 pings, answered by 0.1.0"),
    Send("swap hello hello-nostate --fresh\r"),
    Expect("swapped hello 0.1.0 -> 0.1.5 (hello-nostate.qvd, key id "),
    Expect("): fresh start: the old version's state was discarded; window "),
    Send("hello served\r"),
    Expect("hello served: 0 pings, answered by 0.1.5"),
    Send("hello ping 3\r"),
    Expect("hello ping 3: 4"),
    // Neither keeps state: allowed without --fresh, and the log says so.
    Send("swap hello hello-nostate-0.1.6\r"),
    Expect("swapped hello 0.1.5 -> 0.1.6 (hello-nostate-0.1.6.qvd, key id "),
    Expect("): no state (neither version keeps any); window "),
    Send("hello ping 4\r"),
    Expect("hello ping 4: 5"),
    Send("hello ping 5\r"),
    Expect("hello ping 5: 6"),
    // Keeps none -> keeps state: refused, the old version serves on with its count.
    Send("swap hello hello-0.2.0\r"),
    Expect("swap hello refused: the running version keeps no state and the new one takes state "),
    Expect(", so it would start from zero; `swap hello hello-0.2.0 --fresh` starts it fresh\n"),
    Send("hello served\r"),
    Expect("hello served: 2 pings, answered by 0.1.6"),
    Send("versions hello\r"),
    Expect("hello: running 0.1.6 from hello-nostate-0.1.6.qvd"),
    Send("swap hello --fresh hello-0.2.0\r"),
    Expect("swapped hello 0.1.6 -> 0.2.0 (hello-0.2.0.qvd, key id "),
    Expect("): fresh start: the old version kept no state; window "),
    Send("hello ping 6\r"),
    Expect("hello ping 6: 7"),
    // Another state type: refused, then a fresh start.
    Send("swap hello hello-otherstate\r"),
    Expect("swap hello refused: state type mismatch: the running version hands over state "),
    Expect("; `swap hello hello-otherstate --fresh` discards the state\n"),
    Send("hello served\r"),
    Expect("hello served: 1 pings, answered by 0.2.0"),
    Send("swap hello hello-otherstate --fresh\r"),
    Expect("swapped hello 0.2.0 -> 0.3.0 (hello-otherstate.qvd, key id "),
    Expect("): fresh start: the old version's state was discarded; window "),
    Send("hello ping 7\r"),
    Expect("hello ping 7: 8"),
    Check(every_swap_line_says_what_was_handed_over),
    Send("poweroff\r"),
    Expect("power off (status 0)"),
];

/// Every `swapped` log line names what was handed over, and no refused swap left a
/// `swapped` line behind.
fn every_swap_line_says_what_was_handed_over(t: &str) -> Result<(), String> {
    let says = |l: &str| {
        l.contains("): fresh start: ")
            || l.contains("): no state (neither version keeps any); ")
            || (l.contains(" state bytes of type ") && !l.contains("): 0 state bytes"))
    };
    let lines: Vec<&str> = t.lines().filter(|l| l.contains("swapped hello ")).collect();
    if let Some(l) = lines.iter().find(|l| !says(l)) {
        return Err(format!("a swap line does not say what was handed over: {l}"));
    }
    // Four swaps, each on the log and in the shell's answer.
    if lines.len() != 8 {
        return Err(format!(
            "expected 8 `swapped hello` lines (4 swaps, log and answer), found {}: {lines:?}",
            lines.len()
        ));
    }
    Ok(())
}

/// `swap-stress`: callers got answers from both versions.
fn stress_answers_from_both_versions(t: &str) -> Result<(), String> {
    let line = t
        .lines()
        .rev()
        .find(|l| l.starts_with("swap-stress answers by version:"))
        .ok_or("no swap-stress summary")?;
    if let Some(l) = t.lines().find(|l| l.contains("the callers made no call")) {
        return Err(l.into());
    }
    // The napper sleeps inside hello, so swaps must find calls in flight and drain them.
    if !t.lines().any(|l| l.contains("swapped hello") && !l.contains("(0 calls drained")) {
        return Err("no swap drained a call in flight".into());
    }
    let by_version = line.split("answers by version:").nth(1).ok_or("no answers by version")?;
    let counts: Vec<u64> = by_version.split_whitespace().skip(1).step_by(2).filter_map(|n| n.parse().ok()).collect();
    // Callers may also see the booted 0.1.0 before the first swap.
    if counts.len() >= 2 && counts.iter().all(|c| *c > 0) && by_version.contains("0.1.1:") && by_version.contains("0.2.0:") {
        Ok(())
    } else {
        Err(format!("expected answers from both 0.1.1 and 0.2.0: {line}"))
    }
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
