//! The host link: how `cargo xtask swap` pushes a signed envelope to the running kernel
//! over a second serial port, and how the kernel answers. Framing, CRC and message kinds
//! are here, shared by both ends; PROTOCOL.md describes the conversation.
#![no_std]
#![forbid(unsafe_code)]

mod window;

pub use initrd::crc32;
pub use window::{Accept, ChunkError, Window, WINDOW};

/// The protocol version this crate speaks (PROTOCOL.md). 1 had one chunk in flight, each
/// acknowledged before the next was sent; 2 has a window of `WINDOW` chunks in flight and
/// cumulative acknowledgements. A BEGIN carries it; the kernel's ACK of a BEGIN names its own.
pub const VERSION: u16 = 2;

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"QS";
/// Header: magic, kind, reserved, sequence number (u16 LE), payload length (u16 LE).
pub const HEADER_LEN: usize = 8;
pub const CRC_LEN: usize = 4;
/// Largest payload of one frame.
pub const MAX_PAYLOAD: usize = 1024;
/// Envelope bytes per DATA frame.
pub const CHUNK: usize = 1024;
/// Largest envelope a push may carry.
pub const MAX_ENVELOPE: usize = 4 << 20;
/// A transfer with no frame for this long is abandoned by the kernel.
pub const IDLE_LIMIT_MS: u64 = 3000;
/// Longest domain name a `Begin` may carry (a manifest's limit, `loader::manifest::MAX_NAME`).
pub const MAX_NAME: usize = 32;
/// Bit 0 of `Begin::flags` once meant "allow a downgrade". Nothing authenticated it, so the
/// kernel refuses every `Begin` with it set: a downgrade needs a signed downgrade manifest.
pub const RETIRED_FLAG_DOWNGRADE: u32 = 1;
/// Bit 1 of `Begin::flags`: a fresh start. The swap hands no state over (the old version's
/// state is discarded); verification, key policy, rollback floor and version checks are
/// exactly those of any push.
pub const FLAG_FRESH: u32 = 1 << 1;
/// The `Begin` flags this protocol version defines.
pub const KNOWN_FLAGS: u32 = FLAG_FRESH;

/// Frame kinds. Host to kernel below 0x80, kernel to host from 0x80.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Which version of a domain runs? Payload: the domain name. Answer: `Info`.
    Query = 0x01,
    /// Protocol 1's BEGIN, no longer spoken: a kernel answers it with a `Nak` naming the
    /// versions, and so does a protocol-1 kernel a protocol-2 `Begin` (unknown kind 0x05).
    BeginV1 = 0x02,
    /// Envelope bytes, chunk `seq` (counting from 0) at offset `seq * CHUNK`. Answer: `Ack`
    /// (seq: the first chunk not yet received) or `Nak`.
    Data = 0x03,
    /// All bytes sent: verify and swap. Answer: `Result` (or `Nak` if bytes are missing).
    End = 0x04,
    /// A transfer starts (protocol 2). Payload: `Begin`. Answer: `Ack` (seq 0, payload
    /// `BeginAck`) or `Nak`.
    Begin = 0x05,
    /// Payload: the running version as text (`0.1.0`), empty if the domain is not running.
    Info = 0x81,
    Ack = 0x82,
    /// Payload: why, as text. The transfer is over unless the reason says to resend.
    Nak = 0x83,
    /// Payload: 1 byte (1 swapped, 0 refused), then the kernel's message as text.
    Result = 0x84,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0x01 => Kind::Query,
            0x02 => Kind::BeginV1,
            0x05 => Kind::Begin,
            0x03 => Kind::Data,
            0x04 => Kind::End,
            0x81 => Kind::Info,
            0x82 => Kind::Ack,
            0x83 => Kind::Nak,
            0x84 => Kind::Result,
            _ => return None,
        })
    }
}

/// The payload of `Begin`: size and CRC-32 of the whole envelope, flags, protocol version
/// (`VERSION`, written by `encode`), domain name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Begin<'a> {
    pub size: u32,
    pub crc: u32,
    pub flags: u32,
    pub name: &'a str,
}

