//! The device: start-up as the virtio spec orders it (3.1.1), and running a batch of
//! requests (each a header, a 4 KiB data page and a status byte) through one virtqueue.

use alloc::vec::Vec;
use runtime::dma::DmaBuffer;
use runtime::interfaces::{block_op, block_status, BlockBatch, BlockInfo, BLOCK_BATCH, BLOCK_SIZE};
use runtime::virtqueue::{self, Direction, Segment, UsedError, VirtQueue};
use runtime::Device;

// virtio-mmio registers (4.2.2).
const REG_MAGIC: usize = 0x000;
const REG_VERSION: usize = 0x004;
const REG_DEVICE_ID: usize = 0x008;
const REG_DEVICE_FEATURES: usize = 0x010;
const REG_DEVICE_FEATURES_SEL: usize = 0x014;
const REG_DRIVER_FEATURES: usize = 0x020;
const REG_DRIVER_FEATURES_SEL: usize = 0x024;
const REG_INTERRUPT_STATUS: usize = 0x060;
const REG_INTERRUPT_ACK: usize = 0x064;
const REG_STATUS: usize = 0x070;
const REG_CONFIG: usize = 0x100;

const MAGIC: u32 = 0x7472_6976;
const BLOCK_DEVICE: u32 = 2;

// Device status bits (2.1).
const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const DRIVER_OK: u32 = 4;
const FEATURES_OK: u32 = 8;
const FAILED: u32 = 128;

// Feature bits (5.2.3, 6).
const F_RO: u32 = 1 << 5;
const F_FLUSH: u32 = 1 << 9;
/// VIRTIO_F_VERSION_1 is bit 32: bit 0 of the second feature word.
const F_VERSION_1_HIGH: u32 = 1;

// Request types and status bytes (5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

const SECTOR: u64 = 512;
const SECTORS_PER_BLOCK: u64 = BLOCK_SIZE as u64 / SECTOR;
/// Descriptors in the queue: three per request, for a whole batch at once.
const QUEUE_SIZE: u16 = 128;
/// Where the status byte sits in a request page (after the 16-byte header).
const STATUS_AT: usize = 16;

/// Why a batch stopped early: the device answered against the protocol.
pub enum Failure {
    /// The message says how.
    Device(&'static str),
    /// The used ring said something impossible (`VirtQueue::pop_used`).
    Used(UsedError),
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Device(why) => f.write_str(why),
            Failure::Used(e) => write!(f, "{e}"),
        }
    }
}

/// One request's DMA memory: a page for the header and status byte, a page for the data.
struct Pages {
    request: DmaBuffer,
    data: DmaBuffer,
}

pub struct BlockDevice {
    device: Device,
    queue: VirtQueue,
    /// 512-byte sectors, as the device reports them.
    sectors: u64,
    read_only: bool,
    can_flush: bool,
    /// Pages for the requests of a batch, reused batch after batch.
    pool: Vec<Pages>,
}

