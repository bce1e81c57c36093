//! The receiver's window of DATA chunks (protocol 2): which chunks of a transfer are in,
//! which one comes next, and what to do with each chunk that arrives. Chunk `seq` holds
//! envelope bytes `seq * CHUNK ..`, so a chunk has one place in the transfer's buffer
//! whatever order it arrives in; the window only bounds how far ahead of the first missing
//! chunk the host may send (`WINDOW` chunks), so the receiver's bookkeeping is one word.

use crate::{CHUNK, MAX_ENVELOPE};

/// Chunks the host may have in flight beyond the first missing one: chunk `seq` is accepted
/// only if `next <= seq < next + WINDOW`. At most 32 (one bit each in `Window::seen`).
pub const WINDOW: u16 = 16;
const _: () = assert!(WINDOW as u32 <= u32::BITS && WINDOW > 0);
// Every chunk of the largest envelope has a sequence number.
const _: () = assert!(MAX_ENVELOPE.div_ceil(CHUNK) <= u16::MAX as usize);

/// What to do with a DATA chunk that passed its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// A chunk not yet received: store it at `offset` of the transfer's buffer, then `mark`.
    New { offset: usize },
    /// A chunk already in (a resend, or a copy): ignore its bytes, acknowledge again.
    Duplicate,
}

/// Why a DATA chunk ends the transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// `seq` is at or past `next + WINDOW`: the host sent more than the window allows.
    BeyondWindow { seq: u16, next: u16 },
    /// The transfer has only `chunks` chunks.
    PastEnd { seq: u16, chunks: u16 },
    /// Chunk `seq` must carry `expected` bytes (`CHUNK`, or what is left for the last one).
    Length { seq: u16, len: usize, expected: usize },
}

impl core::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ChunkError::BeyondWindow { seq, next } => write!(
                f,
                "chunk {seq} is beyond the window (chunks {next} to {} may be in flight, at most {WINDOW})",
                next as u32 + WINDOW as u32 - 1
            ),
            ChunkError::PastEnd { seq, chunks } => write!(f, "chunk {seq} runs past the announced size ({chunks} chunks)"),
            ChunkError::Length { seq, len, expected } => write!(f, "chunk {seq} carries {len} bytes, {expected} expected"),
        }
    }
}

/// The chunks of one transfer of `size` bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    size: usize,
    chunks: u16,
    /// The first chunk not received: every chunk below it is in.
    next: u16,
    /// Bit `i`: chunk `next + i` is in (bit 0 is never set).
    seen: u32,
    /// Envelope bytes received (every chunk counted once).
    received: usize,
    /// The missing chunk last asked for (`missing` asks once per gap).
    asked: Option<u16>,
}

impl Window {
    /// A transfer of `size` bytes (at most `MAX_ENVELOPE`, which `Begin::decode` ensures;
    /// a larger size is treated as `MAX_ENVELOPE`).
    pub fn new(size: usize) -> Window {
        let size = size.min(MAX_ENVELOPE);
        Window {
            size,
            chunks: size.div_ceil(CHUNK) as u16,
            next: 0,
            seen: 0,
            received: 0,
            asked: None,
        }
    }

    /// The first chunk not yet received (`chunks()` once all are in): what an ACK carries.
    pub fn next(&self) -> u16 {
        self.next
    }

