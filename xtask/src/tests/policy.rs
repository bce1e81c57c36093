//! QEMU tests of the trust policy (keys/policy/, kernel/src/domain/policy.rs): each rule
//! refuses a signed domain with its own reason (imports included), and an interface has
//! one exporter.

use crate::harness::case::{Expect, ExpectAll, QemuTest, Send, Setup, BOTH};

pub fn cases() -> Vec<QemuTest> {
    vec![
        QemuTest {
            name: "policy-refuses-each-rule-with-its-reason",
            boards: BOTH,
            append: "",
            setup: Setup::PolicyInitrd,
            steps: &[
                Expect("key policies"),
                // outside.qvd (signed as console) and limited-export.qvd (hello 9.0.0) are
                // not what boots (console.qvd and hello.qvd are pinned): kept, not verified
                // at boot; each is refused by its key's policy when a swap asks for it (below).
                ExpectAll(&[
                    "initrd: outside.qvd is console 0.1.0, kept for swapping in (not verified yet",
                    "initrd: limited-export.qvd is hello 9.0.0, kept for swapping in (not verified yet",
                ]),
                Expect(
                    "domain unchecked rejected: its manifest says the build did not check it as safe Rust, and its key's policy does not allow unchecked domains",
                ),
                Expect("domain timer rejected: device \"arm,armv8-timer\" is the kernel's timer, which the kernel keeps; it is never granted"),
                Expect("domain intc rejected: device \""),
                Expect("is the interrupt controller, which the kernel keeps; it is never granted"),
                Expect("domain kexport rejected: exports Kernel, which the kernel also exports; each interface has one exporter"),
                Expect("qvq$ "),
                Send("hello ping 9\r"),
                Expect("hello ping 9: 10"),
                Send("domains\r"),
                Expect("console      0.1.0    running"),
                Send("swap console outside\r"),
                Expect("swap console refused: outside.qvd: its key's policy does not allow the name \"console\""),
                Send("swap hello limited-export\r"),
                Expect("swap hello refused: limited-export.qvd: its key's policy does not allow exporting Console"),
                Send("hello ping 9\r"),
                Expect("hello ping 9: 10"),
                Send("poweroff\r"),
                Expect("power off (status 0)"),
            ],
            exit_status: 0,
        },
        QemuTest {
            // A red-team finding: key policies once said nothing about imports, and a
            // domain signed by the limited key imported `Kernel`, crashed every other
            // domain and powered the machine off.
            name: "policy-refuses-a-kernel-import-the-key-may-not-make",
            boards: BOTH,
            append: "qvq.test=boot",
            setup: Setup::LimitedKeyImportsKernel,
            steps: &[
                Expect("domain hello rejected: its key's policy does not allow importing Kernel"),
                Expect("domain console started"),
                Expect("selftest boot: PASS"),
            ],
            exit_status: 0,
        },
        QemuTest {
            name: "a-second-exporter-of-an-interface-is-refused",
            boards: BOTH,
            append: "qvq.test=boot",
            setup: Setup::SecondExporter,
            steps: &[
                ExpectAll(&[
                    "domain console rejected: exports Console, which shadow-console also exports; each interface has one exporter, so neither starts",
                    "domain shadow-console rejected: exports Console, which console also exports; each interface has one exporter, so neither starts",
                ]),
                Expect("domain shell starts without Console"),
                Expect("domain shell rejected: initialisation failed"),
                Expect("selftest boot: PASS"),
            ],
            exit_status: 0,
        },
    ]
}
