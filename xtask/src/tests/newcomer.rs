//! The newcomer test: what domains/README.md's "Write a domain" walks through, on a copy of
//! this tree (so the tree itself is never changed): `cargo xtask new-domain counter
//! --export Counter`, `cargo xtask build` for each board, boot, `call` it, hot-swap it with
//! `cargo xtask swap` (its count kept), crash it (restarted, from zero).

use crate::board::Board;
use crate::harness::{Boot, Session};
use crate::paths;
use crate::setup::cargo;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_secs(30);

/// Runs the walkthrough; returns (passed, failed, failed names). Counts one case per board,
/// plus one for making and building the domain.
pub fn run() -> (usize, usize, Vec<String>) {
    println!("== newcomer: a new domain from the walkthrough, on a copy of this tree ==");
    let start = Instant::now();
    let tree = paths::workspace_root().join("target/newcomer/tree");
    let made = (|| {
        copy_tree(&paths::workspace_root(), &tree)?;
        xtask(&tree, &["new-domain", "counter", "--export", "Counter"])?;
        for board in [Board::Virt, Board::Rpi3] {
            xtask(&tree, &["build", "--board", board.name()])?;
        }
        Ok::<(), String>(())
    })();
    if let Err(e) = made {
        println!("FAIL newcomer/new-domain-and-build: {e}");
        return (0, 1, vec!["newcomer/new-domain-and-build".into()]);
    }
    println!("ok   newcomer/new-domain-and-build ({:.1} s)", start.elapsed().as_secs_f32());
    let (mut passed, mut failed, mut names) = (1, 0, Vec::new());
    for board in [Board::Virt, Board::Rpi3] {
        let start = Instant::now();
        match boot_call_swap_crash(&tree, board) {
            Ok(()) => {
                passed += 1;
                println!(
                    "ok   {}/newcomer-counter-called-swapped-crashed ({:.1} s)",
                    board.name(),
                    start.elapsed().as_secs_f32()
                );
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {}/newcomer-counter-called-swapped-crashed: {e}", board.name());
                names.push(format!("{}/newcomer-counter-called-swapped-crashed", board.name()));
            }
        }
    }
    (passed, failed, names)
}

/// Copies the files git tracks or would track (so uncommitted work is tested too), not
/// what it ignores (target/, keys made here). A copy made before is replaced, except its
/// target/ (so a second run builds incrementally).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    if to.exists() {
        for entry in std::fs::read_dir(to).map_err(|e| format!("cannot read {}: {e}", to.display()))?.flatten() {
            let path = entry.path();
            if entry.file_name() == "target" {
                // Except what a new user would not have: versions signed by an earlier run.
                for board in [Board::Virt, Board::Rpi3] {
                    let _ = std::fs::remove_dir_all(path.join("qvq").join(board.name()).join("signed-versions"));
                }
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    let out = Command::new("git")
        .current_dir(from)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!("git ls-files failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = PathBuf::from(String::from_utf8_lossy(name).into_owned());
        let src = from.join(&rel);
        if !src.is_file() {
            continue; // deleted in the working tree
        }
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap_or(to)).map_err(|e| e.to_string())?;
        std::fs::copy(&src, &dst).map_err(|e| format!("cannot copy {}: {e}", rel.display()))?;
    }
    Ok(())
}

/// `cargo xtask ARGS` in the copy, as a user would type it there.
fn xtask(tree: &Path, args: &[&str]) -> Result<String, String> {
    let out = cargo()
        .current_dir(tree)
        .arg("xtask")
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS")
        .output()
        .map_err(|e| format!("cannot run cargo xtask: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(format!("`cargo xtask {}` failed:\n{}", args.join(" "), tail.join("\n")));
    }
    Ok(text)
}

fn boot_call_swap_crash(tree: &Path, board: Board) -> Result<(), String> {
    let out = tree.join("target/qvq").join(board.name());
    let socket = out.join("newcomer-hostlink.sock");
    let _ = std::fs::remove_file(&socket);
    let boot = Boot {
        board,
        kernel: out.join("kernel8.img"),
        initrd: Some(out.join("initrd.img")),
        dtb: (board == Board::Rpi3).then(|| out.join("rpi3.dtb")),
        append: String::new(),
        semihosting: true,
        host_link: Some(socket.clone()),
        disk: None,
        extra: Vec::new(),
    };
    let mut s = Session::start(&boot)?;
    let result = (|| {
        s.expect("counter 0.1.0 ready", STEP)?;
        s.expect("qvq$ ", STEP)?;
        for (command, answer) in [("call Counter add 5\r", "\n5\n"), ("call Counter add 2\r", "\n7\n")] {
            s.send(command)?;
            s.expect(answer, STEP)?;
            s.expect("qvq$ ", STEP)?;
        }
        let socket_arg = socket.display().to_string();
        let said = xtask(tree, &["swap", "counter", "--board", board.name(), "--socket", &socket_arg])?;
        if !said.contains("swapped counter 0.1.0 -> 0.1.1") {
            return Err(format!("`cargo xtask swap counter` said:\n{said}"));
        }
        s.expect("counter 0.1.1 ready", STEP)?;
        s.expect("swapped counter 0.1.0 -> 0.1.1", STEP)?;
        s.expect("8 state bytes", STEP)?;
        s.send("call Counter get\r")?;
        s.expect("\n7\n", STEP)?;
        s.expect("qvq$ ", STEP)?;
        s.send("crash counter\r")?;
        // The prompt and the restart come in either order.
        s.expect_all(&["crash: counter crashed", "domain counter restarted"], STEP)?;
        s.send("call Counter get\r")?;
        s.expect("\n0\n", STEP)?;
        s.expect("qvq$ ", STEP)?;
        super::no_stranded_rref(&s.transcript())?;
        s.send("poweroff\r")?;
        s.expect("power off (status 0)", STEP)?;
        let status = s.wait_exit(STEP)?;
        if status != 0 {
            return Err(format!("QEMU exit status {status}"));
        }
        Ok(())
    })();
    result.map_err(|e| {
        format!(
            "{e}\n--- command ---\n{}\n--- console transcript ---\n{}--- end of transcript ---",
            s.command_line,
            s.transcript()
        )
    })
}