/// Bytes of a `Begin` payload before the name: size, CRC, flags (u32 each), version, reserved
/// (u16 each).
pub const BEGIN_FIXED: usize = 16;

/// The payload of the kernel's `Ack` of a `Begin`: its protocol version and its window (how
/// many chunks beyond the first missing one the host may send).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeginAck {
    pub version: u16,
    pub window: u16,
}

impl BeginAck {
    pub fn encode(&self) -> [u8; 4] {
        let (v, w) = (self.version.to_le_bytes(), self.window.to_le_bytes());
        [v[0], v[1], w[0], w[1]]
    }

    /// `None` unless `p` is 4 bytes (protocol 1 acknowledged a BEGIN with an empty payload).
    pub fn decode(p: &[u8]) -> Option<BeginAck> {
        match *p {
            [v0, v1, w0, w1] => Some(BeginAck {
                version: u16::from_le_bytes([v0, v1]),
                window: u16::from_le_bytes([w0, w1]),
            }),
            _ => None,
        }
    }
}

/// Why a `Begin` payload is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginError {
    /// Fewer than the `BEGIN_FIXED` bytes of size, CRC, flags, version and reserved.
    Short(usize),
    /// The host speaks another protocol version than `VERSION`.
    Version(u16),
    /// The reserved field is not 0.
    Reserved(u16),
    /// The envelope size is 0 or above `MAX_ENVELOPE`.
    Size(u32),
    /// The retired downgrade bit is set.
    Downgrade,
    /// Flags this protocol does not define.
    UnknownFlags(u32),
    /// The name is empty or longer than `MAX_NAME` bytes.
    NameLength(usize),
    NameNotUtf8,
}

impl core::fmt::Display for BeginError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BeginError::Short(n) => write!(f, "BEGIN: {n} payload bytes, at least {BEGIN_FIXED} expected"),
            BeginError::Version(v) => write!(
                f,
                "BEGIN: the host speaks host-link protocol {v}, this kernel protocol {VERSION}: update the host tool or the kernel so they match"
            ),
            BeginError::Reserved(r) => write!(f, "BEGIN: reserved field {r:#x}, 0 expected"),
            BeginError::Size(n) => write!(f, "BEGIN: {n} bytes is not between 1 and {MAX_ENVELOPE}"),
            BeginError::Downgrade => f.write_str("BEGIN: the downgrade flag is refused: downgrades need a signed downgrade manifest, never a link flag"),
            BeginError::UnknownFlags(x) => write!(
                f,
                "BEGIN: unknown flags {x:#x} (this protocol defines only FRESH, {FLAG_FRESH:#x}; downgrades need a signed downgrade manifest)"
            ),
            BeginError::NameLength(n) => write!(f, "BEGIN: a domain name of {n} bytes (1 to {MAX_NAME} expected)"),
            BeginError::NameNotUtf8 => f.write_str("BEGIN: the domain name is not UTF-8"),
        }
    }
}

impl<'a> Begin<'a> {
    /// Writes the payload into `out`; returns its length. A name longer than `MAX_NAME` is
    /// sent whole (up to what fits), so the kernel refuses it rather than a cut one swapping.
    pub fn encode(&self, out: &mut [u8; MAX_PAYLOAD]) -> usize {
        self.encode_as(VERSION, out)
    }

    /// As `encode`, claiming protocol `version` (tests of a version mismatch).
    pub fn encode_as(&self, version: u16, out: &mut [u8; MAX_PAYLOAD]) -> usize {
        let name = &self.name.as_bytes()[..self.name.len().min(MAX_PAYLOAD - BEGIN_FIXED)];
        out[0..4].copy_from_slice(&self.size.to_le_bytes());
        out[4..8].copy_from_slice(&self.crc.to_le_bytes());
        out[8..12].copy_from_slice(&self.flags.to_le_bytes());
        out[12..14].copy_from_slice(&version.to_le_bytes());
        out[14..16].copy_from_slice(&[0, 0]);
        out[BEGIN_FIXED..BEGIN_FIXED + name.len()].copy_from_slice(name);
        BEGIN_FIXED + name.len()
    }

