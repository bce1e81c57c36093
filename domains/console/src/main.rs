//! The console driver domain: owns the PL011 UART through its device grant, receives by
//! interrupt into a buffer, and exports `Console`. In a hot swap it hands the bytes no
//! reader has taken yet to its next version.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::console::{self, Console};
use runtime::interfaces::{ConsoleState, RRef, RpcError, RpcResult, Text};
use runtime::{Device, Event, Mutex};

// PL011 registers (Arm DDI 0183).
const DR: usize = 0x00;
const FR: usize = 0x18;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;
const FR_TXFF: u32 = 1 << 5;
const FR_RXFE: u32 = 1 << 4;
const INT_RX_RT: u32 = (1 << 4) | (1 << 6);

struct Ring {
    buf: [u8; 512],
    head: usize,
    len: usize,
}

struct ConsoleDomain {
    uart: Mutex<Option<Device>>,
    rx: Mutex<Ring>,
    arrived: Mutex<Option<Event>>,
}

static CONSOLE: ConsoleDomain = ConsoleDomain {
    uart: Mutex::new(None),
    rx: Mutex::new(Ring {
        buf: [0; 512],
        head: 0,
        len: 0,
    }),
    arrived: Mutex::new(None),
};

impl ConsoleDomain {
    fn put(uart: &Device, b: u8) {
        while uart.mmio.read32(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        uart.mmio.write32(DR, b as u32);
    }

    fn event(&self) -> Event {
        self.arrived.with(|e| *e).expect("initialised in init")
    }
}

impl Console for ConsoleDomain {
    fn write(&self, text: RRef<Text>) -> RpcResult<()> {
        self.uart.with(|u| {
            let uart = u.as_ref().ok_or(RpcError::Unavailable)?;
            for &b in text.as_bytes() {
                if b == b'\n' {
                    Self::put(uart, b'\r');
                }
                Self::put(uart, b);
            }
            Ok(())
        })
    }

    fn read_byte(&self) -> RpcResult<u8> {
        let ev = self.event();
        // Blocking for input has no effect: a hot swap may cancel the call while it waits.
        let mut seen = ev.wait(u64::MAX);
        loop {
            let byte = self.rx.with(|r| {
                (r.len > 0).then(|| {
                    let b = r.buf[r.head];
                    r.head = (r.head + 1) % r.buf.len();
                    r.len -= 1;
                    b
                })
            });
            if let Some(b) = byte {
                return Ok(b);
            }
            seen = ev.wait_restartable(seen);
        }
    }
}

/// Moves received bytes into the ring each time the UART interrupts.
fn receive(irq: Device) {
    let ev = CONSOLE.event();
    while irq.wait_irq() {
        CONSOLE.uart.with(|u| {
            if let Some(uart) = u.as_ref() {
                // Clear first, then drain: a byte arriving after the drain raises a new
                // interrupt instead of having its interrupt cleared unseen.
                uart.mmio.write32(ICR, INT_RX_RT);
                while uart.mmio.read32(FR) & FR_RXFE == 0 {
                    let b = (uart.mmio.read32(DR) & 0xff) as u8;
                    CONSOLE.rx.with(|r| r.push(b));
                }
            }
        });
        irq.irq_done();
        ev.signal();
    }
}

impl Ring {
    /// The unread bytes, oldest first, as the two runs of the ring they sit in.
    fn unread(&self) -> (&[u8], &[u8]) {
        let head = self.head.min(self.buf.len());
        let len = self.len.min(self.buf.len());
        let first = len.min(self.buf.len() - head);
        (&self.buf[head..head + first], &self.buf[..len - first])
    }

    fn push(&mut self, b: u8) {
        if self.len < self.buf.len() {
            let at = (self.head + self.len) % self.buf.len();
            self.buf[at] = b;
            self.len += 1;
        }
    }
}

/// A copy of the unread input, oldest first (the old version keeps its own), written into
/// the zeroed hand-over block in place.
fn export_state(state: &mut ConsoleState) {
    CONSOLE.rx.with(|r| {
        let (first, second) = r.unread();
        state.len = (first.len() + second.len()) as u32;
        state.bytes[..first.len()].copy_from_slice(first);
        state.bytes[first.len()..][..second.len()].copy_from_slice(second);
    })
}

/// Puts the previous version's unread input before anything received since (what does
/// not fit is dropped, newest first, as the ring drops input it has no room for).
fn import_state(state: &ConsoleState) -> Result<(), &'static str> {
    let older = state.bytes.get(..state.len as usize).ok_or("console state: length out of range")?;
    CONSOLE.rx.with(|r| {
        if r.len == 0 {
            // The usual case: nothing arrived since the start, so no merge is needed.
            r.buf[..older.len()].copy_from_slice(older);
            r.head = 0;
            r.len = older.len();
            return;
        }
        let mut merged = Ring {
            buf: [0; 512],
            head: 0,
            len: 0,
        };
        let (first, second) = r.unread();
        for &b in older.iter().chain(first).chain(second) {
            merged.push(b);
        }
        *r = merged;
    });
    if let Some(e) = CONSOLE.arrived.with(|e| *e) {
        e.signal();
    }
    Ok(())
}

fn init() -> Result<(), &'static str> {
    let uart = Device::claim(0).ok_or("no UART granted (the manifest must list arm,pl011)")?;
    let irq = Device::claim(0).ok_or("no UART granted")?;
    if !irq.has_irq() {
        return Err("the UART grant has no interrupt");
    }
    let event = Event::new().ok_or("no event")?;
    CONSOLE.arrived.with(|e| *e = Some(event));
    uart.mmio.write32(ICR, INT_RX_RT);
    uart.mmio.write32(IMSC, INT_RX_RT);
    CONSOLE.uart.with(|u| *u = Some(uart));
    runtime::spawn("console-rx", move || receive(irq)).map_err(|_| "cannot start the receive thread")?;
    runtime::swap::keep_state_in_place::<ConsoleState>(export_state, import_state).map_err(|_| "cannot declare the swap state")?;
    console::export(&CONSOLE).map_err(|_| "cannot export Console")?;
    runtime::log::write_str("PL011 driver ready (receive by interrupt)");
    Ok(())
}

runtime::entry!(init);
