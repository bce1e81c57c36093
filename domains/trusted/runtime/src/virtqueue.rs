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

/// What the device handed back that made no sense. Nothing of it is used: the entry is
/// skipped, and no buffer changes hands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsedError {
    /// The used ring names a descriptor that starts no request in flight: an index past
    /// the queue, a descriptor inside a chain, a free one, or a request already completed.
    UnknownId(u32),
    /// The device's used index claims more completions than there are requests in
    /// flight. The ring can no longer be trusted; the caller should reset the device.
    RanAhead { claimed: u16, in_flight: usize },
}

impl core::fmt::Display for UsedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UsedError::UnknownId(id) => write!(f, "the device completed descriptor {id}, which starts no request in flight"),
            UsedError::RanAhead { claimed, in_flight } => {
                write!(f, "the device claims {claimed} new completions with {in_flight} requests in flight")
            }
        }
    }
}

/// A completion whose length is more than the request let the device write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlong {
    /// What the device said it wrote.
    pub said: u32,
    /// What the request's device-writable segments hold.
    pub at_most: usize,
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
/// the device says it wrote: at most the writable segments' total, else `Overlong` (a
/// broken or hostile device; the buffers still come back, their contents not to be used).
pub struct Completed {
    pub token: u16,
    pub written: Result<usize, Overlong>,
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
    /// Requests offered and not yet completed.
    pending: usize,
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
            pending: 0,
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
        self.pending += 1;
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

    /// The next request the device completed, if any. Nothing the device wrote is
    /// trusted: a used index that claims more completions than there are requests in
    /// flight, or an entry that names no request in flight, is an error (the device's) and
    /// hands back nothing; a length past the request's writable buffers is reported in
    /// `Completed::written`.
    pub fn pop_used(&mut self) -> Option<Result<Completed, UsedError>> {
        let used_idx = self.ring.read_u16(self.used_offset + 2).ok()?;
        let claimed = used_idx.wrapping_sub(self.last_used);
        if claimed == 0 {
            return None;
        }
        if claimed as usize > self.pending {
            return Some(Err(UsedError::RanAhead {
                claimed,
                in_flight: self.pending,
            }));
        }
        let entry = self.used_offset + 4 + 8 * (self.last_used % self.size) as usize;
        self.last_used = self.last_used.wrapping_add(1);
        let id = self.ring.read_u32(entry).unwrap_or(u32::MAX);
        let len = self.ring.read_u32(entry + 4).unwrap_or(u32::MAX);
        let Some(done) = self.in_flight.get_mut(id as usize).and_then(Option::take) else {
            return Some(Err(UsedError::UnknownId(id)));
        };
        self.pending -= 1;
        self.free.extend(done.descriptors.iter().rev());
        let written = if len as usize <= done.writable {
            Ok(len as usize)
        } else {
            Err(Overlong {
                said: len,
                at_most: done.writable,
            })
        };
        Some(Ok(Completed {
            token: id as u16,
            written,
            buffers: done.buffers,
        }))
    }

    /// Requests offered and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.pending
    }
}

impl Drop for VirtQueue {
    fn drop(&mut self) {
        // The device stops before the ring and the buffers in flight are freed.
        SETUP.with(|_| self.mmio.write32_kept(REG_STATUS, 0));
        fence(Ordering::SeqCst);
    }
}