    /// Reads and checks a payload: protocol `VERSION`, reserved 0, size within
    /// `1..=MAX_ENVELOPE`, no flag set but `FLAG_FRESH`, a UTF-8 name of 1 to `MAX_NAME` bytes.
    pub fn decode(p: &'a [u8]) -> Result<Begin<'a>, BeginError> {
        let word = |i: usize| p.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let half = |i: usize| p.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let (Some(size), Some(crc), Some(flags), Some(version), Some(reserved)) = (word(0), word(4), word(8), half(12), half(14)) else {
            return Err(BeginError::Short(p.len()));
        };
        if version != VERSION {
            return Err(BeginError::Version(version));
        }
        if reserved != 0 {
            return Err(BeginError::Reserved(reserved));
        }
        if size == 0 || size as usize > MAX_ENVELOPE {
            return Err(BeginError::Size(size));
        }
        if flags & RETIRED_FLAG_DOWNGRADE != 0 {
            return Err(BeginError::Downgrade);
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(BeginError::UnknownFlags(flags & !KNOWN_FLAGS));
        }
        let name = &p[BEGIN_FIXED..];
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(BeginError::NameLength(name.len()));
        }
        let name = core::str::from_utf8(name).map_err(|_| BeginError::NameNotUtf8)?;
        Ok(Begin { size, crc, flags, name })
    }
}

/// Encodes one frame into `out`; returns its length. `payload` longer than `MAX_PAYLOAD`
/// is cut.
pub fn encode(kind: Kind, seq: u16, payload: &[u8], out: &mut [u8; HEADER_LEN + MAX_PAYLOAD + CRC_LEN]) -> usize {
    let n = payload.len().min(MAX_PAYLOAD);
    out[0..2].copy_from_slice(&MAGIC);
    out[2] = kind as u8;
    out[3] = 0;
    out[4..6].copy_from_slice(&seq.to_le_bytes());
    out[6..8].copy_from_slice(&(n as u16).to_le_bytes());
    out[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&payload[..n]);
    let crc = crc32(&out[2..HEADER_LEN + n]);
    out[HEADER_LEN + n..HEADER_LEN + n + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    HEADER_LEN + n + CRC_LEN
}

/// What arrived: a frame, or a frame that failed its checks.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    Frame {
        kind: Kind,
        seq: u16,
        payload: &'a [u8],
    },
    /// The CRC did not match (the frame's header is given as read, maybe itself damaged).
    BadCrc {
        kind: u8,
        seq: u16,
    },
    /// A valid frame of a kind this side does not know.
    UnknownKind(u8),
}

/// Reassembles frames from a byte stream. Bytes before a magic are skipped; a declared
/// length above `MAX_PAYLOAD` or a reserved byte other than 0 drops the header and looks
/// for the next magic (so every frame handed out is the one encoding of its contents).
pub struct Decoder {
    buf: [u8; HEADER_LEN + MAX_PAYLOAD + CRC_LEN],
    have: usize,
    /// Bytes skipped while looking for a frame start (for diagnostics).
    pub skipped: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub const fn new() -> Self {
        Decoder {
            buf: [0; HEADER_LEN + MAX_PAYLOAD + CRC_LEN],
            have: 0,
            skipped: 0,
        }
    }