    pub fn chunks(&self) -> u16 {
        self.chunks
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    pub fn complete(&self) -> bool {
        self.next == self.chunks
    }

    /// Judges DATA chunk `seq` of `len` bytes; changes nothing.
    pub fn check(&self, seq: u16, len: usize) -> Result<Accept, ChunkError> {
        if seq >= self.chunks {
            return Err(ChunkError::PastEnd { seq, chunks: self.chunks });
        }
        let offset = seq as usize * CHUNK;
        let expected = (self.size - offset).min(CHUNK);
        if len != expected {
            return Err(ChunkError::Length { seq, len, expected });
        }
        if seq < self.next {
            return Ok(Accept::Duplicate);
        }
        let ahead = seq - self.next;
        if ahead >= WINDOW {
            return Err(ChunkError::BeyondWindow { seq, next: self.next });
        }
        if self.seen & (1 << ahead) != 0 {
            return Ok(Accept::Duplicate);
        }
        Ok(Accept::New { offset })
    }

    /// Records that chunk `seq`, judged `New` by `check`, is stored. Anything else is
    /// ignored.
    pub fn mark(&mut self, seq: u16) {
        if seq < self.next || seq >= self.chunks || seq - self.next >= WINDOW || self.seen & (1 << (seq - self.next)) != 0 {
            return;
        }
        self.received += (self.size - seq as usize * CHUNK).min(CHUNK);
        self.seen |= 1 << (seq - self.next);
        // Slide past every chunk now in.
        let run = self.seen.trailing_ones();
        self.next += run as u16;
        self.seen = self.seen.checked_shr(run).unwrap_or(0);
    }

    /// The first missing chunk, if a later one is in (a gap: the chunk was lost or damaged
    /// on the way), the first time this gap is seen; `None` otherwise. The receiver asks
    /// the host to resend it, once.
    pub fn missing(&mut self) -> Option<u16> {
        (self.seen != 0 && self.asked != Some(self.next)).then(|| {
            self.asked = Some(self.next);
            self.next
        })
    }

    /// Notes that chunk `next()` was asked for (after a damaged frame), so the gap that
    /// follows is not asked for again.
    pub fn asked_for_next(&mut self) {
        self.asked = Some(self.next);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn take(w: &mut Window, seq: u16) -> Result<Accept, ChunkError> {
        let len = (w.size - seq as usize * CHUNK).min(CHUNK);
        let a = w.check(seq, len)?;
        w.mark(seq);
        Ok(a)
    }

    #[test]
    fn in_order_chunks_slide_the_window() {
        let mut w = Window::new(3 * CHUNK + 10);
        assert_eq!(w.chunks(), 4);
        for seq in 0..4 {
            assert_eq!(take(&mut w, seq), Ok(Accept::New { offset: seq as usize * CHUNK }));
            assert_eq!(w.next(), seq + 1);
            assert_eq!(w.missing(), None);
        }
        assert!(w.complete());
        assert_eq!(w.received(), 3 * CHUNK + 10);
    }

    #[test]
    fn out_of_order_chunks_fill_the_gap_and_are_asked_for_once() {
        let mut w = Window::new(8 * CHUNK);
        take(&mut w, 0).unwrap();
        assert_eq!(take(&mut w, 2), Ok(Accept::New { offset: 2 * CHUNK }));
        assert_eq!(w.next(), 1);
        assert_eq!(w.missing(), Some(1));
        take(&mut w, 3).unwrap();
        assert_eq!(w.missing(), None, "the same gap is asked for once");
        assert_eq!(take(&mut w, 1), Ok(Accept::New { offset: CHUNK }));
        assert_eq!(w.next(), 4);
        assert_eq!(w.received(), 4 * CHUNK);
    }

    #[test]
    fn duplicates_are_recognised_below_and_inside_the_window() {
        let mut w = Window::new(8 * CHUNK);
        take(&mut w, 0).unwrap();
        take(&mut w, 2).unwrap();
        assert_eq!(take(&mut w, 0), Ok(Accept::Duplicate));
        assert_eq!(take(&mut w, 2), Ok(Accept::Duplicate));
        assert_eq!(w.received(), 2 * CHUNK, "a duplicate counts once");
    }

    #[test]
    fn a_chunk_beyond_the_window_or_the_end_or_of_the_wrong_length_is_refused() {
        let mut w = Window::new(100 * CHUNK + 1);
        assert_eq!(w.check(WINDOW, CHUNK), Err(ChunkError::BeyondWindow { seq: WINDOW, next: 0 }));
        assert_eq!(
            w.check(WINDOW - 1, CHUNK),
            Ok(Accept::New {
                offset: (WINDOW as usize - 1) * CHUNK
            })
        );
        assert_eq!(w.check(101, 1), Err(ChunkError::PastEnd { seq: 101, chunks: 101 }));
        assert_eq!(w.check(100, 2), Err(ChunkError::Length { seq: 100, len: 2, expected: 1 }));
        assert_eq!(
            w.check(3, 10),
            Err(ChunkError::Length {
                seq: 3,
                len: 10,
                expected: CHUNK
            })
        );
        take(&mut w, 0).unwrap();
        assert_eq!(
            w.check(WINDOW, CHUNK),
            Ok(Accept::New {
                offset: WINDOW as usize * CHUNK
            })
        );
        let why = std::format!("{}", ChunkError::BeyondWindow { seq: 40, next: 3 });
        assert!(why.contains("chunks 3 to 18 may be in flight"), "{why}");
    }

    #[test]
    fn every_order_within_the_window_completes() {
        // Reversed, a whole window at a time: the bookkeeping never loses a chunk.
        let n = 5 * WINDOW;
        let mut w = Window::new(n as usize * CHUNK);
        for base in (0..n).step_by(WINDOW as usize) {
            for seq in (base..base + WINDOW).rev() {
                assert!(matches!(take(&mut w, seq), Ok(Accept::New { .. })), "chunk {seq}");
            }
            assert_eq!(w.next(), base + WINDOW);
        }
        assert!(w.complete());
        assert_eq!(w.received(), n as usize * CHUNK);
    }

    #[test]
    fn the_damaged_chunk_asked_for_is_not_asked_for_again_by_the_gap() {
        let mut w = Window::new(4 * CHUNK);
        w.asked_for_next();
        take(&mut w, 1).unwrap();
        assert_eq!(w.missing(), None);
    }
}
