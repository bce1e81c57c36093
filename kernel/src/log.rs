//! The kernel log: `kprint!`/`kprintln!` (raw) and `info!`/`warn!` (a line with a monotonic
//! timestamp), written to the console UART or, once the console driver domain runs, through
//! a sink that domain provides. The lowest layer that prints: it names no driver, thread or
//! domain, so every subsystem may log.

use crate::sync::IrqLock;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

/// Where the kernel writes directly: the console UART.
pub trait Output: Sync {
    fn write_bytes(&self, bytes: &[u8]);
    /// Waits until everything written has left the device.
    fn flush(&self);
    /// For the fatal-fault path only: the holder of the device's lock will never resume.
    fn force_unlock(&self);
}

/// Where kernel output goes instead of `Output` once a console driver domain serves it.
pub trait Sink: Sync {
    /// Writes `bytes`; false if it could not (the kernel then writes to the UART itself).
    fn write(&self, bytes: &[u8]) -> bool;
}

static OUTPUT: IrqLock<Option<&'static dyn Output>> = IrqLock::new("log output", None);
static SINK: IrqLock<Option<&'static dyn Sink>> = IrqLock::new("log sink", None);
/// Set while a line goes to the sink: output made meanwhile (by the sink's own path) goes
/// straight to the UART instead of recursing.
static WRITING_TO_SINK: AtomicBool = AtomicBool::new(false);

pub fn init(output: &'static dyn Output) {
    *OUTPUT.lock() = Some(output);
}

/// Routes output through `sink` from now on. The kernel keeps writing to the UART itself
/// where calling a domain is impossible: with interrupts masked (fault reports, interrupt
/// handlers, code holding a lock) or while the sink is already writing.
pub fn set_sink(sink: &'static dyn Sink) {
    *SINK.lock() = Some(sink);
}

/// A thread was unwound out of the kernel (its domain crashed), perhaps while it wrote to
/// the sink: let the next line try the sink again.
pub fn writer_abandoned() {
    WRITING_TO_SINK.store(false, Ordering::Relaxed);
}

/// For the fatal-fault path only: the output's holder will never resume.
pub fn force_unlock() {
    OUTPUT.force_unlock();
    if let Some(o) = *OUTPUT.lock() {
        o.force_unlock();
    }
}

/// Waits until everything printed has left the UART.
pub fn flush() {
    if let Some(o) = *OUTPUT.lock() {
        o.flush();
    }
}

fn to_sink(bytes: &[u8]) -> bool {
    if crate::arch::cpu::irqs_masked() || WRITING_TO_SINK.load(Ordering::Relaxed) {
        return false;
    }
    let Some(sink) = *SINK.lock() else { return false };
    WRITING_TO_SINK.store(true, Ordering::Relaxed);
    let ok = sink.write(bytes);
    WRITING_TO_SINK.store(false, Ordering::Relaxed);
    ok
}

fn emit(bytes: &[u8]) {
    if to_sink(bytes) {
        return;
    }
    if let Some(o) = *OUTPUT.lock() {
        o.write_bytes(bytes);
    }
}

/// Up to 512 bytes of formatted output (longer lines are cut).
struct LineBuf {
    buf: [u8; 512],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut b = LineBuf { buf: [0; 512], len: 0 };
    let _ = b.write_fmt(args);
    emit(&b.buf[..b.len]);
}

#[doc(hidden)]
pub fn _log(level: &str, args: fmt::Arguments) {
    let ns = crate::arch::timer::uptime_ns();
    let mut b = LineBuf { buf: [0; 512], len: 0 };
    let _ = write!(b, "[{:5}.{:06}] {}", ns / 1_000_000_000, (ns / 1000) % 1_000_000, level);
    let _ = b.write_fmt(args);
    if b.len == b.buf.len() {
        b.buf[b.len - 1] = b'\n';
    } else {
        let _ = b.write_str("\n");
    }
    emit(&b.buf[..b.len]);
}

/// Raw output, no timestamp.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => ($crate::log::_print(format_args!($($arg)*)));
}

/// Raw output line, no timestamp.
#[macro_export]
macro_rules! kprintln {
    () => ($crate::log::_print(format_args!("\n")));
    ($($arg:tt)*) => ($crate::log::_print(format_args!("{}\n", format_args!($($arg)*))));
}

/// A timestamped log line.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => ($crate::log::_log("", format_args!($($arg)*)));
}

/// A timestamped warning line.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => ($crate::log::_log("warning: ", format_args!($($arg)*)));
}
