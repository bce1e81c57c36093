//! Booting QEMU: the command line for each board, an interactive `run`, and the test
//! harness's session (send input, wait for output with a timeout, exit status, transcript).

pub mod case;
pub mod fixtures;

use crate::board::Board;
use crate::image::Built;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Everything one QEMU boot needs.
#[derive(Clone, Debug)]
pub struct Boot {
    pub board: Board,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub dtb: Option<PathBuf>,
    pub append: String,
    /// Lets the kernel end the run with an exit status (on by default).
    pub semihosting: bool,
    /// A local socket QEMU listens on, wired to the board's second serial port: the host
    /// link `cargo xtask swap` pushes new domain versions over (virt: a PCI 16550;
    /// rpi3: the mini UART).
    pub host_link: Option<PathBuf>,
    /// A raw disk image to attach (`crate::disk::qemu_args`: virt, virtio-blk over
    /// virtio-mmio; rpi3, the SD card).
    pub disk: Option<PathBuf>,
    pub extra: Vec<String>,
}

impl Boot {
    pub fn from_build(board: Board, b: &Built) -> Self {
        Boot {
            board,
            kernel: b.kernel.clone(),
            initrd: Some(b.initrd.clone()),
            dtb: b.dtb.clone(),
            append: String::new(),
            semihosting: true,
            host_link: None,
            disk: None,
            extra: Vec::new(),
        }
    }