/// The queue against a device played by the test (`host_kernel::FakeTransport`): what a
/// broken or hostile device writes into the used ring is refused, and nothing it says
/// hands a buffer back twice or early.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_kernel::FakeTransport;

    /// A queue of 8 on fake transport `index`, and a read-like request on it: a 16-byte
    /// header the device reads, 4 KiB and a status byte it writes (writable: 4097 bytes).
    fn queue_with_one_request(index: usize) -> (FakeTransport, VirtQueue, u16) {
        let device = FakeTransport::modern(index);
        let grant = Device::claim(index as u32).expect("the fake kernel grants it");
        let mut queue = VirtQueue::new(&grant, 0, 8).expect("a queue on the fake transport");
        let token = add_request(&mut queue);
        (device, queue, token)
    }

    fn add_request(queue: &mut VirtQueue) -> u16 {
        add_request_with(queue, alloc::vec![DmaBuffer::new(4096).unwrap(), DmaBuffer::new(4096).unwrap()])
    }

    fn add_request_with(queue: &mut VirtQueue, buffers: Vec<DmaBuffer>) -> u16 {
        let segments = [
            Segment {
                buffer: 0,
                offset: 0,
                len: 16,
                direction: Direction::ToDevice,
            },
            Segment {
                buffer: 1,
                offset: 0,
                len: 4096,
                direction: Direction::FromDevice,
            },
            Segment {
                buffer: 0,
                offset: 16,
                len: 1,
                direction: Direction::FromDevice,
            },
        ];
        match queue.add(buffers, &segments) {
            Ok(token) => token,
            Err((e, _)) => panic!("add: {e}"),
        }
    }

    #[test]
    fn a_request_becomes_the_descriptor_chain_the_device_reads() {
        let (device, queue, token) = queue_with_one_request(0);
        assert_eq!(device.queue_size(), 8);
        assert_eq!(device.available(0), (1, token));
        let (_, len0, flags0, next0) = device.descriptor(token);
        assert_eq!((len0, flags0 & DESC_WRITE), (16, 0));
        let (_, len1, flags1, next1) = device.descriptor(next0);
        assert_eq!((len1, flags1 & DESC_WRITE), (4096, DESC_WRITE));
        let (_, len2, flags2, _) = device.descriptor(next1);
        assert_eq!((len2, flags2), (1, DESC_WRITE), "the last descriptor ends the chain");
        assert_eq!((queue.in_flight(), queue.free_descriptors()), (1, 5));
    }

    #[test]
    fn a_completion_gives_the_buffers_and_descriptors_back_once() {
        let (device, mut queue, token) = queue_with_one_request(1);
        assert!(queue.pop_used().is_none(), "nothing completed yet");
        device.complete(token as u32, 4097);
        let done = queue.pop_used().expect("one completion").expect("a valid one");
        assert_eq!((done.token, done.written, done.buffers.len()), (token, Ok(4097), 2));
        assert_eq!((queue.in_flight(), queue.free_descriptors()), (0, 8));
        assert!(queue.pop_used().is_none());
    }

    #[test]
    fn an_id_past_the_queue_is_refused() {
        let (device, mut queue, token) = queue_with_one_request(2);
        device.complete(9999, 0);
        assert_eq!(queue.pop_used().map(|r| r.err()), Some(Some(UsedError::UnknownId(9999))));
        assert_eq!(queue.in_flight(), 1, "the real request is still in flight");
        device.complete(token as u32, 1);
        assert!(queue.pop_used().is_some_and(|r| r.is_ok()), "and still completes");
    }

    #[test]
    fn a_completion_for_a_request_never_sent_is_refused() {
        let (device, mut queue, token) = queue_with_one_request(3);
        let second = device.descriptor(token).3;
        let third = device.descriptor(second).3;
        device.complete(second as u32, 1);
        assert_eq!(queue.pop_used().map(|r| r.err()), Some(Some(UsedError::UnknownId(second as u32))));
        assert!(queue.pop_used().is_none(), "one bad entry, one refusal");
        let free = (0..8u32).find(|d| ![token, second, third].contains(&(*d as u16))).unwrap();
        device.complete(free, 1);
        assert_eq!(queue.pop_used().map(|r| r.err()), Some(Some(UsedError::UnknownId(free))));
        assert_eq!((queue.in_flight(), queue.free_descriptors()), (1, 5), "nothing changed hands");
    }

    #[test]
    fn a_second_completion_of_the_same_request_is_refused() {
        let (device, mut queue, token) = queue_with_one_request(4);
        let _second = add_request(&mut queue);
        device.complete(token as u32, 1);
        assert!(queue.pop_used().is_some_and(|r| r.is_ok()));
        device.complete(token as u32, 1);
        assert_eq!(queue.pop_used().map(|r| r.err()), Some(Some(UsedError::UnknownId(token as u32))));
        assert_eq!((queue.in_flight(), queue.free_descriptors()), (1, 5));
    }

    #[test]
    fn a_length_past_the_writable_buffers_is_reported_not_trusted() {
        let (device, mut queue, token) = queue_with_one_request(5);
        device.complete(token as u32, 1_000_000);
        let done = queue.pop_used().expect("one completion").expect("a known request");
        assert_eq!(
            done.written,
            Err(Overlong {
                said: 1_000_000,
                at_most: 4097
            })
        );
        assert_eq!(done.buffers.len(), 2, "the buffers come back all the same");
        device.complete(token as u32, u32::MAX);
        assert!(queue.pop_used().is_some_and(|r| r.is_err()), "and only once");
    }

    #[test]
    fn a_used_index_running_ahead_is_refused_without_reading_the_ring() {
        let (device, mut queue, _) = queue_with_one_request(6);
        device.set_used_index(40_000);
        for _ in 0..3 {
            assert_eq!(
                queue.pop_used().map(|r| r.err()),
                Some(Some(UsedError::RanAhead { claimed: 40_000, in_flight: 1 }))
            );
        }
        assert_eq!(queue.in_flight(), 1, "no entry was consumed");
    }

    #[test]
    fn the_used_index_wraps_around() {
        let device = FakeTransport::modern(7);
        let grant = Device::claim(7).unwrap();
        let mut queue = VirtQueue::new(&grant, 0, 8).unwrap();
        let mut buffers = alloc::vec![DmaBuffer::new(4096).unwrap(), DmaBuffer::new(4096).unwrap()];
        for round in 0..70_000u32 {
            let token = add_request_with(&mut queue, buffers);
            device.complete(token as u32, 4097);
            let done = queue.pop_used().expect("completed").expect("valid");
            assert_eq!(done.token, token, "round {round}");
            buffers = done.buffers;
        }
        assert_eq!(device.used_index(), (70_000u32 % 65_536) as u16);
    }

    #[test]
    fn a_second_queue_on_a_ready_transport_and_bad_sizes_are_refused() {
        let _device = FakeTransport::modern(8);
        let grant = Device::claim(8).unwrap();
        for size in [0, 3, 512, u16::MAX] {
            assert_eq!(VirtQueue::new(&grant, 0, size).err(), Some(QueueError::BadSize));
        }
        let _queue = VirtQueue::new(&grant, 0, 8).unwrap();
        assert_eq!(VirtQueue::new(&grant, 0, 8).err(), Some(QueueError::NoQueue));
    }
}
