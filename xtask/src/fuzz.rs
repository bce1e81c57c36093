//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `fuzz/` (nightly), each from its seed
//! corpus (`fuzz/corpus/<target>/`, copied into `target/fuzz/corpus/<target>/` so fuzzing
//! never dirties the repository's seeds), and prints executions, coverage and crashes per
//! target. `--seed` regenerates the seed corpora from real artifacts (`fuzz::seeds`).
//! `cargo xtask test` calls [`smoke`] for a few seconds of each target.

mod seeds;

use crate::paths;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Seconds per target of the smoke run in `cargo xtask test`.
const SMOKE_SECONDS: u64 = 5;
/// libFuzzer's per-input time limit: an input slower than this is reported as a hang.
const INPUT_TIMEOUT_SECONDS: u64 = 20;
const HOW_TO_ENABLE: &str = "rustup toolchain install nightly && cargo install cargo-fuzz";

#[derive(clap::Args)]
pub struct Args {
    /// The target to fuzz (`cargo xtask fuzz --list` names them); all, one after another,
    /// if omitted.
    target: Option<String>,
    /// Seconds to fuzz each target (default 60, unless --runs is given).
    #[arg(long)]
    seconds: Option<u64>,
    /// Executions per target (e.g. 10000000); with --seconds, whichever comes first.
    #[arg(long)]
    runs: Option<u64>,
    /// Regenerate the seed corpora in fuzz/corpus/ from real artifacts (builds the sample
    /// and hello domains, signs them with fuzz/corpus-key.txt, packs initrds, encodes a
    /// host-link push) plus hand-made edge cases, instead of fuzzing.
    #[arg(long, conflicts_with_all = ["target", "seconds", "runs", "list"])]
    seed: bool,
    /// List the targets and exit.
    #[arg(long)]
    list: bool,
}

/// `fuzz/`.
pub fn fuzz_dir() -> PathBuf {
    paths::workspace_root().join("fuzz")
}

/// Where cargo-fuzz builds, the work corpora, crash artifacts and logs go.
fn work_dir() -> PathBuf {
    paths::workspace_root().join("target/fuzz")
}

/// The `[[bin]]` targets of `fuzz/Cargo.toml`, in file order.
pub fn targets() -> Result<Vec<String>, String> {
    let path = fuzz_dir().join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let bins = doc
        .get("bin")
        .and_then(|b| b.as_array())
        .ok_or(format!("{}: no [[bin]] targets", path.display()))?;
    bins.iter()
        .map(|b| {
            b.get("name")
                .and_then(|n| n.as_str())
                .map(String::from)
                .ok_or(format!("{}: a [[bin]] without a name", path.display()))
        })
        .collect()
}

/// `cargo +nightly ...`, with the variables of the stable cargo that runs xtask removed.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly");
    for var in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"] {
        cmd.env_remove(var);
    }
    cmd
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Why fuzzing cannot run here, if it cannot: no nightly toolchain, or no cargo-fuzz.
fn missing_tools() -> Option<&'static str> {
    if !succeeds(nightly_cargo().arg("--version")) {
        Some("no nightly toolchain (`cargo +nightly` fails)")
    } else if !succeeds(nightly_cargo().args(["fuzz", "--version"])) {
        Some("cargo-fuzz is not installed")
    } else {
        None
    }
}

/// One target's run, as libFuzzer reported it.
#[derive(Default)]
struct Report {
    target: String,
    executions: u64,
    exec_per_sec: u64,
    cov: u64,
    ft: u64,
    corpus: String,
    /// Seconds of fuzzing as libFuzzer counts them (else the whole run, with the build).
    seconds: f64,
    /// Reproducers libFuzzer wrote (crash, timeout, out-of-memory, leak).
    artifacts: Vec<String>,
    /// Exit status of cargo fuzz (false: failed, with or without an artifact).
    ok: bool,
    /// The last lines of output, shown when the run failed without an artifact.
    tail: Vec<String>,
}

impl Report {
    /// Reads one line of libFuzzer (or cargo) output.
    fn read(&mut self, line: &str) {
        let field = |key: &str| line.split_whitespace().skip_while(|w| *w != key).nth(1).map(str::to_string);
        if line.starts_with('#') && line.contains(" cov: ") {
            self.cov = field("cov:").and_then(|v| v.parse().ok()).unwrap_or(self.cov);
            self.ft = field("ft:").and_then(|v| v.parse().ok()).unwrap_or(self.ft);
            self.corpus = field("corp:").unwrap_or_default();
        }
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            self.executions = v.trim().parse().unwrap_or(0);
        }
        if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
            self.exec_per_sec = v.trim().parse().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Done ") {
            // "Done 235005 runs in 11 second(s)": the fuzzing time, without the build.
            let seconds = rest.split_whitespace().nth(3).and_then(|s| s.parse().ok());
            self.seconds = seconds.unwrap_or(self.seconds);
        }
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifacts.push(path.trim().to_string());
        }
        self.tail.push(line.to_string());
        if self.tail.len() > 30 {
            self.tail.remove(0);
        }
    }
}

