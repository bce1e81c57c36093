//! QEMU tests of swaps pushed from the host over the host link: the console driver
//! swapped while two printers run, bad and interrupted pushes, `cargo xtask swap`.

use crate::harness::case::{Check, Expect, ExpectAll, ExpectWithin, Push, PushStep, QemuTest, Send, Setup, SwapCommand, BOTH};
use crate::swap::Fault;

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
    ]
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