impl BlockDevice {
    /// Finds the granted transport, checks it is a block device, negotiates features and
    /// sets up the queue.
    pub fn start() -> Result<BlockDevice, &'static str> {
        let device = Device::claim(0).ok_or("no device granted (the recipe grants virtio,mmio:2)")?;
        let m = &device.mmio;
        if m.read32(REG_MAGIC) != MAGIC {
            return Err("the granted device is not a virtio-mmio transport");
        }
        let version = m.read32(REG_VERSION);
        if m.read32(REG_DEVICE_ID) != BLOCK_DEVICE {
            return Err("the granted virtio device is not a block device");
        }
        if !device.has_irq() {
            return Err("the granted device has no interrupt");
        }
        virtqueue::set_status(&device, 0);
        virtqueue::set_status(&device, ACKNOWLEDGE);
        virtqueue::set_status(&device, ACKNOWLEDGE | DRIVER);
        m.write32(REG_DEVICE_FEATURES_SEL, 0);
        let offered = m.read32(REG_DEVICE_FEATURES);
        let accepted = offered & (F_RO | F_FLUSH);
        m.write32(REG_DRIVER_FEATURES_SEL, 0);
        m.write32(REG_DRIVER_FEATURES, accepted);
        let mut status = ACKNOWLEDGE | DRIVER;
        if version == 2 {
            m.write32(REG_DEVICE_FEATURES_SEL, 1);
            if m.read32(REG_DEVICE_FEATURES) & F_VERSION_1_HIGH == 0 {
                virtqueue::set_status(&device, FAILED);
                return Err("a modern transport whose device does not offer VIRTIO_F_VERSION_1");
            }
            m.write32(REG_DRIVER_FEATURES_SEL, 1);
            m.write32(REG_DRIVER_FEATURES, F_VERSION_1_HIGH);
            status |= FEATURES_OK;
            virtqueue::set_status(&device, status);
            if m.read32(REG_STATUS) & FEATURES_OK == 0 {
                virtqueue::set_status(&device, FAILED);
                return Err("the device refused the features");
            }
        }
        let queue = match VirtQueue::new(&device, 0, QUEUE_SIZE) {
            Ok(q) => q,
            Err(_) => {
                virtqueue::set_status(&device, FAILED);
                return Err("cannot set up the request queue");
            }
        };
        let sectors = u64::from(m.read32(REG_CONFIG)) | u64::from(m.read32(REG_CONFIG + 4)) << 32;
        let mut pool = Vec::new();
        for _ in 0..BLOCK_BATCH {
            let request = DmaBuffer::new(BLOCK_SIZE).map_err(|_| "no DMA memory for the requests")?;
            let data = DmaBuffer::new(BLOCK_SIZE).map_err(|_| "no DMA memory for the requests")?;
            pool.push(Pages { request, data });
        }
        virtqueue::set_status(&device, status | DRIVER_OK);
        Ok(BlockDevice {
            device,
            queue,
            sectors,
            read_only: accepted & F_RO != 0,
            can_flush: accepted & F_FLUSH != 0,
            pool,
        })
    }

    pub fn info(&self) -> BlockInfo {
        BlockInfo {
            blocks: self.sectors / SECTORS_PER_BLOCK,
            block_size: BLOCK_SIZE as u32,
            read_only: self.read_only as u32,
            can_flush: self.can_flush as u32,
            max_batch: BLOCK_BATCH as u32,
        }
    }

    /// Runs the first `count` requests of `batch`: each gets a status, reads their data.
    pub fn run(&mut self, batch: &mut BlockBatch) -> Result<(), Failure> {
        let count = (batch.count as usize).min(BLOCK_BATCH);
        for r in batch.requests.iter_mut() {
            r.status = block_status::NOT_DONE;
        }
        // token -> (request index, pages), for what is in flight.
        let mut in_flight: Vec<(u16, usize)> = Vec::new();
        for i in 0..count {
            let r = &mut batch.requests[i];
            let kind = match r.op {
                block_op::READ => T_IN,
                block_op::WRITE if self.read_only => {
                    r.status = block_status::UNSUPPORTED;
                    continue;
                }
                block_op::WRITE => T_OUT,
                block_op::FLUSH if !self.can_flush => {
                    r.status = block_status::OK;
                    continue;
                }
                block_op::FLUSH => T_FLUSH,
                _ => {
                    r.status = block_status::UNSUPPORTED;
                    continue;
                }
            };
            let in_range = r
                .lba
                .checked_add(1)
                .and_then(|end| end.checked_mul(SECTORS_PER_BLOCK))
                .is_some_and(|end| end <= self.sectors);
            if kind != T_FLUSH && !in_range {
                r.status = block_status::OUT_OF_RANGE;
                continue;
            }
            let Some(mut pages) = self.pool.pop() else { break };
            let sector = if kind == T_FLUSH { 0 } else { r.lba * SECTORS_PER_BLOCK };
            let mut header = [0u8; 16];
            header[0..4].copy_from_slice(&kind.to_le_bytes());
            header[8..16].copy_from_slice(&sector.to_le_bytes());
            // Two pages of our own: these writes are in range.
            let _ = pages.request.write(0, &header);
            let _ = pages.request.write(STATUS_AT, &[0xff]);
            if kind == T_OUT {
                let _ = pages.data.write(0, &r.data);
            }
            let status = Segment {
                buffer: 0,
                offset: STATUS_AT,
                len: 1,
                direction: Direction::FromDevice,
            };
            let head = Segment {
                buffer: 0,
                offset: 0,
                len: 16,
                direction: Direction::ToDevice,
            };
            let data_direction = if kind == T_IN { Direction::FromDevice } else { Direction::ToDevice };
            let data = Segment {
                buffer: 1,
                offset: 0,
                len: BLOCK_SIZE,
                direction: data_direction,
            };
            let segments: &[Segment] = if kind == T_FLUSH { &[head, status] } else { &[head, data, status] };
            match self.queue.add(alloc::vec![pages.request, pages.data], segments) {
                Ok(token) => in_flight.push((token, i)),
                Err((_, mut back)) => {
                    // Cannot happen with a batch's worth of free descriptors; keep the pages.
                    if let (Some(data), Some(request)) = (back.pop(), back.pop()) {
                        self.pool.push(Pages { request, data });
                    }
                    break;
                }
            }
        }
        if in_flight.is_empty() {
            return Ok(());
        }
        self.queue.notify();
        // The interrupt first, then the used ring. Looking first finds the batch done or
        // not as QEMU's main loop thread (where it completes requests) happens to run
        // against this one, and the interrupt comes either way: after a batch found done,
        // it only ends the next batch's first wait at once.
        self.wait_for_interrupt();
        while !in_flight.is_empty() {
            let done = match self.queue.pop_used() {
                Some(d) => d,
                None => {
                    self.wait_for_interrupt();
                    continue;
                }
            };
            let done = done.map_err(Failure::Used)?;
            let Some(at) = in_flight.iter().position(|(t, _)| *t == done.token) else {
                return Err(Failure::Device("the device completed a request twice"));
            };
            let (_, i) = in_flight.swap_remove(at);
            let mut buffers = done.buffers;
            let (Some(data), Some(request)) = (buffers.pop(), buffers.pop()) else {
                return Err(Failure::Device("a request came back without its pages"));
            };
            let r = &mut batch.requests[i];
            let mut status = [0xffu8];
            let _ = request.read(STATUS_AT, &mut status);
            let want = if r.op == block_op::READ { BLOCK_SIZE + 1 } else { 1 };
            let written = match done.written {
                Ok(n) => n,
                Err(o) => {
                    runtime::println!(
                        "refused an answer for block {}: the device says it wrote {} bytes into {}",
                        r.lba,
                        o.said,
                        o.at_most
                    );
                    0
                }
            };
            r.status = match status[0] {
                S_OK if written < want => block_status::BAD_ANSWER,
                S_OK => {
                    if r.op == block_op::READ {
                        let _ = data.read(0, &mut r.data);
                    }
                    block_status::OK
                }
                S_IOERR => block_status::IO_ERROR,
                S_UNSUPP => block_status::UNSUPPORTED,
                _ => block_status::BAD_ANSWER,
            };
            self.pool.push(Pages { request, data });
        }
        Ok(())
    }

    /// Waits for the device's interrupt and acknowledges it (before the used ring is read:
    /// a completion after the acknowledgement interrupts again).
    fn wait_for_interrupt(&self) {
        self.device.wait_irq();
        let m = &self.device.mmio;
        let pending = m.read32(REG_INTERRUPT_STATUS);
        m.write32(REG_INTERRUPT_ACK, pending);
        self.device.irq_done();
    }
}
