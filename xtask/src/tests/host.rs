//! Host checks of `cargo xtask test`: the unit, property and compile-fail tests of the host
//! crates and of the domain workspace's trusted crates, the fuzz seeds replayed through
//! their checks, then clippy (`-D warnings`) over every workspace and `cargo fmt --check`
//! (each lint or format check counts as one test), and the fuzz smoke (`crate::fuzz`).

use crate::board::Board;
use crate::paths;
use crate::setup::{cargo, KERNEL_TARGET};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
        if let Some(name) = line.strip_prefix("test ").and_then(|l| l.strip_suffix(" ... FAILED")) {
            println!("FAIL host/{name}");
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
/// Returns (passed, failed, the names of the groups that failed).
pub fn host_tests() -> (usize, usize, Vec<String>) {
    println!("== host unit tests (cargo test) ==");
    // The signed-domain chain tests need a real domain ELF built for the kernel's target.
    let sample = match crate::domains::build_fixture_elf("sample") {
        Ok(p) => p,
        Err(e) => {
            println!("{e}");
            return (0, 1, vec!["host/sample-domain-build".into()]);
        }
    };
    let root = paths::workspace_root();
    let (p1, f1) = cargo_test(&root, &["--workspace", "--exclude", "qvq-kernel"], &[("QVQ_SAMPLE_DOMAIN_ELF", &sample)]);
    // Host builds of the domain workspace (and trybuild's) go under the root target/.
    let host_dir = paths::domains_host_target_dir();
    // The trusted crates: the IDL's compile-fail tests, and the runtime against a fake
    // kernel whose devices the tests play (hostile virtqueue answers).
    let (p2, f2) = cargo_test(
        &paths::domains_dir(),
        &["--package", "qvq-interfaces", "--package", "qvq-runtime"],
        &[("CARGO_TARGET_DIR", &host_dir)],
    );
    // The fuzz targets' checks over every seed in fuzz/corpus/ (stable, no libFuzzer).
    let fuzz = crate::fuzz::fuzz_dir();
    let (p5, f5) = cargo_test(&fuzz, &["--no-default-features"], &[("CARGO_TARGET_DIR", &crate::fuzz::seed_test_target_dir())]);
    let (p3, f3) = lint_checks();
    let (p4, f4) = layer_check();
    let (p6, f6) = crate::fuzz::smoke();
    let (passed, failed) = (p1 + p2 + p3 + p4 + p5 + p6, f1 + f2 + f3 + f4 + f5 + f6);
    println!("host: {passed} passed, {failed} failed");
    let groups = [
        (f1, "host crates' cargo test"),
        (f2, "trusted domain crates' cargo test (qvq-interfaces, qvq-runtime)"),
        (f5, "fuzz seed replay"),
        (f3, "lints"),
        (f4, "kernel layers"),
        (f6, "fuzz smoke"),
    ];
    let names = groups
        .iter()
        .filter(|(f, _)| *f > 0)
        .map(|(f, what)| format!("{what} ({f} failed; FAIL lines above)"))
        .collect();
    (passed, failed, names)
}

/// One lint or format check: `cargo ARGS` in `dir` (with `env`) must succeed.
struct LintCheck {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, PathBuf)>,
}

impl LintCheck {
    fn new(name: &str, dir: &Path, args: &[&str]) -> LintCheck {
        LintCheck {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
        }
    }

    /// Clippy with `args`, every warning an error.
    fn clippy(name: &str, dir: &Path, args: &[&str]) -> LintCheck {
        let mut c = LintCheck::new(name, dir, &[&["clippy"], args, &["--", "-D", "warnings"]].concat());
        c.name = format!("clippy-{name}");
        c
    }

