//! The host link's bench figure: `cargo xtask bench` boots the board under `-icount
//! shift=0` with the host link on a socket, pushes the console driver (about 40 KiB) the
//! way `cargo xtask swap console` does, and reads two things back. The kernel's log line
//! `push: N bytes for console received intact in T ms, R bytes/s; I guest instructions per
//! KiB`: I is the guest's busy time per KiB received (PMU cycles less the idle thread's, so
//! under `-icount shift=0` guest instructions, 1 ns each), the `bench:` row
//! `host link receive per KiB`. The guest alone cannot move data faster than 1e9 / I KiB
//! per second of its virtual time, so 100 KiB/s needs I at most 1e7 if QEMU ran the guest
//! at 1 GHz; it runs it at about a tenth of that on the host (protocol 1's 289 ms of virtual
//! time took 2.98 s), so the target is I at most 1e6. And the host's own clock: bytes,
//! seconds, KiB/s, printed (informational: it follows the host's load).

use crate::board::Board;
use crate::harness::{Boot, Session};
use crate::swap::{Fault, Link};
use std::time::Duration;

/// The `bench:` row this run produces.
pub const ROW: &str = "host link receive per KiB";

/// Pushes the console driver once; returns the row, and prints what the host measured.
pub fn bench(board: Board, built: &crate::image::Built) -> Result<Vec<(String, u64)>, String> {
    let mut boot = Boot::from_build(board, built);
    boot.append = String::new();
    // Idle time follows the host clock here (no `sleep=off`): the kernel's 3 s idle limit
    // must not run out while the host is still sending.
    boot.extra = ["-icount", "shift=0"].map(String::from).to_vec();
    let socket = crate::paths::out_dir(board).join("bench-hostlink.sock");
    boot.host_link = Some(socket.clone());
    let (envelope, version) = crate::swap::signed_domain(board, "console", Some("0.9.0"))?;
    let mut s = Session::start(&boot)?;
    let fail = |s: &Session, e: String| format!("host link bench: {e}\n{}", s.transcript());
    s.expect("qvq$ ", Duration::from_secs(120)).map_err(|e| fail(&s, e))?;
    let mut link = Link::connect(&socket, Duration::from_secs(10)).map_err(|e| fail(&s, e))?;
    let (swapped, message) = link.push("console", &envelope, 0, Fault::None).map_err(|e| fail(&s, e))?;
    if !swapped {
        return Err(fail(&s, format!("the push of console {version} was refused: {message}")));
    }
    s.expect("received intact in", Duration::from_secs(30)).map_err(|e| fail(&s, e))?;
    s.expect("swapped console", Duration::from_secs(60)).map_err(|e| fail(&s, e))?;
    let transcript = s.transcript();
    s.send("poweroff\r")?;
    let _ = s.expect("power off", Duration::from_secs(30));
    let line = transcript
        .lines()
        .find(|l| l.contains("received intact in"))
        .ok_or_else(|| format!("host link bench: no `received intact` line\n{transcript}"))?;
    let per_kib = line
        .split("; ")
        .find_map(|part| part.strip_suffix(" guest instructions per KiB"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("host link bench: no instruction count in {line:?}"))?;
    println!();
    println!("host link (console {version}, {} bytes), kernel: {}", envelope.len(), line.trim());
    if let Some(t) = link.transfer {
        println!("host link, measured on the host (informational): {t}");
    }
    println!("bench: {ROW}: {per_kib}");
    Ok(vec![(ROW.to_string(), per_kib)])
}

/// `cargo xtask bench --host-link`: this figure alone, checked against its target.
pub fn bench_only(board: Board) -> Result<bool, String> {
    crate::setup::ensure_rust_target()?;
    crate::setup::ensure_test_tools()?;
    let built = crate::image::build(board, crate::image::Kernel::Selftest)?;
    let rows = bench(board, &built)?;
    let target = crate::bench::TARGETS.iter().find(|t| t.row == ROW).ok_or("no target for the host link row")?;
    let met = rows.iter().any(|r| r.0 == ROW && r.1 <= target.most);
    println!("target: {} at most {}: {}", target.what, target.most, if met { "met" } else { "NOT met" });
    Ok(met)
}
