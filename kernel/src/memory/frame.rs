//! Physical frame allocator: one bit per 4 KiB frame over the span of RAM, first fit for
//! contiguous runs. The bitmap itself lives in RAM it carves out at start-up.

use crate::memory::Region;

pub const FRAME_SIZE: usize = 4096;

pub struct FrameAllocator {
    base: usize,
    bitmap: &'static mut [u64],
    frames: usize,
    free: usize,
    /// Lowest frame index that may be free (search hint).
    hint: usize,
}

impl FrameAllocator {
    /// An allocator for frames in `[base, base + frames * 4096)`, all initially in use.
    pub fn new(base: usize, frames: usize, bitmap: &'static mut [u64]) -> Self {
        assert!(bitmap.len() * 64 >= frames, "frame bitmap too small");
        bitmap.fill(u64::MAX);
        Self {
            base,
            bitmap,
            frames,
            free: 0,
            hint: 0,
        }
    }

    fn index(&self, addr: usize) -> Option<usize> {
        let i = addr.checked_sub(self.base)? / FRAME_SIZE;
        (i < self.frames).then_some(i)
    }

    fn is_used(&self, i: usize) -> bool {
        self.bitmap[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, used: bool) {
        if self.is_used(i) == used {
            return;
        }
        if used {
            self.bitmap[i / 64] |= 1 << (i % 64);
            self.free -= 1;
        } else {
            self.bitmap[i / 64] &= !(1 << (i % 64));
            self.free += 1;
        }
    }

    /// Marks frames `[first, end)` (indices, clipped to the allocator's) used or free, a
    /// bitmap word at a time (start-up marks all of RAM: tens of thousands of frames).
    fn set_range(&mut self, first: usize, end: usize, used: bool) {
        let (mut i, end) = (first, end.min(self.frames));
        while i < end {
            let (word, bit) = (i / 64, i % 64);
            let n = (64 - bit).min(end - i);
            let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << bit };
            let before = self.bitmap[word];
            let after = if used { before | mask } else { before & !mask };
            let changed = (before ^ after).count_ones() as usize;
            if used {
                self.free -= changed;
            } else {
                self.free += changed;
            }
            self.bitmap[word] = after;
            i += n;
        }
    }

    /// The indices `[first, end)` of the frames that start in `[start, end)`, clipped to
    /// the allocator's span.
    fn frames_starting_in(&self, start: usize, end: usize) -> (usize, usize) {
        let first = start.saturating_sub(self.base).div_ceil(FRAME_SIZE);
        let last = end.saturating_sub(self.base).div_ceil(FRAME_SIZE);
        (first.min(self.frames), last.min(self.frames))
    }

    /// Marks the whole frames inside `r` free.
    pub fn add_free(&mut self, r: Region) {
        let start = r.base.div_ceil(FRAME_SIZE) * FRAME_SIZE;
        let end = r.end() / FRAME_SIZE * FRAME_SIZE;
        if start < end {
            let (first, last) = self.frames_starting_in(start, end);
            self.set_range(first, last, false);
        }
        self.hint = 0;
    }

    /// Marks every frame touching `r` used.
    pub fn reserve(&mut self, r: Region) {
        let start = r.base / FRAME_SIZE * FRAME_SIZE;
        if start < r.end() {
            let (first, last) = self.frames_starting_in(start, r.end());
            self.set_range(first, last, true);
        }
    }

    /// `count` contiguous free frames, marked used; their physical address.
    pub fn alloc(&mut self, count: usize) -> Option<usize> {
        if count == 0 || count > self.free {
            return None;
        }
        let mut run = 0;
        let mut i = self.hint;
        while i < self.frames {
            if self.is_used(i) {
                run = 0;
                // Skip whole used words quickly.
                if i.is_multiple_of(64) && self.bitmap[i / 64] == u64::MAX {
                    i += 64;
                    continue;
                }
            } else {
                run += 1;
                if run == count {
                    let first = i + 1 - count;
                    for j in first..=i {
                        self.set(j, true);
                    }
                    if count == 1 || first == self.hint {
                        self.hint = i + 1;
                    }
                    return Some(self.base + first * FRAME_SIZE);
                }
            }
            i += 1;
        }
        None
    }

    /// Returns `count` frames from `addr`. Freeing a frame twice is a kernel bug.
    pub fn free(&mut self, addr: usize, count: usize) {
        for k in 0..count {
            let i = self.index(addr + k * FRAME_SIZE).expect("freeing a frame outside RAM");
            assert!(self.is_used(i), "frame {:#x} freed twice", addr + k * FRAME_SIZE);
            self.set(i, false);
            self.hint = self.hint.min(i);
        }
    }

    pub fn free_frames(&self) -> usize {
        self.free
    }
}