/// Copies the seeds of `target` into its work corpus (new and changed files only).
fn work_corpus(target: &str) -> Result<(PathBuf, usize), String> {
    let seeds = fuzz_dir().join("corpus").join(target);
    let work = work_dir().join("corpus").join(target);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let mut copied = 0;
    if let Ok(dir) = std::fs::read_dir(&seeds) {
        for entry in dir.flatten() {
            let to = work.join(entry.file_name());
            std::fs::copy(entry.path(), &to).map_err(|e| format!("cannot copy {} to {}: {e}", entry.path().display(), to.display()))?;
            copied += 1;
        }
    }
    Ok((work, copied))
}

/// Runs cargo-fuzz on `target` for `seconds` and/or `runs` executions. `echo` shows cargo's
/// and libFuzzer's messages (not every new-coverage line) as they come.
fn run_target(target: &str, seconds: Option<u64>, runs: Option<u64>, echo: bool) -> Result<Report, String> {
    let (corpus, seeds) = work_corpus(target)?;
    if seeds == 0 && echo {
        println!("note: fuzz/corpus/{target}/ has no seeds: starting from an empty corpus");
    }
    let artifacts = work_dir().join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts).map_err(|e| format!("cannot create {}: {e}", artifacts.display()))?;
    let log_path = work_dir().join(format!("{target}.log"));
    let mut log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut cmd = nightly_cargo();
    cmd.args(["fuzz", "run", "--fuzz-dir"])
        .arg(fuzz_dir())
        .arg("--target-dir")
        .arg(work_dir().join("build"))
        .arg(target)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1");
    if let Some(s) = seconds {
        cmd.arg(format!("-max_total_time={s}"));
    }
    if let Some(r) = runs {
        cmd.arg(format!("-runs={r}"));
    }
    let dict = fuzz_dir().join("dict").join(format!("{target}.dict"));
    if dict.exists() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo +nightly fuzz: {e}"))?;
    let mut report = Report {
        target: target.to_string(),
        ..Report::default()
    };
    let stderr = child.stderr.take().expect("stderr is piped");
    for line in BufReader::new(stderr).lines() {
        let line = line.map_err(|e| format!("reading cargo fuzz's output: {e}"))?;
        let _ = writeln!(log, "{line}");
        report.read(&line);
        // Not every new-coverage line, final statistic or recommended dictionary entry.
        let quiet = (line.starts_with('#') && !line.contains("pulse") && !line.contains("DONE")) || line.starts_with("stat::") || line.starts_with('"');
        if echo && !quiet {
            println!("{line}");
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for cargo fuzz: {e}"))?;
    if report.seconds == 0.0 {
        report.seconds = start.elapsed().as_secs_f64();
    }
    report.ok = status.success() && report.artifacts.is_empty();
    if !report.ok && report.artifacts.is_empty() {
        report.tail.push(format!("(full log: {})", log_path.display()));
    }
    Ok(report)
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<14} {:>12} {:>9} {:>6} {:>7} {:>14} {:>8}  result",
        "target", "executions", "exec/s", "cov", "ft", "corpus", "time"
    );
    for r in reports {
        let result = match (r.ok, r.artifacts.len()) {
            (true, _) => "0 crashes".to_string(),
            (false, 0) => "FAILED (no reproducer)".to_string(),
            (false, n) => format!("{n} CRASH{}", if n == 1 { "" } else { "ES" }),
        };
        println!(
            "{:<14} {:>12} {:>9} {:>6} {:>7} {:>14} {:>7.0}s  {result}",
            r.target, r.executions, r.exec_per_sec, r.cov, r.ft, r.corpus, r.seconds
        );
    }
}

/// Tells how to reproduce each failure; true if there was none.
fn explain_failures(reports: &[Report]) -> bool {
    for r in reports.iter().filter(|r| !r.ok) {
        for a in &r.artifacts {
            println!("{}: reproducer {a}", r.target);
            println!(
                "  replay: cargo +nightly fuzz run --fuzz-dir fuzz {} {a}\n  keep it: fix the parser (with a test in its crate), then copy it to fuzz/corpus/{}/crash-<what>",
                r.target, r.target
            );
        }
        if r.artifacts.is_empty() {
            println!("{}: cargo fuzz failed:", r.target);
            for l in &r.tail {
                println!("  {l}");
            }
        }
    }
    reports.iter().all(|r| r.ok)
}

/// The `fuzz` command.
pub fn run(args: Args) -> Result<bool, String> {
    let all = targets()?;
    if args.list {
        for t in &all {
            println!("{t}");
        }
        return Ok(true);
    }
    if args.seed {
        crate::setup::ensure_rust_target()?;
        return seeds::write_all();
    }
    let chosen: Vec<String> = match &args.target {
        Some(t) if all.contains(t) => vec![t.clone()],
        Some(t) => return Err(format!("no fuzz target {t:?}; the targets are {}", all.join(", "))),
        None => all,
    };
    if !succeeds(nightly_cargo().arg("--version")) {
        return Err(format!("fuzzing needs a nightly toolchain: {HOW_TO_ENABLE}"));
    }
    if missing_tools().is_some() {
        eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz)");
        let status = crate::setup::cargo()
            .args(["install", "cargo-fuzz"])
            .status()
            .map_err(|e| format!("cannot run cargo install: {e}"))?;
        if !status.success() {
            return Err(format!("`cargo install cargo-fuzz` failed ({status})"));
        }
    }
    let seconds = args.seconds.or(if args.runs.is_none() { Some(60) } else { None });
    let mut reports = Vec::new();
    for t in &chosen {
        println!("== fuzzing {t} ==");
        reports.push(run_target(t, seconds, args.runs, true)?);
    }
    println!();
    print_table(&reports);
    Ok(explain_failures(&reports))
}

