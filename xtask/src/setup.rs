//! Makes a fresh machine able to build, boot and test QvQ: rustup target and components
//! (clippy, rustfmt), QEMU, dtc.

use crate::board::Board;
use std::process::{Command, Stdio};

pub const KERNEL_TARGET: &str = "aarch64-unknown-none-softfloat";
/// Debian packages the build and tests need: QEMU, dtc, and OpenSSL (the signer's tests
/// check that OpenSSL and qvq-sign read each other's keys and signatures).
/// qemu-system-arm boots the boards; device-tree-compiler builds the rpi3 tree; openssl
/// checks signatures independently; dosfstools and mtools make and check FAT volumes
/// independently of the FS domain's own code.
const APT_PACKAGES: &[&str] = &["qemu-system-arm", "device-tree-compiler", "openssl", "dosfstools", "mtools"];

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// The cargo that runs xtask (`$CARGO`), or `cargo`.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Adds the kernel's rustup target if it is missing (`RUSTUP_AUTO_INSTALL=0` means no
/// toolchain file will do it for us).
pub fn ensure_rust_target() -> Result<(), String> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup not found ({e}); install Rust with rustup, then run `rustup target add {KERNEL_TARGET}`"))?;
    if !String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == KERNEL_TARGET) {
        eprintln!("xtask: adding rustup target {KERNEL_TARGET}");
        run(Command::new("rustup").args(["target", "add", KERNEL_TARGET]))?;
    }
    Ok(())
}

/// Adds the rustup components `cargo xtask test` runs (clippy, rustfmt) if they are missing.
pub fn ensure_rust_components() -> Result<(), String> {
    let out = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup not found ({e}); install Rust with rustup, then run `rustup component add clippy rustfmt`"))?;
    let installed = String::from_utf8_lossy(&out.stdout).to_string();
    for component in ["clippy", "rustfmt"] {
        if !installed.lines().any(|l| l.trim().split('-').next() == Some(component)) {
            eprintln!("xtask: adding rustup component {component}");
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs the Debian packages that provide the missing commands, or says how to.
fn ensure_commands(missing: &[&str]) -> Result<(), String> {
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!("apt-get install -y {}", APT_PACKAGES.join(" "));
    if !is_root() || !have("apt-get", "--version") {
        return Err(format!(
            "{} not found; install with: sudo apt-get update && sudo {install}",
            missing.join(" and ")
        ));
    }
    eprintln!("xtask: {} missing; running apt-get update && {install}", missing.join(" and "));
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q"])
        .args(APT_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// What building for `board` needs.
pub fn ensure_build_tools(board: Board) -> Result<(), String> {
    ensure_rust_target()?;
    if board == Board::Rpi3 && !have("dtc", "--version") {
        ensure_commands(&["dtc"])?;
    }
    Ok(())
}

/// What booting and the host tests need.
pub fn ensure_test_tools() -> Result<(), String> {
    let mut missing = Vec::new();
    if !have("openssl", "version") {
        missing.push("openssl");
    }
    if !have("qemu-system-aarch64", "--version") {
        missing.push("qemu-system-aarch64");
    }
    if !have("dtc", "--version") {
        missing.push("dtc");
    }
    if !have("mkfs.fat", "--help") || !have("fsck.fat", "--help") {
        missing.push("mkfs.fat");
    }
    if !have("mcopy", "--version") || !have("mtype", "--version") {
        missing.push("mtools");
    }
    ensure_commands(&missing)
}
