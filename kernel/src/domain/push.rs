//! Receiving pushed domain versions from the host (pushlink/PROTOCOL.md): a kernel thread
//! reads the host link when its interrupt says bytes wait, puts each chunk of the window in
//! its place (acknowledged cumulatively; gaps and damaged frames asked for again), checks
//! its size and CRC, and hands it to `swap` — which verifies it exactly like a boot-time
//! envelope. Any failure is answered (NAK or a refused RESULT) and logged; the running
//! version (if one runs under that name) keeps serving.
//!
//! Everything here is bounded by what the link cannot choose: one transfer at a time, its
//! bytes in frames of their own sized to the BEGIN's announced size (at most
//! `MAX_ENVELOPE`, allocated fallibly, freed when the transfer ends or is abandoned), the
//! name in a fixed array, and every answer built on the stack. Nothing the host sends
//! allocates on the kernel heap.

use crate::driver::SerialPort;
use crate::memory::{FrameRange, PAGE_SIZE};
use crate::{info, warn};
use core::fmt::{self, Write};
use pushlink::{
    Accept, Begin, BeginAck, Decoder, Kind, Received, Window, CRC_LEN, FLAG_FRESH, HEADER_LEN, IDLE_LIMIT_MS, MAX_NAME, MAX_PAYLOAD, VERSION, WINDOW,
};

// A BEGIN's name is a manifest's name, so the two limits are one.
const _: () = assert!(MAX_NAME == loader::manifest::MAX_NAME);

/// A domain name from a BEGIN (checked by `Begin::decode`: UTF-8, 1 to `MAX_NAME` bytes).
struct Name {
    bytes: [u8; MAX_NAME],
    len: usize,
}

impl Name {
    fn new(s: &str) -> Name {
        let len = s.len().min(MAX_NAME);
        let mut bytes = [0; MAX_NAME];
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Name { bytes, len }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

/// Text for one frame's payload, written on the stack; what does not fit is cut.
struct Text {
    buf: [u8; MAX_PAYLOAD],
    len: usize,
}

impl Text {
    fn of(args: fmt::Arguments) -> Text {
        let mut t = Text { buf: [0; MAX_PAYLOAD], len: 0 };
        let _ = t.write_fmt(args); // `write_str` never fails: it cuts
        t
    }

    fn as_str(&self) -> &str {
        // A cut may split a character: keep the valid prefix.
        let b = &self.buf[..self.len];
        core::str::from_utf8(b).unwrap_or_else(|e| core::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""))
    }
}

impl Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(MAX_PAYLOAD - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// A transfer in progress.
struct Transfer {
    name: Name,
    size: usize,
    crc: u32,
    /// BEGIN's FRESH flag: swap without handing any state over.
    fresh: bool,
    /// The envelope's bytes: chunk `seq` at `seq * CHUNK` of frames sized to `size`.
    frames: FrameRange,
    /// Which chunks are in (`pushlink::Window`: at most `WINDOW` ahead of the first missing).
    window: Window,
    last_frame_ns: u64,
    /// When BEGIN was accepted: uptime, PMU cycles and idle cycles (`Rate`).
    started: crate::hostlink::Rate,
}

impl Transfer {
    fn idle_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_frame_ns) / 1_000_000
    }

    /// What an abandoned transfer leaves, for the log: a name that does not run has no
    /// running version to keep serving.
    fn left_as_is(&self) -> &'static str {
        if super::swap::is_running(self.name.as_str()) {
            "the running version keeps serving"
        } else {
            "nothing was changed"
        }
    }
}

struct Link {
    port: &'static dyn SerialPort,
    transfer: Option<Transfer>,
}

impl Link {
    // Not inlined, here and in `nak` and `result`: their frame-sized buffers then never sit
    // on the stack below a swap.
    #[inline(never)]
    fn send(&self, kind: Kind, seq: u16, payload: &[u8]) {
        let mut out = [0u8; HEADER_LEN + MAX_PAYLOAD + CRC_LEN];
        let n = pushlink::encode(kind, seq, payload, &mut out);
        for &b in &out[..n] {
            self.port.write_byte(b);
        }
    }

