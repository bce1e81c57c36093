//! `cargo xtask test`: host checks, then QEMU boot tests on both boards. The last line
//! printed is `N passed, N failed`. The cases are here, one file per area; the machinery
//! that boots and talks to QEMU is `crate::harness` (`harness::case` for a case's steps).

mod attacks;
mod block;
mod boot;
mod crash;
mod devicetree;
mod domains;
mod files;
mod host;
mod hostlink;
mod newcomer;
mod peripherals;
mod policy;
mod swap;

use crate::board::Board;
use crate::harness::case::{run_qemu_test, Expect, QemuTest, Step};
use crate::image;
use std::time::Instant;

/// No domain freed a shared-heap block it did not own: the kernel's warning for an `RRef`
/// stranded in flight (sent, never claimed), which leaks it.
fn no_stranded_rref(transcript: &str) -> Result<(), String> {
    match transcript.lines().find(|l| l.contains("freed a shared-heap block it does not own")) {
        Some(line) => Err(format!("a shared-heap block was stranded: {line}")),
        None => Ok(()),
    }
}

const BANNER: Step = Expect("QvQ 0.1.0 - a language-isolated microkernel for AArch64");

/// Every QEMU test, by area (hot swap first: the longest and the newest).
fn qemu_tests() -> Vec<QemuTest> {
    [
        swap::cases(),
        hostlink::cases(),
        boot::cases(),
        domains::cases(),
        policy::cases(),
        crash::cases(),
        devicetree::cases(),
        attacks::cases(),
        block::cases(),
        files::cases(),
        peripherals::cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub fn run_all(filter: Option<&str>, qemu_only: bool) -> Result<bool, String> {
    crate::setup::ensure_rust_target()?;
    if !qemu_only {
        crate::setup::ensure_rust_components()?;
    }
    crate::setup::ensure_test_tools()?;
    // Failures are named again at the end: a transcript can be long, and CI keeps the tail.
    let (mut passed, mut failed, host_failures) = if qemu_only { (0, 0, Vec::new()) } else { host::host_tests() };
    let mut failed_names = Vec::new();

    for board in [Board::Virt, Board::Rpi3] {
        let tests: Vec<_> = qemu_tests()
            .into_iter()
            .filter(|t| t.boards.contains(&board) && filter.is_none_or(|f| t.name.contains(f)))
            .collect();
        if tests.is_empty() {
            continue;
        }
        println!("== QEMU tests on {} ==", board.name());
        let built = match image::build(board, image::Kernel::Selftest) {
            Ok(b) => b,
            Err(e) => {
                println!("build for {} failed: {e}", board.name());
                failed += tests.len();
                failed_names.push(format!("{} (all {} cases: the build failed)", board.name(), tests.len()));
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
                    failed_names.push(format!("{}/{}", board.name(), t.name));
                }
            }
        }
    }
    if filter.is_none_or(|f| "newcomer-counter-called-swapped-crashed".contains(f)) {
        let (p, f, names) = newcomer::run();
        passed += p;
        failed += f;
        failed_names.extend(names);
    }
    if !host_failures.is_empty() {
        println!("failed host checks: {}", host_failures.join(", "));
    }
    if !failed_names.is_empty() {
        println!("failed QEMU cases: {}", failed_names.join(", "));
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}
