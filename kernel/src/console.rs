//! The console UART (a PL011): the kernel log's output, and interrupt-driven input for the
//! kernel monitor.

use crate::driver::pl011::Pl011;
use crate::sched::WaitQueue;
use crate::sync::IrqLock;

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

/// The log's output: the console UART, `\n` sent as `\r\n`.
struct UartOutput;

impl crate::log::Output for UartOutput {
    fn write_bytes(&self, bytes: &[u8]) {
        if let Some(uart) = UART.lock().as_ref() {
            for &b in bytes {
                if b == b'\n' {
                    uart.write_byte(b'\r');
                }
                uart.write_byte(b);
            }
        }
    }

    fn flush(&self) {
        if let Some(u) = UART.lock().as_ref() {
            u.flush();
        }
    }

    fn force_unlock(&self) {
        UART.force_unlock();
    }
}

static UART_OUTPUT: UartOutput = UartOutput;

/// Makes `uart` the console and the log's output.
pub fn init(uart: Pl011) {
    *UART.lock() = Some(uart);
    crate::log::init(&UART_OUTPUT);
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
            handover: true,
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
                crate::kprintln!();
                return n;
            }
            0x7f | 0x08 if n > 0 => {
                n -= 1;
                crate::kprint!("\x08 \x08");
            }
            b if (b.is_ascii_graphic() || b == b' ') && n < buf.len() => {
                buf[n] = b;
                n += 1;
                crate::kprint!("{}", b as char);
            }
            _ => {}
        }
    }
}