    /// Answers NAK with `why`; with `abandon`, the transfer in progress ends (its frames freed).
    #[inline(never)]
    fn nak(&mut self, seq: u16, abandon: bool, why: fmt::Arguments) {
        let why = Text::of(why);
        match (&self.transfer, abandon) {
            (Some(t), true) => {
                let left = t.left_as_is();
                warn!("push: {}: {}; transfer abandoned, {left}", t.name.as_str(), why.as_str())
            }
            _ => warn!("push: {}", why.as_str()),
        }
        self.send(Kind::Nak, seq, why.as_str().as_bytes());
        if abandon {
            self.transfer = None;
        }
    }

    #[inline(never)]
    fn result(&self, swapped: bool, message: &str) {
        let mut reply = [0u8; MAX_PAYLOAD];
        let n = message.len().min(MAX_PAYLOAD - 1);
        reply[0] = swapped as u8;
        reply[1..1 + n].copy_from_slice(&message.as_bytes()[..n]);
        self.send(Kind::Result, 0, &reply[..1 + n]);
    }

    /// One transfer at a time: a BEGIN while one is in progress is refused, unless that one
    /// has been idle past `IDLE_LIMIT_MS` (it is abandoned first, as `check_idle` would).
    fn begin(&mut self, payload: &[u8], now: u64) {
        let b = match Begin::decode(payload) {
            Ok(b) => b,
            Err(e) => return self.nak(0, false, format_args!("{e}")),
        };
        self.check_idle();
        if let Some(t) = &self.transfer {
            let (name, received, size, idle) = (Name::new(t.name.as_str()), t.window.received(), t.size, t.idle_ms(now));
            return self.nak(
                0,
                false,
                format_args!(
                    "BEGIN for {} refused: the transfer of {} is in progress ({received} of {size} bytes, last frame {idle} ms ago; one transfer at a time, an idle one is abandoned after {IDLE_LIMIT_MS} ms)",
                    b.name,
                    name.as_str()
                ),
            );
        }
        let size = b.size as usize; // at most MAX_ENVELOPE (`Begin::decode`)
        let pages = size.div_ceil(PAGE_SIZE);
        let Some(frames) = FrameRange::alloc(pages) else {
            return self.nak(
                0,
                false,
                format_args!("BEGIN for {}: out of memory frames: no {pages} free contiguous pages for {size} bytes", b.name),
            );
        };
        info!("push: receiving {size} bytes for domain {} ({pages} pages)", b.name);
        self.transfer = Some(Transfer {
            name: Name::new(b.name),
            size,
            crc: b.crc,
            fresh: b.flags & FLAG_FRESH != 0,
            frames,
            window: Window::new(size),
            last_frame_ns: now,
            started: crate::hostlink::Rate::now(),
        });
        self.send(
            Kind::Ack,
            0,
            &BeginAck {
                version: VERSION,
                window: WINDOW,
            }
            .encode(),
        );
    }

    fn data(&mut self, seq: u16, payload: &[u8], now: u64) {
        let Some(t) = self.transfer.as_mut() else {
            return self.nak(seq, false, format_args!("DATA without a BEGIN"));
        };
        t.last_frame_ns = now;
        // Chunk `seq` has one place in the buffer; the window bounds how far ahead it may be.
        match t.window.check(seq, payload.len()) {
            Err(e) => return self.nak(seq, true, format_args!("{e}")),
            Ok(Accept::Duplicate) => {}
            Ok(Accept::New { offset }) => {
                t.frames.as_mut_slice()[offset..offset + payload.len()].copy_from_slice(payload);
                t.window.mark(seq);
            }
        }
        if let Some(gap) = t.window.missing() {
            return self.nak(gap, false, format_args!("chunk {gap} is missing (chunk {seq} came after it): resend"));
        }
        let next = t.window.next();
        self.send(Kind::Ack, next, &[]);
    }

