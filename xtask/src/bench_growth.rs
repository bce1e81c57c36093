//! The growth tables of `cargo xtask bench`: how each cost grows with its work. Boots the
//! selftest kernel under `-icount shift=0,sleep=off` (guest instructions) on initrds made
//! here from one generated domain (`domains/growth`, signed under many names):
//!
//! - `qvq.test=bench-growth` on the growth initrd: proxy call against scalar argument
//!   count, hot-swap window against state size, verification against ELF size;
//! - `qvq.test=bench-boot` on initrds of 4, 16 and 64 generated domains: reset to all
//!   domains started, and verify + load, against the number of domains.
//!
//! Each table gets a one-line verdict, and the bench fails when a growth is clearly
//! super-linear ([`super_linear`] says what that means).

use crate::board::Board;
use crate::domains::{self, build_domain_elf, RecipeEntry};
use crate::harness::{Boot, Session};
use crate::image::{self, Built};
use std::path::PathBuf;
use std::time::Duration;

/// State sizes of the `growth-s<bytes>` domains, in minor-version order (kernel/src/bench_growth.rs).
pub const STATE_SIZES: [u64; 5] = [8, 64, 512, 4096, 65536];
/// KiB appended to the growth ELF for the verification table (kernel/src/bench_growth.rs).
pub const PADS_KIB: [u64; 5] = [0, 16, 64, 256, 1024];
/// Numbers of generated domains the boot table boots.
pub const DOMAIN_COUNTS: [u64; 3] = [4, 16, 64];
/// Scalar argument counts of `Growth::args*`.
pub const ARGS: [u64; 5] = [0, 1, 2, 4, 6];

/// The growth ELF signed as domain `name`, version `0.<variant>.<patch>`: the growth
/// domain's manifest with its export kept only for variant 0 (the `Growth` exporter).
fn growth_envelope(elf: &[u8], name: &str, variant: u32, patch: u32, downgrade: bool) -> Result<Vec<u8>, String> {
    let entry = RecipeEntry {
        name: "growth".into(),
        version: Some(format!("0.{variant}.{patch}")),
        downgrade,
        restart: Some("restart".into()),
        ..Default::default()
    };
    let mut m = domains::manifest("growth", Some(&entry), true)?;
    m.name = name.into();
    if variant != 0 {
        m.exports.clear();
    }
    if variant > 5 {
        // The idle domains of the boot table keep nothing: the smallest heap.
        m.heap_limit = 4096;
    }
    qvq_sign::sign(&m, elf, &qvq_sign::read_signing_key(&image::ensure_dev_key()?)?)
}

fn growth_elf() -> Result<Vec<u8>, String> {
    std::fs::read(build_domain_elf("growth")?).map_err(|e| e.to_string())
}

/// The growth initrd: `growth` (exports `Growth`), `growth-s<bytes>` at 0.k.1 with 0.k.2
/// and 0.k.0 (a permitted downgrade) kept for the swaps, and `growth-pad-<KiB>.qvd`: the
/// growth ELF with that many bytes appended (no segment loads them; the signature's
/// SHA-256 covers them), kept as old versions of `growth` that never boot.
pub fn growth_entries() -> Result<Vec<(String, Vec<u8>)>, String> {
    let elf = growth_elf()?;
    let mut entries = vec![("growth.qvd".to_string(), growth_envelope(&elf, "growth", 0, 1, false)?)];
    for (k, bytes) in STATE_SIZES.iter().enumerate() {
        let (name, variant) = (format!("growth-s{bytes}"), k as u32 + 1);
        entries.push((format!("{name}.qvd"), growth_envelope(&elf, &name, variant, 1, false)?));
        entries.push((format!("{name}-0.{variant}.2.qvd"), growth_envelope(&elf, &name, variant, 2, false)?));
        entries.push((format!("{name}-0.{variant}.0.qvd"), growth_envelope(&elf, &name, variant, 0, true)?));
    }
    for kib in PADS_KIB {
        let mut padded = elf.clone();
        padded.extend((0..kib * 1024).map(|i| (i * 7 + 1) as u8));
        entries.push((format!("growth-pad-{kib}.qvd"), growth_envelope(&padded, "growth", 0, 0, false)?));
    }
    Ok(entries)
}

/// `count` generated domains (`gen-<i>`, the growth ELF doing nothing), and nothing else.
pub fn generated_entries(count: u64) -> Result<Vec<(String, Vec<u8>)>, String> {
    let elf = growth_elf()?;
    (0..count)
        .map(|i| {
            let name = format!("gen-{i:02}");
            Ok((format!("{name}.qvd"), growth_envelope(&elf, &name, 9, 0, false)?))
        })
        .collect()
}

