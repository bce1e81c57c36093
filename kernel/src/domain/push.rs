//! Receiving pushed domain versions from the host (pushlink/PROTOCOL.md): a kernel thread
//! polls the host link, reassembles the envelope chunk by chunk (each acknowledged), checks
//! its size and CRC, and hands it to `swap` — which verifies it exactly like a boot-time
//! envelope. Any failure is answered (NAK or a refused RESULT) and logged; the running
//! version keeps serving.

use crate::driver::SerialPort;
use crate::{info, warn};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use pushlink::{Begin, Decoder, Kind, Received, CHUNK, CRC_LEN, HEADER_LEN, IDLE_LIMIT_MS, MAX_ENVELOPE, MAX_PAYLOAD};

/// A transfer in progress.
struct Transfer {
    name: String,
    size: usize,
    crc: u32,
    flags: u32,
    bytes: Vec<u8>,
    next_seq: u16,
    last_frame_ns: u64,
}

struct Link {
    port: &'static dyn SerialPort,
    transfer: Option<Transfer>,
}

impl Link {
    fn send(&self, kind: Kind, seq: u16, payload: &[u8]) {
        let mut out = [0u8; HEADER_LEN + MAX_PAYLOAD + CRC_LEN];
        let n = pushlink::encode(kind, seq, payload, &mut out);
        for &b in &out[..n] {
            self.port.write_byte(b);
        }
    }

    fn nak(&mut self, seq: u16, why: &str, abandon: bool) {
        match (&self.transfer, abandon) {
            (Some(t), true) => warn!("push: {}: {why}; transfer abandoned, the running version keeps serving", t.name),
            _ => warn!("push: {why}"),
        }
        self.send(Kind::Nak, seq, why.as_bytes());
        if abandon {
            self.transfer = None;
        }
    }

    fn frame(&mut self, kind: Kind, seq: u16, payload: &[u8]) {
        let now = crate::time::uptime_ns();
        match kind {
            Kind::Query => {
                let name = core::str::from_utf8(payload).unwrap_or("");
                let version = super::swap::running_version(name).unwrap_or_default();
                self.send(Kind::Info, 0, version.as_bytes());
            }
            Kind::Begin => {
                let Some(b) = Begin::decode(payload) else {
                    return self.nak(0, "BEGIN: malformed payload", true);
                };
                if b.size as usize > MAX_ENVELOPE || b.size == 0 {
                    return self.nak(0, &format!("BEGIN: {} bytes is not between 1 and {MAX_ENVELOPE}", b.size), true);
                }
                info!("push: receiving {} bytes for domain {}", b.size, b.name);
                self.transfer = Some(Transfer {
                    name: b.name.into(),
                    size: b.size as usize,
                    crc: b.crc,
                    flags: b.flags,
                    bytes: Vec::with_capacity(b.size as usize),
                    next_seq: 0,
                    last_frame_ns: now,
                });
                self.send(Kind::Ack, 0, &[]);
            }
            Kind::Data => {
                let Some(t) = self.transfer.as_mut() else {
                    return self.nak(seq, "DATA without a BEGIN", false);
                };
                t.last_frame_ns = now;
                if seq.wrapping_add(1) == t.next_seq {
                    return self.send(Kind::Ack, seq, &[]); // a resend after a lost ACK
                }
                if seq != t.next_seq {
                    let why = format!("chunk {seq} arrived, chunk {} was expected", t.next_seq);
                    return self.nak(seq, &why, true);
                }
                if t.bytes.len() + payload.len() > t.size || payload.len() > CHUNK {
                    let why = format!("chunk {seq} runs past the announced {} bytes", t.size);
                    return self.nak(seq, &why, true);
                }
                t.bytes.extend_from_slice(payload);
                t.next_seq = t.next_seq.wrapping_add(1);
                self.send(Kind::Ack, seq, &[]);
            }
            Kind::End => {
                let Some(t) = self.transfer.as_ref() else {
                    return self.nak(0, "END without a BEGIN", false);
                };
                if t.bytes.len() != t.size {
                    let why = format!("END after {} of {} bytes", t.bytes.len(), t.size);
                    return self.nak(0, &why, true);
                }
                if pushlink::crc32(&t.bytes) != t.crc {
                    return self.nak(0, "the envelope's CRC-32 does not match the one announced", true);
                }
                let Some(t) = self.transfer.take() else { return };
                info!("push: {} bytes for {} received intact; swapping", t.size, t.name);
                let o = super::swap::swap(&t.name, super::swap::Source::Pushed(&t.bytes));
                let mut reply = Vec::with_capacity(1 + o.message.len());
                reply.push(o.swapped as u8);
                reply.extend_from_slice(o.message.as_bytes());
                self.send(Kind::Result, 0, &reply);
            }
            Kind::Info | Kind::Ack | Kind::Nak | Kind::Result => self.nak(seq, "that frame kind goes from the kernel to the host", false),
        }
    }

    fn received(&mut self, r: Received) {
        match r {
            Received::Frame { kind, seq, payload } => self.frame(kind, seq, payload),
            // Not abandoned: the host resends a chunk whose CRC failed.
            Received::BadCrc { kind, seq } => self.nak(seq, &format!("frame (kind {kind:#x}, seq {seq}) failed its CRC-32: resend"), false),
            Received::UnknownKind(k) => self.nak(0, &format!("unknown frame kind {k:#x}"), false),
        }
    }

    /// Drops a transfer the host stopped feeding.
    fn check_idle(&mut self) {
        let now = crate::time::uptime_ns();
        if let Some(t) = self.transfer.as_ref().filter(|t| now - t.last_frame_ns > IDLE_LIMIT_MS * 1_000_000) {
            warn!(
                "push: transfer of {} interrupted: no frame for {} ms after {} of {} bytes; discarded, the running version keeps serving",
                t.name,
                IDLE_LIMIT_MS,
                t.bytes.len(),
                t.size
            );
            self.transfer = None;
        }
    }
}

fn serve(port: &'static dyn SerialPort) {
    let mut link = Link { port, transfer: None };
    let mut decoder = Decoder::new();
    loop {
        while let Some(b) = port.read_byte() {
            if let Some(r) = decoder.push(b) {
                link.received(r);
            }
        }
        link.check_idle();
        if link.transfer.is_some() {
            // Polled: keep the port drained while a transfer runs (others still get turns).
            crate::sched::yield_now();
        } else {
            crate::sched::sleep_ms(10);
        }
    }
}

/// Starts the receiver if the board has a host link.
pub fn start() {
    match crate::hostlink::find() {
        Some((port, what)) => match crate::sched::spawn("push", crate::sched::Priority::Normal, move || serve(port)) {
            Ok(_) => info!("push: listening for hot-swap pushes on the host link ({what})"),
            Err(e) => warn!("push: no receiver thread ({e})"),
        },
        None => info!("push: no host link on this board (no mini UART or PCI serial port); swaps come from the initrd only"),
    }
}