    fn end(&mut self) {
        let Some(t) = self.transfer.as_mut() else {
            return self.nak(0, false, format_args!("END without a BEGIN"));
        };
        if !t.window.complete() {
            let (received, size) = (t.window.received(), t.size);
            return self.nak(0, true, format_args!("END after {received} of {size} bytes"));
        }
        if pushlink::crc32(&t.frames.as_mut_slice()[..t.size]) != t.crc {
            return self.nak(0, true, format_args!("the envelope's CRC-32 does not match the one announced"));
        }
        let Some(mut t) = self.transfer.take() else { return };
        let how = if t.fresh { " (fresh start: no state handed over)" } else { "" };
        info!(
            "push: {} bytes for {} received intact {}; swapping{how}",
            t.size,
            t.name.as_str(),
            t.started.since(t.size)
        );
        let bytes = &t.frames.as_mut_slice()[..t.size];
        let o = super::swap::swap(t.name.as_str(), super::swap::Source::Pushed(bytes), t.fresh);
        self.result(o.swapped, &o.message);
        // `t` goes here: its frames return to the pool (the swap kept its own copy).
    }

    fn frame(&mut self, kind: Kind, seq: u16, payload: &[u8]) {
        let now = crate::time::uptime_ns();
        match kind {
            Kind::Query => {
                let name = core::str::from_utf8(payload).unwrap_or("");
                let version = super::swap::running_version(name).unwrap_or_default();
                self.send(Kind::Info, 0, version.as_bytes());
            }
            Kind::Begin => self.begin(payload, now),
            Kind::BeginV1 => self.nak(
                0,
                false,
                format_args!("BEGIN of host-link protocol 1: this kernel speaks protocol {VERSION} (a window of chunks); update the host tool (`cargo xtask swap`) so they match"),
            ),
            Kind::Data => self.data(seq, payload, now),
            Kind::End => self.end(),
            Kind::Info | Kind::Ack | Kind::Nak | Kind::Result => self.nak(seq, false, format_args!("that frame kind goes from the kernel to the host")),
        }
    }

    fn received(&mut self, r: Received) {
        match r {
            Received::Frame { kind, seq, payload } => self.frame(kind, seq, payload),
            // Not abandoned: the host resends the first chunk missing (the NAK's seq).
            Received::BadCrc { kind, seq } => {
                let ask = match self.transfer.as_mut() {
                    Some(t) => {
                        t.window.asked_for_next();
                        t.window.next()
                    }
                    None => seq,
                };
                self.nak(ask, false, format_args!("frame (kind {kind:#x}, seq {seq}) failed its CRC-32: resend"))
            }
            Received::UnknownKind(k) => self.nak(0, false, format_args!("unknown frame kind {k:#x}")),
        }
    }

    /// Drops a transfer the host stopped feeding.
    fn check_idle(&mut self) {
        let now = crate::time::uptime_ns();
        if let Some(t) = self.transfer.as_ref().filter(|t| t.idle_ms(now) > IDLE_LIMIT_MS) {
            let left = t.left_as_is();
            warn!(
                "push: transfer of {} interrupted: no frame for {} ms after {} of {} bytes; discarded, {}",
                t.name.as_str(),
                IDLE_LIMIT_MS,
                t.window.received(),
                t.size,
                left
            );
            self.transfer = None;
        }
    }
}

fn serve(port: crate::hostlink::Port) {
    let mut link = Link {
        port: port.serial,
        transfer: None,
    };
    let mut decoder = Decoder::new();
    loop {
        while let Some(b) = port.serial.read_byte() {
            if let Some(r) = decoder.push(b) {
                link.received(r);
            }
        }
        link.check_idle();
        // Until the port's interrupt, or long enough for the idle check to be on time.
        port.wait(link.transfer.is_some(), if link.transfer.is_some() { 100 } else { 1000 });
    }
}

/// Starts the receiver if the board has a host link.
pub fn start() {
    match crate::hostlink::Port::find() {
        Some((port, what)) => match crate::sched::spawn("push", crate::sched::Priority::Normal, move || serve(port)) {
            Ok(thread) => info!("push: listening for hot-swap pushes on the host link ({what}, {})", port.listen(thread)),
            Err(e) => warn!("push: no receiver thread ({e})"),
        },
        None => info!("push: no host link on this board (no mini UART or PCI serial port); swaps come from the initrd only"),
    }
}
