#![forbid(unsafe_code)]
//! A virtio split virtqueue (virtio 1.2, 2.7) over a granted virtio-mmio transport, legacy
//! (version 1) or modern (version 2). This is the only code that gives a device memory
//! addresses: the ring lives in a DMA buffer only this queue holds, and a request's
//! buffers are moved into the queue until the device hands them back, so a device never
//! writes memory that was freed or that the driver did not hand it. Dropping the queue
//! resets the device first. Everything the device writes into the used ring is checked.

use crate::device::{Device, Mmio};
use crate::dma::{DmaBuffer, DmaError};
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

const REG_VERSION: usize = 0x004;
const REG_GUEST_PAGE_SIZE: usize = 0x028;
const REG_QUEUE_SEL: usize = 0x030;
const REG_QUEUE_NUM_MAX: usize = 0x034;
const REG_QUEUE_NUM: usize = 0x038;
const REG_QUEUE_ALIGN: usize = 0x03c;
const REG_QUEUE_PFN: usize = 0x040;
const REG_QUEUE_READY: usize = 0x044;
const REG_QUEUE_NOTIFY: usize = 0x050;
const REG_STATUS: usize = 0x070;
const REG_QUEUE_DESC: usize = 0x080;
const REG_QUEUE_DRIVER: usize = 0x090;
const REG_QUEUE_DEVICE: usize = 0x0a0;

const PAGE: usize = 4096;
const DESC_NEXT: u16 = 1;
const DESC_WRITE: u16 = 2;
/// Largest queue this code sets up.
pub const MAX_QUEUE_SIZE: u16 = 256;

/// Who reads a buffer of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The device reads it (a request header, data to write).
    ToDevice,
    /// The device writes it (data read, a status byte).
    FromDevice,
}

/// Why a queue could not be set up or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The transport is neither version 1 nor 2.
    UnknownVersion(u32),
    /// The device has no such queue, or it is in use.
    NoQueue,
    /// The size asked for is 0, not a power of two, or above what the device allows.
    BadSize,
    Dma(DmaError),
    /// Not enough free descriptors for the request; try again once some complete.
    Full,
    /// A request needs at least one buffer.
    Empty,
}

impl core::fmt::Display for QueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            QueueError::UnknownVersion(v) => write!(f, "virtio-mmio version {v} is neither 1 (legacy) nor 2"),
            QueueError::NoQueue => f.write_str("the device has no such queue, or it is in use"),
            QueueError::BadSize => f.write_str("the queue size is 0, not a power of two, or larger than the device allows"),
            QueueError::Dma(e) => write!(f, "{e}"),
            QueueError::Full => f.write_str("the queue has no free descriptors"),
            QueueError::Empty => f.write_str("a request without buffers"),
        }
    }
}

/// What the device handed back that made no sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsedError {
    /// The used ring names a descriptor that starts no request in flight.
    UnknownId(u32),
}

/// One descriptor of a request: `len` bytes from `offset` of buffer `buffer` (an index into
/// the request's buffers), read or written by the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub buffer: usize,
    pub offset: usize,
    pub len: usize,
    pub direction: Direction,
}

/// A request the device completed: its buffers back, in the order given, and the bytes
/// the device says it wrote (not trusted: at most the writable segments' total).
pub struct Completed {
    pub token: u16,
    pub written: usize,
    pub buffers: Vec<DmaBuffer>,
}

struct InFlight {
    descriptors: Vec<u16>,
    buffers: Vec<DmaBuffer>,
    writable: usize,
}

pub struct VirtQueue {
    mmio: Mmio,
    index: u16,
    size: u16,
    ring: DmaBuffer,
    avail_offset: usize,
    used_offset: usize,
    free: Vec<u16>,
    in_flight: Vec<Option<InFlight>>,
    avail_idx: u16,
    last_used: u16,
}

/// Held across every sequence of kept-register writes (a queue's set-up, a status write,
/// a reset), so the threads of a domain cannot interleave them.
static SETUP: crate::Mutex<()> = crate::Mutex::new(());

/// Writes the device status register (virtio 1.2, 2.1): 0 resets the device.
pub fn set_status(device: &Device, status: u32) {
    SETUP.with(|_| device.mmio.write32_kept(REG_STATUS, status));
}

/// The largest size queue `index` of `device` allows (0: no such queue).
pub fn queue_max(device: &Device, index: u16) -> u32 {
    SETUP.with(|_| {
        device.mmio.write32_kept(REG_QUEUE_SEL, index as u32);
        device.mmio.read32(REG_QUEUE_NUM_MAX)
    })
}

impl VirtQueue {
    /// Sets up queue `index` of `device` with `size` descriptors (a power of two, at most
    /// what the device allows and `MAX_QUEUE_SIZE`). Call it after feature negotiation
    /// and before setting DRIVER_OK.
    pub fn new(device: &Device, index: u16, size: u16) -> Result<VirtQueue, QueueError> {
        SETUP.with(|_| Self::set_up(device, index, size))
    }

