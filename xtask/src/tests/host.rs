//! Host checks of `cargo xtask test`: the unit, property and compile-fail tests of the host
//! crates and of the domain workspace's trusted crates.

use crate::paths;
use crate::setup::cargo;
use std::path::Path;

/// Runs `cargo test` in `dir` with `args`; returns (passed, failed) from its summaries.
fn cargo_test(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> (usize, usize) {
    let mut cmd = cargo();
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
pub fn host_tests() -> (usize, usize) {
    println!("== host unit tests (cargo test) ==");
    // The signed-domain chain tests need a real domain ELF built for the kernel's target.
    let sample = match crate::domains::build_domain_elf("sample") {
        Ok(p) => p,
        Err(e) => {
            println!("{e}");
            return (0, 1);
        }
    };
    let root = paths::workspace_root();
    let (p1, f1) = cargo_test(&root, &["--workspace", "--exclude", "qvq-kernel"], &[("QVQ_SAMPLE_DOMAIN_ELF", &sample)]);
    // Host builds of the domain workspace (and trybuild's) go under the root target/.
    let host_dir = paths::domains_host_target_dir();
    let (p2, f2) = cargo_test(&paths::domains_dir(), &["--package", "qvq-interfaces"], &[("CARGO_TARGET_DIR", &host_dir)]);
    let (passed, failed) = (p1 + p2, f1 + f2);
    println!("host: {passed} passed, {failed} failed");
    (passed, failed)
}
