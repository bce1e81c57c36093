//! QEMU tests (rpi3) of missing or changed device-tree facts and bad initrd ranges: each
//! reported in one line, and the kernel boots on.

use crate::harness::case::{Expect, QemuTest, Send, Setup, RPI3};

pub fn cases() -> Vec<QemuTest> {
    vec![
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
                "&uart0 { /delete-property/ interrupt-parent; /delete-property/ interrupts; };\n&uart1 { /delete-property/ interrupt-parent; /delete-property/ interrupts; };\n&sdhci { /delete-property/ interrupt-parent; /delete-property/ interrupts; };\n/delete-node/ &intc;\n/delete-node/ &local_intc;\n/ { /delete-property/ interrupt-parent; /delete-node/ timer; };",
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