    fn set_up(device: &Device, index: u16, size: u16) -> Result<VirtQueue, QueueError> {
        let mmio = device.mmio.duplicate();
        let version = mmio.read32(REG_VERSION);
        if version != 1 && version != 2 {
            return Err(QueueError::UnknownVersion(version));
        }
        mmio.write32_kept(REG_QUEUE_SEL, index as u32);
        let max = mmio.read32(REG_QUEUE_NUM_MAX);
        let in_use = if version == 1 {
            mmio.read32(REG_QUEUE_PFN) != 0
        } else {
            mmio.read32(REG_QUEUE_READY) != 0
        };
        if max == 0 || in_use {
            return Err(QueueError::NoQueue);
        }
        if size == 0 || !size.is_power_of_two() || size > MAX_QUEUE_SIZE || size as u32 > max {
            return Err(QueueError::BadSize);
        }
        let n = size as usize;
        let avail_offset = 16 * n;
        let used_offset = (avail_offset + 6 + 2 * n).next_multiple_of(PAGE);
        let ring = DmaBuffer::new(used_offset + 6 + 8 * n).map_err(QueueError::Dma)?;
        let base = ring.device_address();
        mmio.write32_kept(REG_QUEUE_NUM, size as u32);
        if version == 1 {
            mmio.write32_kept(REG_GUEST_PAGE_SIZE, PAGE as u32);
            mmio.write32_kept(REG_QUEUE_ALIGN, PAGE as u32);
            mmio.write32_kept(REG_QUEUE_PFN, (base / PAGE as u64) as u32);
        } else {
            for (reg, addr) in [
                (REG_QUEUE_DESC, base),
                (REG_QUEUE_DRIVER, base + avail_offset as u64),
                (REG_QUEUE_DEVICE, base + used_offset as u64),
            ] {
                mmio.write32_kept(reg, addr as u32);
                mmio.write32_kept(reg + 4, (addr >> 32) as u32);
            }
            mmio.write32_kept(REG_QUEUE_READY, 1);
        }
        Ok(VirtQueue {
            mmio,
            index,
            size,
            ring,
            avail_offset,
            used_offset,
            free: (0..size).rev().collect(),
            in_flight: (0..size).map(|_| None).collect(),
            avail_idx: 0,
            last_used: 0,
        })
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    /// Free descriptors (a request takes one per buffer).
    pub fn free_descriptors(&self) -> usize {
        self.free.len()
    }

    /// Makes `segments` (over `buffers`) one request, a descriptor chain in order, and
    /// offers it to the device; returns its token (what `pop_used` reports). The buffers
    /// stay with the queue until the device completes the request; on error they are given
    /// back.
    pub fn add(&mut self, buffers: Vec<DmaBuffer>, segments: &[Segment]) -> Result<u16, (QueueError, Vec<DmaBuffer>)> {
        if segments.is_empty() {
            return Err((QueueError::Empty, buffers));
        }
        let fits = |s: &Segment| {
            buffers
                .get(s.buffer)
                .is_some_and(|b| s.len > 0 && s.offset.checked_add(s.len).is_some_and(|end| end <= b.len()) && s.len <= u32::MAX as usize)
        };
        if !segments.iter().all(fits) {
            return Err((QueueError::Dma(DmaError::OutOfRange), buffers));
        }
        if segments.len() > self.free.len() {
            return Err((QueueError::Full, buffers));
        }
        let descriptors: Vec<u16> = (0..segments.len()).filter_map(|_| self.free.pop()).collect();
        for (i, seg) in segments.iter().enumerate() {
            let d = descriptors[i];
            let (flags, next) = match descriptors.get(i + 1) {
                Some(n) => (DESC_NEXT, *n),
                None => (0, 0),
            };
            let flags = flags | if seg.direction == Direction::FromDevice { DESC_WRITE } else { 0 };
            let at = 16 * d as usize;
            // In range: `fits` above, and `d` < size with the ring holding `size` descriptors.
            let _ = self.ring.write_u64(at, buffers[seg.buffer].device_address() + seg.offset as u64);
            let _ = self.ring.write_u32(at + 8, seg.len as u32);
            let _ = self.ring.write_u16(at + 12, flags);
            let _ = self.ring.write_u16(at + 14, next);
        }
        let writable = segments.iter().filter(|s| s.direction == Direction::FromDevice).map(|s| s.len).sum();
        let head = descriptors[0];
        self.in_flight[head as usize] = Some(InFlight {
            descriptors,
            buffers,
            writable,
        });
        let slot = self.avail_offset + 4 + 2 * (self.avail_idx % self.size) as usize;
        let _ = self.ring.write_u16(slot, head);
        // The entry is in place before the index that publishes it (`write` fences).
        self.avail_idx = self.avail_idx.wrapping_add(1);
        let _ = self.ring.write_u16(self.avail_offset + 2, self.avail_idx);
        Ok(head)
    }

    /// Tells the device there are new requests.
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        self.mmio.write32_kept(REG_QUEUE_NOTIFY, self.index as u32);
    }

    /// The next request the device completed, if any. A used-ring entry that names no
    /// request in flight is an error (the device's), and is skipped.
    pub fn pop_used(&mut self) -> Option<Result<Completed, UsedError>> {
        let used_idx = self.ring.read_u16(self.used_offset + 2).ok()?;
        if used_idx == self.last_used {
            return None;
        }
        let entry = self.used_offset + 4 + 8 * (self.last_used % self.size) as usize;
        self.last_used = self.last_used.wrapping_add(1);
        let id = self.ring.read_u32(entry).unwrap_or(u32::MAX);
        let len = self.ring.read_u32(entry + 4).unwrap_or(0) as usize;
        let Some(done) = self.in_flight.get_mut(id as usize).and_then(Option::take) else {
            return Some(Err(UsedError::UnknownId(id)));
        };
        self.free.extend(done.descriptors.iter().rev());
        Some(Ok(Completed {
            token: id as u16,
            written: len.min(done.writable),
            buffers: done.buffers,
        }))
    }

    /// Requests offered and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().filter(|x| x.is_some()).count()
    }
}

impl Drop for VirtQueue {
    fn drop(&mut self) {
        // The device stops before the ring and the buffers in flight are freed.
        SETUP.with(|_| self.mmio.write32_kept(REG_STATUS, 0));
        fence(Ordering::SeqCst);
    }
}