/// The smoke run of `cargo xtask test`: a few seconds of every target when nightly and
/// cargo-fuzz are present (each a test); otherwise says it skipped and how to enable it.
pub fn smoke() -> (usize, usize) {
    println!("== fuzz smoke (cargo +nightly fuzz run, {SMOKE_SECONDS} s per target) ==");
    if let Some(why) = missing_tools() {
        println!("SKIPPED fuzz smoke: {why}; to enable it: {HOW_TO_ENABLE}");
        return (0, 0);
    }
    let all = match targets() {
        Ok(t) => t,
        Err(e) => {
            println!("FAIL fuzz/targets: {e}");
            return (0, 1);
        }
    };
    // Build them all at once (cargo fuzz run would build them one by one).
    let start = Instant::now();
    let build = nightly_cargo()
        .args(["fuzz", "build", "--fuzz-dir"])
        .arg(fuzz_dir())
        .arg("--target-dir")
        .arg(work_dir().join("build"))
        .output();
    match build {
        Ok(o) if o.status.success() => println!("ok   fuzz/build ({:.1} s)", start.elapsed().as_secs_f32()),
        Ok(o) => {
            println!("FAIL fuzz/build: cargo +nightly fuzz build failed");
            print!("{}", String::from_utf8_lossy(&o.stderr));
            return (0, 1);
        }
        Err(e) => {
            println!("FAIL fuzz/build: cannot run cargo +nightly fuzz: {e}");
            return (0, 1);
        }
    }
    let mut reports = Vec::new();
    for t in &all {
        match run_target(t, Some(SMOKE_SECONDS), None, false) {
            Ok(r) => {
                let verdict = if r.ok { "ok  " } else { "FAIL" };
                println!(
                    "{verdict} fuzz/{t} ({} executions, cov {}, ft {}, {:.1} s)",
                    r.executions, r.cov, r.ft, r.seconds
                );
                reports.push(r);
            }
            Err(e) => {
                println!("FAIL fuzz/{t}: {e}");
                reports.push(Report {
                    target: t.clone(),
                    tail: vec![e],
                    ..Report::default()
                });
            }
        }
    }
    explain_failures(&reports);
    let passed = reports.iter().filter(|r| r.ok).count() + 1;
    (passed, reports.len() + 1 - passed)
}

/// Where the seed replay test of the fuzz crate builds (shared with the root workspace).
pub fn seed_test_target_dir() -> PathBuf {
    paths::workspace_root().join("target")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_are_read_from_the_fuzz_manifest() {
        let t = targets().unwrap();
        for name in ["envelope", "manifest", "elf", "verify", "initrd", "hostlink"] {
            assert!(t.iter().any(|x| x == name), "{name} missing from {t:?}");
        }
    }

    #[test]
    fn libfuzzer_output_is_read_into_the_report() {
        let mut r = Report::default();
        for line in [
            "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb",
            "#524288\tpulse  cov: 421 ft: 1337 corp: 120/9213b lim: 4096 exec/s: 174762 rss: 52Mb",
            "#600000\tDONE   cov: 423 ft: 1340 corp: 121/9300b lim: 4096 exec/s: 150000 rss: 52Mb",
            "stat::number_of_executed_units: 600000",
            "stat::average_exec_per_sec:     150000",
            "Done 600000 runs in 4 second(s)",
            "artifact_prefix='target/fuzz/artifacts/elf/'; Test unit written to target/fuzz/artifacts/elf/crash-0a1b",
        ] {
            r.read(line);
        }
        assert_eq!((r.executions, r.exec_per_sec, r.cov, r.ft), (600_000, 150_000, 423, 1340));
        assert_eq!(r.corpus, "121/9300b");
        assert_eq!(r.seconds, 4.0);
        assert_eq!(r.artifacts, ["target/fuzz/artifacts/elf/crash-0a1b"]);
    }

    #[test]
    fn fuzzing_works_on_a_copy_of_the_seeds() {
        let (work, copied) = work_corpus("manifest").unwrap();
        assert!(work.starts_with(paths::workspace_root().join("target")), "{}", work.display());
        let seeds: Vec<_> = std::fs::read_dir(fuzz_dir().join("corpus/manifest")).unwrap().flatten().collect();
        assert!(copied >= 3 && copied == seeds.len());
        for s in seeds {
            assert_eq!(std::fs::read(work.join(s.file_name())).unwrap(), std::fs::read(s.path()).unwrap());
        }
    }
}