    /// Runs it; prints `ok` or `FAIL` with the tool's output. True if it passed.
    fn run(&self) -> bool {
        let start = Instant::now();
        let mut cmd = cargo();
        cmd.current_dir(&self.dir).args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        match cmd.output() {
            Ok(out) if out.status.success() => {
                println!("ok   host/{} ({:.1} s)", self.name, start.elapsed().as_secs_f32());
                true
            }
            Ok(out) => {
                println!("FAIL host/{}: `cargo {}` in {} failed", self.name, self.args.join(" "), self.dir.display());
                print!("{}", String::from_utf8_lossy(&out.stdout));
                print!("{}", String::from_utf8_lossy(&out.stderr));
                false
            }
            Err(e) => {
                println!("FAIL host/{}: cannot run cargo: {e}", self.name);
                false
            }
        }
    }
}

/// Clippy with `-D warnings` on the root workspace's host crates, on the kernel (each board,
/// with its self tests, as `test` builds it), on the domains (with their own link flags, for
/// the kernel's target) and on the interface crate's host tests; then `cargo fmt --check`
/// on both workspaces. Returns (passed, failed).
fn lint_checks() -> (usize, usize) {
    println!("== lints (cargo clippy -D warnings, cargo fmt --check) ==");
    let root = paths::workspace_root();
    let domains = paths::domains_dir();
    // Clippy compiles the domains too: not with a hostile cargo config.
    if let Err(why) = crate::safety::config::check(&domains, &root) {
        println!("FAIL host/lints: {why}");
        return (0, 1);
    }
    let mut checks = vec![LintCheck::clippy(
        "host-crates",
        &root,
        &["--workspace", "--exclude", "qvq-kernel", "--all-targets"],
    )];
    for board in [Board::Virt, Board::Rpi3] {
        // With and without the host-link receiver: both kinds of kernel ship.
        for (suffix, host_link) in [("", true), ("-no-hostlink", false)] {
            let features = crate::image::Kernel::Selftest.features(board, host_link);
            checks.push(LintCheck::clippy(
                &format!("kernel-{}{suffix}", board.name()),
                &root,
                &["--release", "--package", "qvq-kernel", "--target", KERNEL_TARGET, "--features", &features],
            ));
        }
    }
    // The domains are checked where they build (their link flags come from domains/.cargo).
    let domains_target = paths::domains_target_dir().display().to_string();
    checks.push(LintCheck::clippy(
        "domains",
        &domains,
        &["--workspace", "--release", "--target", KERNEL_TARGET, "--target-dir", &domains_target],
    ));
    let mut interfaces = LintCheck::clippy(
        "trusted-crates-host-tests",
        &domains,
        &["--package", "qvq-interfaces", "--package", "qvq-runtime", "--all-targets"],
    );
    interfaces.env.push(("CARGO_TARGET_DIR", paths::domains_host_target_dir()));
    checks.push(interfaces);
    let mut fuzz = LintCheck::clippy("fuzz", &root.join("fuzz"), &["--no-default-features", "--all-targets"]);
    fuzz.env.push(("CARGO_TARGET_DIR", crate::fuzz::seed_test_target_dir()));
    checks.push(fuzz);
    checks.push(LintCheck::new("fmt-root", &root, &["fmt", "--all", "--check"]));
    checks.push(LintCheck::new("fmt-fuzz", &root.join("fuzz"), &["fmt", "--all", "--check"]));
    checks.push(LintCheck::new("fmt-domains", &domains, &["fmt", "--all", "--check"]));
    let passed = checks.iter().filter(|c| c.run()).count();
    (passed, checks.len() - passed)
}

/// The kernel's layering (`layers.rs`): no import cycle between kernel subsystems, no kernel
/// file over the size limit. Counts as one test.
fn layer_check() -> (usize, usize) {
    let start = Instant::now();
    match crate::layers::check(&paths::workspace_root().join("kernel/src")) {
        Ok(()) => {
            println!("ok   host/kernel-layers ({:.1} s)", start.elapsed().as_secs_f32());
            (1, 0)
        }
        Err(why) => {
            println!("FAIL host/kernel-layers: {why}");
            (0, 1)
        }
    }
}
