//! Host-link frames, as the kernel receives them: one byte at a time.

use crate::Outcome;
use pushlink::{crc32, encode, Accept, Begin, Decoder, Kind, Received, Window, CHUNK, CRC_LEN, HEADER_LEN, MAGIC, MAX_PAYLOAD, WINDOW};

const FRAME_MAX: usize = HEADER_LEN + MAX_PAYLOAD + CRC_LEN;

/// How `Decoder::push` judged a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Good(Kind),
    BadCrc,
    UnknownKind,
}

/// A frame `Decoder::push` handed out: kind byte, sequence number, payload, verdict.
type Item = (u8, u16, Vec<u8>, Verdict);

/// `Decoder` fed byte by byte: every byte fed is skipped, part of exactly one reported
/// frame, or (less than one frame's worth) still buffered; each reported frame is the very
/// bytes that ended at that byte, with its declared length within `MAX_PAYLOAD` and its
/// CRC judged right; good frames re-encode to themselves and decode again from a clean
/// stream; a BEGIN payload that decodes re-encodes to itself; the DATA chunks, fed to the
/// receiver's `Window` (sized by the last good BEGIN), keep its bookkeeping consistent.
pub fn hostlink(data: &[u8]) -> Outcome {
    let items = decode_stream(data);
    check_window(&items);
    let mut clean = Vec::new();
    let mut good = Vec::new();
    for (kind, seq, payload, verdict) in &items {
        if let Verdict::Good(k) = verdict {
            let mut out = [0u8; FRAME_MAX];
            let n = encode(*k, *seq, payload, &mut out);
            clean.extend_from_slice(&out[..n]);
            good.push((*kind, *seq, payload.clone(), *verdict));
            if *k == Kind::Begin {
                check_begin(payload);
            }
        }
    }
    assert_eq!(decode_stream(&clean), good, "re-encoded frames decode differently");
    check_begin(data);
    Outcome::of(!good.is_empty())
}

/// Decodes `data` byte by byte, checking each reported frame against the bytes it came from.
fn decode_stream(data: &[u8]) -> Vec<Item> {
    let mut d = Decoder::new();
    let mut items = Vec::new();
    // Bytes fed = skipped + buffered + bytes of the frames reported so far.
    let mut reported = 0usize;
    for (i, &byte) in data.iter().enumerate() {
        let fed = i + 1;
        let got = d.push(byte).map(|r| match r {
            Received::Frame { kind, seq, payload } => (kind as u8, seq, payload.to_vec(), Verdict::Good(kind)),
            Received::BadCrc { kind, seq } => (kind, seq, Vec::new(), Verdict::BadCrc),
            Received::UnknownKind(kind) => (kind, 0, Vec::new(), Verdict::UnknownKind),
        });
        let skipped = usize::try_from(d.skipped).expect("skipped fits in usize");
        assert!(skipped + reported <= fed, "skipped {skipped} + reported {reported} > fed {fed}");
        if let Some(item) = got {
            // Nothing is buffered right after a frame: it is the bytes since the last one.
            let len = fed - skipped - reported;
            check_frame(&data[fed - len..fed], &item);
            reported += len;
            items.push(item);
        } else {
            assert!(fed - skipped - reported < FRAME_MAX, "more than a frame buffered");
        }
    }
    items
}

/// `frame` is what the decoder consumed for `item`.
fn check_frame(frame: &[u8], (kind, seq, payload, verdict): &Item) {
    assert!(
        frame.len() >= HEADER_LEN + CRC_LEN && frame.len() <= FRAME_MAX,
        "frame of {} bytes",
        frame.len()
    );
    let declared = u16::from_le_bytes([frame[6], frame[7]]) as usize;
    assert_eq!(frame[..2], MAGIC);
    assert_eq!(declared, frame.len() - HEADER_LEN - CRC_LEN, "declared length disagrees with the bytes taken");
    assert_eq!(frame[2], *kind);
    let body = &frame[2..HEADER_LEN + declared];
    let crc_ok = crc32(body).to_le_bytes() == frame[HEADER_LEN + declared..];
    let header_seq = u16::from_le_bytes([frame[4], frame[5]]);
    match verdict {
        Verdict::Good(k) => {
            assert!(crc_ok && payload.len() == declared);
            assert_eq!(header_seq, *seq);
            let mut out = [0u8; FRAME_MAX];
            let n = encode(*k, *seq, payload, &mut out);
            assert_eq!(&out[..n], frame, "a decoded frame re-encodes to other bytes");
        }
        // A bad CRC carries the header as read; an unknown kind had a good CRC.
        Verdict::BadCrc => assert!(!crc_ok && header_seq == *seq, "good CRC reported bad, or seq {seq} not the header's"),
        Verdict::UnknownKind => assert!(crc_ok && Kind::from_u8(*kind).is_none(), "kind {kind:#x} wrongly reported unknown"),
    }
}

/// A BEGIN payload that decodes re-encodes to the same bytes.
fn check_begin(payload: &[u8]) {
    if payload.len() > MAX_PAYLOAD {
        return;
    }
    if let Ok(b) = Begin::decode(payload) {
        let mut out = [0u8; MAX_PAYLOAD];
        let n = b.encode(&mut out);
        assert_eq!(&out[..n], payload, "BEGIN {b:?} re-encodes to other bytes");
    }
}

/// Feeds every good DATA chunk to a `Window` as the kernel does: a `New` chunk lies inside
/// the announced size and within `WINDOW` of the first missing one, is counted once, and
/// the window completes exactly when every byte is in.
fn check_window(items: &[Item]) {
    let mut window: Option<(usize, Window)> = None;
    for (_, seq, payload, verdict) in items {
        match verdict {
            Verdict::Good(Kind::Begin) => {
                if let Ok(b) = Begin::decode(payload) {
                    window = Some((b.size as usize, Window::new(b.size as usize)));
                }
            }
            Verdict::Good(Kind::Data) => {
                let Some((size, w)) = window.as_mut() else { continue };
                let (next, received) = (w.next(), w.received());
                match w.check(*seq, payload.len()) {
                    Ok(Accept::New { offset }) => {
                        assert!(offset + payload.len() <= *size && offset == *seq as usize * CHUNK);
                        assert!(*seq >= next && *seq - next < WINDOW, "chunk {seq} accepted with next {next}");
                        w.mark(*seq);
                        assert_eq!(w.received(), received + payload.len());
                        assert_eq!(w.check(*seq, payload.len()), Ok(Accept::Duplicate));
                    }
                    Ok(Accept::Duplicate) => {
                        w.mark(*seq);
                        assert_eq!((w.next(), w.received()), (next, received), "a duplicate changed the window");
                    }
                    // The kernel ends the transfer; nothing is marked.
                    Err(_) => {}
                }
                let _ = w.missing();
                assert!(w.next() <= w.chunks() && w.received() <= *size);
                assert_eq!(w.complete(), w.received() == *size);
            }
            _ => {}
        }
    }
}
