//! `cargo xtask bench`: boots QEMU virt under `-icount shift=0,sleep=off`, where the PMU
//! cycle counter counts guest instructions exactly and idle time does not follow the host
//! clock, runs the kernel's `bench` self test twice,
//! checks both runs agree, and prints the table with the peer figures of ANCHORS.md.

use crate::board::Board;
use crate::harness::{Boot, Session};
use std::time::Duration;

fn run_once(boot: &Boot) -> Result<Vec<(String, u64)>, String> {
    let mut s = Session::start(boot)?;
    s.expect("reset to all domains started", Duration::from_secs(120))
        .map_err(|e| format!("{e}\n{}", s.transcript()))?;
    let status = s.wait_exit(Duration::from_secs(30))?;
    if status != 0 {
        return Err(format!("benchmark run exited with {status}\n{}", s.transcript()));
    }
    Ok(s.transcript()
        .lines()
        .filter_map(|l| l.strip_prefix("bench: "))
        .filter_map(|l| {
            let (name, n) = l.rsplit_once(": ")?;
            Some((name.to_string(), n.trim().parse().ok()?))
        })
        .collect())
}

/// The proxy may add at most this many instructions to an indirect call (issue target;
/// RedLeaf's proxy costs 124 cycles on x86).
const PROXY_TARGET: u64 = 48;
/// A hot swap's window (slots paused to callers released, state payload aside) may take
/// at most this many instructions (issue target).
const SWAP_WINDOW_TARGET: u64 = 20_000;

fn get(rows: &[(String, u64)], name: &str) -> u64 {
    rows.iter().find(|r| r.0 == name).map_or(0, |r| r.1)
}

pub fn bench() -> Result<bool, String> {
    crate::setup::ensure_rust_target()?;
    crate::setup::ensure_test_tools()?;
    let built = crate::image::build(Board::Virt, crate::image::Kernel::Selftest)?;
    let mut boot = Boot::from_build(Board::Virt, &built);
    boot.append = "qvq.test=bench".into();
    boot.extra = ["-icount", "shift=0,sleep=off"].map(String::from).to_vec();
    println!("{}", boot.command_line());
    let first = run_once(&boot)?;
    let second = run_once(&boot)?;
    let deterministic = first == second;
    for (a, b) in first.iter().zip(&second) {
        if a != b {
            println!("differs between runs: {} ({} vs {})", a.0, a.1, b.1);
        }
    }

    println!();
    println!("QvQ on QEMU virt (Cortex-A53 model), guest instructions per operation (-icount shift=0):");
    println!();
    println!("| operation | QvQ (instructions) |");
    println!("|---|---:|");
    for (name, n) in &first {
        println!("| {name} | {n} |");
    }
    let overhead = get(&first, "proxy overhead over the indirect call");
    println!();
    println!("Peers (ANCHORS.md; cycles on their machines, not instructions):");
    println!();
    println!("| system | mechanism | cost | machine |");
    println!("|---|---|---|---|");
    println!("| RedLeaf | call through proxy | 124 cycles | Xeon E5-2660 v3 (Haswell) 2.6 GHz |");
    println!("| RedLeaf | proxy, one RRef passed | 141 cycles | same |");
    println!("| RedLeaf | through shadow | 279 cycles | same |");
    println!("| seL4 | IPC (same machine) | 834 cycles | same |");
    println!("| seL4 | IPC call / reply, AArch64 | 413 / 426 cycles | Cortex-A57 (Jetson TX1) 1.9 GHz |");
    println!("| L4Re/Fiasco | inter-address-space IPC | 691 cycles | Cortex-A53 (NXP S32G2) |");
    println!();
    println!(
        "deterministic: {}",
        if deterministic {
            "yes (two runs, identical counts)"
        } else {
            "NO: the two runs differ"
        }
    );
    println!("proxy overhead: {overhead} instructions over the indirect call (target: at most 48)");
    if overhead > PROXY_TARGET {
        println!("bench: the proxy overhead target is NOT met");
    }
    let window = get(&first, "swap window (slots paused to callers released)");
    println!("swap window: {window} instructions (target: at most {SWAP_WINDOW_TARGET})");
    if window == 0 || window > SWAP_WINDOW_TARGET {
        println!("bench: the swap window target is NOT met");
    }
    Ok(deterministic && overhead <= PROXY_TARGET && window > 0 && window <= SWAP_WINDOW_TARGET)
}