    /// Feeds one byte; returns something once a whole frame is in.
    pub fn push(&mut self, b: u8) -> Option<Received<'_>> {
        if self.have < 2 && b != MAGIC[self.have] {
            // Not a frame start: resynchronise (a lone 'Q' may begin the magic again).
            self.skipped += self.have as u64 + 1;
            self.have = 0;
            if b == MAGIC[0] {
                self.skipped -= 1;
                self.buf[0] = b;
                self.have = 1;
            }
            return None;
        }
        self.buf[self.have] = b;
        self.have += 1;
        if self.have < HEADER_LEN {
            return None;
        }
        let len = u16::from_le_bytes([self.buf[6], self.buf[7]]) as usize;
        if len > MAX_PAYLOAD || self.buf[3] != 0 {
            self.skipped += self.have as u64;
            self.have = 0;
            return None;
        }
        if self.have < HEADER_LEN + len + CRC_LEN {
            return None;
        }
        self.have = 0;
        let body = &self.buf[2..HEADER_LEN + len];
        let crc_at = HEADER_LEN + len;
        let crc = u32::from_le_bytes([self.buf[crc_at], self.buf[crc_at + 1], self.buf[crc_at + 2], self.buf[crc_at + 3]]);
        let seq = u16::from_le_bytes([self.buf[4], self.buf[5]]);
        if crc32(body) != crc {
            return Some(Received::BadCrc { kind: self.buf[2], seq });
        }
        match Kind::from_u8(self.buf[2]) {
            Some(kind) => Some(Received::Frame {
                kind,
                seq,
                payload: &self.buf[HEADER_LEN..HEADER_LEN + len],
            }),
            None => Some(Received::UnknownKind(self.buf[2])),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn frame(kind: Kind, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = [0; HEADER_LEN + MAX_PAYLOAD + CRC_LEN];
        let n = encode(kind, seq, payload, &mut out);
        out[..n].to_vec()
    }

    fn decode_all(bytes: &[u8]) -> Vec<std::string::String> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for &b in bytes {
            if let Some(r) = d.push(b) {
                out.push(std::format!("{r:?}"));
            }
        }
        out
    }

    #[test]
    fn frames_round_trip_after_noise() {
        let mut bytes = b"QQxS noise Q".to_vec();
        bytes.extend(frame(Kind::Data, 7, b"hello"));
        bytes.extend(frame(Kind::End, 0, b""));
        assert_eq!(
            decode_all(&bytes),
            [
                "Frame { kind: Data, seq: 7, payload: [104, 101, 108, 108, 111] }",
                "Frame { kind: End, seq: 0, payload: [] }"
            ]
        );
    }

    #[test]
    fn a_damaged_frame_is_reported_and_the_next_one_still_decodes() {
        let mut bytes = frame(Kind::Data, 3, &[9; 100]);
        bytes[50] ^= 0x10;
        bytes.extend(frame(Kind::Data, 3, &[9; 100]));
        let got = decode_all(&bytes);
        assert_eq!(got[0], "BadCrc { kind: 3, seq: 3 }");
        assert!(got[1].starts_with("Frame { kind: Data, seq: 3"), "{got:?}");
    }

    #[test]
    fn an_oversized_length_is_dropped_not_buffered() {
        let mut bytes = frame(Kind::Data, 1, b"x");
        bytes[6] = 0xff;
        bytes[7] = 0xff;
        bytes.extend(frame(Kind::End, 0, b""));
        assert_eq!(decode_all(&bytes), ["Frame { kind: End, seq: 0, payload: [] }"]);
    }

    #[test]
    fn a_nonzero_reserved_byte_is_dropped_not_accepted() {
        // Found by the `hostlink` fuzz target: such a frame, its CRC right, was accepted,
        // so two byte strings decoded to one frame.
        let mut bytes = frame(Kind::Nak, 0, b"x");
        bytes[3] = b'Q';
        let crc = crc32(&bytes[2..HEADER_LEN + 1]);
        bytes[HEADER_LEN + 1..].copy_from_slice(&crc.to_le_bytes());
        bytes.extend(frame(Kind::End, 0, b""));
        assert_eq!(decode_all(&bytes), ["Frame { kind: End, seq: 0, payload: [] }"]);
    }

    #[test]
    fn begin_payload_round_trips() {
        let b = Begin {
            size: 70_000,
            crc: 0xdead_beef,
            flags: 0,
            name: "console",
        };
        let mut out = [0; MAX_PAYLOAD];
        let n = b.encode(&mut out);
        assert_eq!(Begin::decode(&out[..n]), Ok(b));
        assert_eq!(Begin::decode(&out[..5]), Err(BeginError::Short(5)));
    }