    /// QEMU's arguments. The console is the first serial port on stdio; semihosting lets
    /// the kernel end the run with an exit status.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = match self.board {
            Board::Virt => ["-M", "virt", "-cpu", "cortex-a53", "-m", "256M"].map(String::from).to_vec(),
            Board::Rpi3 => ["-M", "raspi3b"].map(String::from).to_vec(),
        };
        a.push("-nographic".into());
        if let Some(sock) = &self.host_link {
            a.push("-chardev".into());
            a.push(format!("socket,id=hostlink,path={},server=on,wait=off", sock.display()));
            match self.board {
                Board::Virt => a.extend(["-device", "pci-serial,chardev=hostlink"].map(String::from)),
                // The console stays the first serial port; the mini UART is the second.
                Board::Rpi3 => a.extend(["-serial", "mon:stdio", "-serial", "chardev:hostlink"].map(String::from)),
            }
        }
        if self.semihosting {
            a.push("-semihosting".into());
        }
        a.push("-kernel".into());
        a.push(self.kernel.display().to_string());
        if let Some(d) = &self.dtb {
            a.push("-dtb".into());
            a.push(d.display().to_string());
        }
        if let Some(i) = &self.initrd {
            a.push("-initrd".into());
            a.push(i.display().to_string());
        }
        if !self.append.is_empty() {
            a.push("-append".into());
            a.push(self.append.clone());
        }
        if let Some(disk) = &self.disk {
            a.extend(crate::disk::qemu_args(self.board, disk));
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    pub fn command_line(&self) -> String {
        let quote = |s: &String| if s.contains(' ') || s.is_empty() { format!("'{s}'") } else { s.clone() };
        std::iter::once("qemu-system-aarch64".to_string())
            .chain(self.args().iter().map(quote))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `cargo xtask run`: QEMU in the foreground with the console on this terminal, the disk
/// image `disk` attached (default: `crate::disk::default_path`, made if missing).
pub fn run_interactive(board: Board, built: &Built, initrd: Option<PathBuf>, gdb: bool, append: &str, disk: Option<PathBuf>) -> Result<bool, String> {
    let mut boot = Boot::from_build(board, built);
    if let Some(i) = initrd {
        if !i.is_file() {
            return Err(format!("--initrd {}: no such file", i.display()));
        }
        boot.initrd = Some(i);
    }
    let disk = match disk {
        Some(d) if !d.is_file() => {
            return Err(format!(
                "--disk {}: no such file (without --disk, `run` attaches {}, made if missing)",
                d.display(),
                crate::disk::default_path(board).display()
            ))
        }
        Some(d) => d,
        None => {
            let d = crate::disk::default_path(board);
            if crate::disk::ensure(&d)? {
                eprintln!("xtask: made the default disk image {} (16 MiB)", d.display());
            }
            let n = crate::disk::put_domains(&d, board)?;
            eprintln!("xtask: copied the {n} signed domains of this build to {} on it", crate::disk::DOMAINS_DIR);
            d
        }
    };
    eprintln!("xtask: disk {} attached as {}", disk.display(), crate::disk::described(board));
    boot.disk = Some(disk);
    boot.append = append.to_string();
    let link = crate::paths::host_link_socket(board);
    let _ = std::fs::remove_file(&link);
    boot.host_link = Some(link.clone());
    eprintln!("xtask: host link for `cargo xtask swap --board {}`: {}", board.name(), link.display());
    if gdb {
        boot.extra.extend(["-s", "-S"].map(String::from));
        eprintln!("xtask: QEMU waits for gdb: gdb-multiarch {} -ex 'target remote :1234'", built.elf.display());
    }
    println!("{}", boot.command_line());
    println!("(quit QEMU: Ctrl-A then X)");
    let status = Command::new("qemu-system-aarch64")
        .args(boot.args())
        .status()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    Ok(status.success())
}

/// A running QEMU whose console the test reads and writes.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<(Mutex<Output>, Condvar)>,
    /// Output before this offset has been matched already.
    cursor: usize,
    pub command_line: String,
}

struct Output {
    text: String,
    /// Set once both stdout and stderr have closed.
    closed: bool,
    open_streams: usize,
}

impl Session {
    pub fn start(boot: &Boot) -> Result<Session, String> {
        if let Some(sock) = &boot.host_link {
            let _ = std::fs::remove_file(sock);
        }
        let mut child = Command::new("qemu-system-aarch64")
            .args(boot.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start QEMU: {e}"))?;
        let output = Arc::new((
            Mutex::new(Output {
                text: String::new(),
                closed: false,
                open_streams: 2,
            }),
            Condvar::new(),
        ));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || pump(stream, &output));
        }
        Ok(Session {
            stdin: child.stdin.take(),
            child,
            output,
            cursor: 0,
            command_line: boot.command_line(),
        })
    }

    /// Waits until `pattern` appears after the previous match.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.output;
        let mut out = lock.lock().unwrap();
        loop {
            if let Some(at) = out.text[self.cursor..].find(pattern) {
                self.cursor += at + pattern.len();
                return Ok(());
            }
            let now = Instant::now();
            if out.closed || now >= deadline {
                let why = if out.closed { "QEMU exited" } else { "timed out" };
                return Err(format!("{why} waiting for {pattern:?}"));
            }
            out = cond.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// Waits until every one of `patterns` appears after the previous match, in any order;
    /// continues after the last of them.
    pub fn expect_all(&mut self, patterns: &[&str], timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.output;
        let mut out = lock.lock().unwrap();
        loop {
            let rest = &out.text[self.cursor..];
            let found: Vec<Option<usize>> = patterns.iter().map(|p| rest.find(p).map(|at| at + p.len())).collect();
            if found.iter().all(Option::is_some) {
                self.cursor += found.into_iter().flatten().max().unwrap_or(0);
                return Ok(());
            }
            let now = Instant::now();
            if out.closed || now >= deadline {
                let missing: Vec<&&str> = patterns.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(p, _)| p).collect();
                let why = if out.closed { "QEMU exited" } else { "timed out" };
                return Err(format!("{why} waiting for {missing:?} (any order)"));
            }
            out = cond.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// Types `text` on the console.
    pub fn send(&mut self, text: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("console input closed")?;
        // Slowly, like a person: the UART FIFO is small and QEMU drops what does not fit.
        for b in text.bytes() {
            stdin
                .write_all(&[b])
                .and_then(|_| stdin.flush())
                .map_err(|e| format!("cannot write to QEMU: {e}"))?;
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Waits for QEMU to exit; kills it on timeout. Returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<i32, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                // Let the pump threads drain the pipes.
                let (lock, cond) = &*self.output;
                let mut out = lock.lock().unwrap();
                while !out.closed {
                    let (o, t) = cond.wait_timeout(out, Duration::from_secs(2)).unwrap();
                    out = o;
                    if t.timed_out() {
                        break;
                    }
                }
                return Ok(status.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("QEMU still running after {} s; killed", timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn transcript(&self) -> String {
        self.output.0.lock().unwrap().text.clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pump(mut stream: Box<dyn Read + Send>, output: &(Mutex<Output>, Condvar)) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut out = output.0.lock().unwrap();
                out.text.push_str(&String::from_utf8_lossy(&buf[..n]).replace('\r', ""));
                output.1.notify_all();
            }
        }
    }
    let mut out = output.0.lock().unwrap();
    out.open_streams -= 1;
    out.closed = out.open_streams == 0;
    output.1.notify_all();
}

/// Writes a DTS that includes `base` and applies `changes` on top, and compiles it.
pub fn dtb_variant(base: &Path, changes: &str, dir: &Path, name: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let dts = dir.join(format!("{name}.dts"));
    let dtb = dir.join(format!("{name}.dtb"));
    std::fs::write(&dts, format!("/include/ \"{}\"\n{changes}\n", base.display())).map_err(|e| e.to_string())?;
    crate::image::compile_dts(&dts, &dtb)?;
    Ok(dtb)
}
