//! The kernel console: the PL011, a log with a monotonic timestamp on every line, and
//! interrupt-driven input.

use crate::driver::pl011::Pl011;
use crate::sched::WaitQueue;
use crate::sync::IrqLock;
use core::fmt::{self, Write};

static UART: IrqLock<Option<Pl011>> = IrqLock::new("console", None);

/// Received bytes not yet read.
struct RxRing {
    buf: [u8; 256],
    head: usize,
    len: usize,
    dropped: usize,
}

static RX: IrqLock<RxRing> = IrqLock::new(
    "console input",
    RxRing {
        buf: [0; 256],
        head: 0,
        len: 0,
        dropped: 0,
    },
);
static RX_WAIT: WaitQueue = WaitQueue::new();

pub fn init(uart: Pl011) {
    *UART.lock() = Some(uart);
}

/// For the fatal-fault path only: the holder will never resume.
pub fn force_unlock() {
    UART.force_unlock();
}

struct Writer<'a>(&'a Pl011);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.write_byte(b'\r');
            }
            self.0.write_byte(b);
        }
        Ok(())
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

/// Once the console driver domain runs, the kernel's output goes through it.
#[derive(Clone, Copy)]
struct Handover {
    proxy: interfaces::console::Proxy,
    domain: crate::domain::DomainId,
}

static HANDOVER: IrqLock<Option<Handover>> = IrqLock::new("console handover", None);
static WRITING_TO_DOMAIN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Routes kernel output through the console domain from now on. The kernel keeps writing
/// to the UART itself only where calling a domain is impossible: with interrupts masked
/// (fault reports, interrupt handlers, code holding a lock) or from the console domain.
pub fn hand_over(proxy: interfaces::console::Proxy, domain: crate::domain::DomainId) {
    crate::info!("console: handing over to the console domain");
    *HANDOVER.lock() = Some(Handover { proxy, domain });
}

/// A hot swap replaced console domain `old` with `new` (the kernel's slot already points
/// to `new`; this keeps the check that the console domain never writes through itself).
pub fn callee_replaced(old: crate::domain::DomainId, new: crate::domain::DomainId) {
    if let Some(h) = HANDOVER.lock().as_mut().filter(|h| h.domain == old) {
        h.domain = new;
    }
}

fn to_domain(bytes: &[u8]) -> bool {
    use core::sync::atomic::Ordering;
    use interfaces::console::Console;
    if crate::arch::cpu::irqs_masked() || WRITING_TO_DOMAIN.load(Ordering::Relaxed) {
        return false;
    }
    let Some(h) = *HANDOVER.lock() else { return false };
    if crate::domain::current() == h.domain {
        return false;
    }
    WRITING_TO_DOMAIN.store(true, Ordering::Relaxed);
    let ok = crate::domain::as_kernel(|| {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (text, n) = interfaces::Text::from_bytes(rest);
            if h.proxy.write(interfaces::RRef::new(text)).is_err() {
                return false;
            }
            rest = &rest[n..];
        }
        true
    });
    WRITING_TO_DOMAIN.store(false, Ordering::Relaxed);
    ok
}

fn emit(bytes: &[u8]) {
    if to_domain(bytes) {
        return;
    }
    if let Some(uart) = UART.lock().as_ref() {
        let _ = Writer(uart).write_str(core::str::from_utf8(bytes).unwrap_or("<?>\n"));
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
    let ns = crate::time::uptime_ns();
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

/// Waits until everything printed has left the UART.
pub fn flush() {
    if let Some(u) = UART.lock().as_ref() {
        u.flush();
    }
}

/// Raw output, no timestamp.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

/// Raw output line, no timestamp.
#[macro_export]
macro_rules! kprintln {
    () => ($crate::console::_print(format_args!("\n")));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}

/// A timestamped log line.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => ($crate::console::_log("", format_args!($($arg)*)));
}

/// A timestamped warning line.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => ($crate::console::_log("warning: ", format_args!($($arg)*)));
}

fn on_rx_interrupt(_irq: crate::irq::IrqNumber, _ctx: usize) {
    {
        let uart = UART.lock();
        let Some(uart) = uart.as_ref() else { return };
        // Clear first, then drain: a byte arriving after the drain raises a new interrupt
        // instead of having its interrupt cleared unseen.
        uart.clear_rx_interrupt();
        let mut rx = RX.lock();
        while let Some(b) = uart.read_byte() {
            if rx.len == rx.buf.len() {
                rx.dropped += 1;
                continue;
            }
            let at = (rx.head + rx.len) % rx.buf.len();
            rx.buf[at] = b;
            rx.len += 1;
        }
    }
    RX_WAIT.wake_all();
}

/// Starts interrupt-driven input on `irq`.
pub fn enable_input(irq: crate::irq::IrqNumber) -> Result<(), crate::irq::IrqError> {
    crate::irq::register(
        irq,
        crate::irq::Handler {
            name: "console rx",
            func: on_rx_interrupt,
            context: 0,
            owner: 0,
        },
    )?;
    if let Some(u) = UART.lock().as_ref() {
        u.enable_rx_interrupt();
    }
    Ok(())
}

/// Blocks the calling thread until a byte arrives.
pub fn read_byte() -> u8 {
    RX_WAIT.wait_until(|| {
        let mut rx = RX.lock();
        (rx.len > 0).then(|| {
            let b = rx.buf[rx.head];
            rx.head = (rx.head + 1) % rx.buf.len();
            rx.len -= 1;
            b
        })
    })
}

/// Reads a line (without its end) into `buf`, echoing it; returns its length.
pub fn read_line(buf: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        match read_byte() {
            b'\r' | b'\n' => {
                kprintln!();
                return n;
            }
            0x7f | 0x08 if n > 0 => {
                n -= 1;
                kprint!("\x08 \x08");
            }
            b if (b.is_ascii_graphic() || b == b' ') && n < buf.len() => {
                buf[n] = b;
                n += 1;
                kprint!("{}", b as char);
            }
            _ => {}
        }
    }
}