    fn begin(size: u32, flags: u32, name: &str) -> Result<(), BeginError> {
        let mut out = [0; MAX_PAYLOAD];
        let n = Begin { size, crc: 0, flags, name }.encode(&mut out);
        Begin::decode(&out[..n]).map(|_| ())
    }

    #[test]
    fn begin_refuses_the_downgrade_bit_and_unknown_flags() {
        assert_eq!(begin(100, RETIRED_FLAG_DOWNGRADE, "hello"), Err(BeginError::Downgrade));
        assert_eq!(begin(100, RETIRED_FLAG_DOWNGRADE | 0x10, "hello"), Err(BeginError::Downgrade));
        assert_eq!(begin(100, 0x8000_0000, "hello"), Err(BeginError::UnknownFlags(0x8000_0000)));
        assert_eq!(begin(100, FLAG_FRESH | 0x4, "hello"), Err(BeginError::UnknownFlags(0x4)));
        assert_eq!(begin(100, RETIRED_FLAG_DOWNGRADE | FLAG_FRESH, "hello"), Err(BeginError::Downgrade));
        let why = std::format!("{}", BeginError::Downgrade);
        assert!(why.contains("signed downgrade manifest"), "{why}");
    }

    #[test]
    fn begin_accepts_the_fresh_flag_alone() {
        let mut out = [0; MAX_PAYLOAD];
        let b = Begin {
            size: 100,
            crc: 7,
            flags: FLAG_FRESH,
            name: "hello",
        };
        let n = b.encode(&mut out);
        assert_eq!(Begin::decode(&out[..n]), Ok(b));
        assert_eq!(FLAG_FRESH, 2, "bit 0 stays the retired downgrade bit, refused");
    }

    #[test]
    fn begin_of_another_version_or_with_reserved_bits_is_refused_by_name() {
        let b = Begin {
            size: 100,
            crc: 7,
            flags: 0,
            name: "hello",
        };
        let mut out = [0; MAX_PAYLOAD];
        let n = b.encode_as(1, &mut out);
        assert_eq!(Begin::decode(&out[..n]), Err(BeginError::Version(1)));
        let why = std::format!("{}", BeginError::Version(1));
        assert!(why.contains("host-link protocol 1, this kernel protocol 2"), "{why}");
        let n = b.encode(&mut out);
        out[15] = 0x80;
        assert_eq!(Begin::decode(&out[..n]), Err(BeginError::Reserved(0x8000)));
        assert_eq!(Kind::from_u8(0x02), Some(Kind::BeginV1));
        assert_eq!(Kind::from_u8(0x05), Some(Kind::Begin));
    }

    #[test]
    fn begin_ack_round_trips_and_protocol_1s_empty_ack_is_none() {
        let a = BeginAck {
            version: VERSION,
            window: WINDOW,
        };
        assert_eq!(BeginAck::decode(&a.encode()), Some(a));
        assert_eq!(BeginAck::decode(&[]), None);
    }

    #[test]
    fn begin_bounds_size_and_name() {
        assert_eq!(begin(0, 0, "hello"), Err(BeginError::Size(0)));
        assert_eq!(begin(MAX_ENVELOPE as u32 + 1, 0, "hello"), Err(BeginError::Size(MAX_ENVELOPE as u32 + 1)));
        assert_eq!(begin(MAX_ENVELOPE as u32, 0, "hello"), Ok(()));
        assert_eq!(begin(1, 0, ""), Err(BeginError::NameLength(0)));
        let long = "x".repeat(MAX_NAME + 1);
        assert_eq!(begin(1, 0, &long), Err(BeginError::NameLength(MAX_NAME + 1)));
        assert_eq!(begin(1, 0, &long[..MAX_NAME]), Ok(()));
        let mut p = [0u8; BEGIN_FIXED + 2];
        p[0] = 1;
        p[12..14].copy_from_slice(&VERSION.to_le_bytes());
        p[BEGIN_FIXED..].copy_from_slice(&[0xff, 0xfe]);
        assert_eq!(Begin::decode(&p), Err(BeginError::NameNotUtf8));
    }
}