/// Boots `initrd` with `qvq.test=<test>`; returns the `growth: NAME: N` lines.
fn boot_once(board: Board, built: &Built, initrd: PathBuf, test: &str) -> Result<Vec<(String, u64)>, String> {
    let mut boot = Boot::from_build(board, built);
    boot.initrd = Some(initrd);
    boot.append = format!("qvq.test={test}");
    boot.extra = ["-icount", "shift=0,sleep=off"].map(String::from).to_vec();
    let mut s = Session::start(&boot)?;
    s.expect("power off", Duration::from_secs(300))
        .map_err(|e| format!("{e}\n{}", s.transcript()))?;
    let status = s.wait_exit(Duration::from_secs(30))?;
    if status != 0 {
        return Err(format!("{test} exited with {status}\n{}", s.transcript()));
    }
    Ok(parse(&s.transcript()))
}

/// The `growth: NAME: N` lines of a transcript.
pub fn parse(transcript: &str) -> Vec<(String, u64)> {
    transcript
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("growth: "))
        .filter_map(|l| {
            let (name, n) = l.rsplit_once(": ")?;
            Some((name.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

fn get(rows: &[(String, u64)], name: &str) -> Result<u64, String> {
    rows.iter()
        .find(|r| r.0 == name)
        .map(|r| r.1)
        .ok_or_else(|| format!("the growth bench printed no `{name}`"))
}

/// Tolerance of [`super_linear`]: a step may grow the cost 25 % more than it grows the work.
const TOLERANCE: f64 = 1.25;

/// The first step `(x, cost)` to the next at which the cost grows clearly faster than the
/// work, if any. The criterion: between consecutive rows, the cost's ratio may be at most
/// 1.25 × the work's ratio, the work counted as x + 1 (so 0 arguments is 1 unit of work:
/// the call itself). A cost a + b·x that is linear (or flatter) with a fixed part a at
/// least its per-unit part b never exceeds the work's ratio, and even with no fixed part
/// at all it stays within the tolerance for the steps used here (×4 and ×8 and for ELF
/// sizes ×1.5 to ×4); a quadratic cost exceeds it by the step's ratio itself once the
/// growth dominates (×4 → ×16).
pub fn super_linear(points: &[(u64, u64)]) -> Option<String> {
    points.windows(2).find_map(|w| {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        let work = (x1 + 1) as f64 / (x0 + 1) as f64;
        let cost = y1 as f64 / y0.max(1) as f64;
        (cost > work * TOLERANCE).then(|| format!("from {x0} to {x1} the cost grew ×{cost:.2}, the work ×{work:.2}"))
    })
}

/// One-line verdict: the slope per unit from the first row to the last, the ratio of the
/// last cost to the first, and whether the growth is within the criterion.
fn verdict(table: &str, unit: &str, points: &[(u64, u64)]) -> (String, bool) {
    let (first, last) = (points[0], points[points.len() - 1]);
    let slope = (last.1 as f64 - first.1 as f64) / (last.0 - first.0) as f64;
    let ratio = last.1 as f64 / first.1.max(1) as f64;
    let work = (last.0 + 1) as f64 / (first.0 + 1) as f64;
    match super_linear(points) {
        None => (
            format!("verdict ({table}): {slope:+.3} per {unit}; largest/smallest ×{ratio:.2} for ×{work:.0} the work: no faster than linear"),
            true,
        ),
        Some(why) => (format!("verdict ({table}): SUPER-LINEAR: {why} (slope {slope:+.3} per {unit})"), false),
    }
}

/// Boots the growth initrd and the generated-domain initrds, prints the four tables with
/// their verdicts; false if a growth is super-linear.
pub fn bench(board: Board, built: &Built) -> Result<bool, String> {
    let out = crate::paths::out_dir(board);
    let growth_initrd = out.join("initrd-growth.img");
    image::write_initrd(&growth_initrd, &growth_entries()?)?;
    let rows = boot_once(board, built, growth_initrd, "bench-growth")?;
    let mut boots = Vec::new();
    for n in DOMAIN_COUNTS {
        let path = out.join(format!("initrd-gen{n}.img"));
        image::write_initrd(&path, &generated_entries(n)?)?;
        let r = boot_once(board, built, path, "bench-boot")?;
        if get(&r, "domains started")? != n {
            return Err(format!("bench-boot with {n} generated domains started {}", get(&r, "domains started")?));
        }
        boots.push((n, r));
    }
    let machine = match board {
        Board::Virt => "QEMU virt (Cortex-A53 model)",
        Board::Rpi3 => "QEMU raspi3b (Cortex-A53 model)",
    };
    report(
        &rows,
        &boots,
        growth_elf()?.len() as u64,
        &format!("{machine}, guest instructions, -icount shift=0"),
    )
}

/// `cargo xtask bench --growth`: the growth tables alone.
pub fn bench_only(board: Board) -> Result<bool, String> {
    crate::setup::ensure_rust_target()?;
    crate::setup::ensure_test_tools()?;
    let built = image::build(board, image::Kernel::Selftest)?;
    bench(board, &built)
}

/// Prints the tables from the figures (`rows`: bench-growth; `boots`: bench-boot per count).
pub fn report(rows: &[(String, u64)], boots: &[(u64, Vec<(String, u64)>)], elf_bytes: u64, what: &str) -> Result<bool, String> {
    let mut ok = true;
    let mut judge = |table: &str, unit: &str, points: &[(u64, u64)]| {
        let (line, good) = verdict(table, unit, points);
        println!();
        println!("{line}");
        ok &= good;
    };
    println!();
    println!("How costs grow ({what}):");
    println!();
    println!("| scalar arguments | indirect call | through the proxy | proxy overhead |");
    println!("|---:|---:|---:|---:|");
    let mut points = Vec::new();
    for a in ARGS {
        let (i, p) = (get(rows, &format!("indirect call, {a} args"))?, get(rows, &format!("proxy call, {a} args"))?);
        println!("| {a} | {i} | {p} | {} |", p as i64 - i as i64);
        points.push((a, p));
    }
    judge("proxy call against arguments", "argument", &points);
    println!();
    println!("| state bytes | swap window | per state byte |");
    println!("|---:|---:|---:|");
    let mut points = Vec::new();
    for b in STATE_SIZES {
        let w = get(rows, &format!("swap window, {b} state bytes"))?;
        println!("| {b} | {w} | {:.2} |", w as f64 / b as f64);
        points.push((b, w));
    }
    judge("swap window against state size", "state byte", &points);
    println!();
    println!("| ELF bytes | verify | per ELF byte |");
    println!("|---:|---:|---:|");
    let mut points = Vec::new();
    for kib in PADS_KIB {
        let (bytes, v) = (elf_bytes + kib * 1024, get(rows, &format!("verify, {kib} KiB appended"))?);
        println!("| {bytes} | {v} | {:.2} |", v as f64 / bytes as f64);
        points.push((bytes, v));
    }
    judge("verification against ELF size", "ELF byte", &points);
    println!();
    println!("| domains | reset to all started | verify, all | load, all | verify + load per domain |");
    println!("|---:|---:|---:|---:|---:|");
    let mut points = Vec::new();
    for (n, r) in boots {
        let (reset, v, l) = (
            get(r, "reset to all domains started, cycles")?,
            get(r, "verify, all domains")?,
            get(r, "load, all domains")?,
        );
        println!("| {n} | {reset} | {v} | {l} | {} |", (v + l) / n);
        points.push((*n, reset));
    }
    judge("boot against domains", "domain", &points);
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_and_flat_growth_pass_and_quadratic_fails() {
        let xs = [8u64, 64, 512, 4096, 65536];
        let linear: Vec<(u64, u64)> = xs.iter().map(|&x| (x, 7000 + 3 * x)).collect();
        let flat: Vec<(u64, u64)> = xs.iter().map(|&x| (x, 7000)).collect();
        let no_fixed_part: Vec<(u64, u64)> = [4u64, 16, 64].iter().map(|&x| (x, 2_000_000 * x)).collect();
        let quadratic: Vec<(u64, u64)> = xs.iter().map(|&x| (x, 7000 + x * x / 64)).collect();
        assert_eq!(super_linear(&linear), None);
        assert_eq!(super_linear(&flat), None);
        assert_eq!(super_linear(&no_fixed_part), None);
        assert!(super_linear(&quadratic).is_some());
        let args: Vec<(u64, u64)> = ARGS.iter().map(|&a| (a, 54 + a)).collect();
        assert_eq!(super_linear(&args), None);
    }

    #[test]
    fn growth_lines_are_parsed() {
        let t = "x\ngrowth: proxy call, 2 args: 56\r\n[ 1.0] growth: no\ngrowth: swap window, 8 state bytes: 7000\n";
        assert_eq!(
            parse(t),
            vec![("proxy call, 2 args".to_string(), 56), ("swap window, 8 state bytes".to_string(), 7000)]
        );
    }
}
