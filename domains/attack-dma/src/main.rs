//! Attack domain (class: DMA through a device). Its grant is a virtio-mmio transport (the
//! test fixture grants `virtio,mmio`). The variant (manifest minor version) picks the
//! attack: 1 writes QueuePFN (legacy queue address), 2 QueueDescLow (modern), 3
//! GuestPageSize, 4 QueueAlign, 5 abuses DMA buffers and queues without touching a kept
//! register (it must end with every misuse refused and nothing crashed). Variants 1 to 4,
//! 7 (QueueSel) and 8 (Status) must crash it before the write reaches the device. 6 races
//! threads through `DmaBuffer::new` to hold more DMA memory than its shared-heap quota
//! allows (the kernel once checked the quota before it allocated and zeroed the frames,
//! and charged them only after): it reports the most 256 KiB buffers it held at once.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use runtime::dma::{DmaBuffer, DmaError};
use runtime::virtqueue::{Direction, QueueError, Segment, VirtQueue};
use runtime::Device;

fn attack() {
    let variant = runtime::version().1;
    let Some(d) = Device::claim(0) else {
        runtime::println!("no grant 0: the fixture must grant a virtio-mmio transport");
        return;
    };
    let target = DmaBuffer::new(4096).map(|b| b.len()).unwrap_or(0);
    runtime::println!("variant {variant}: a DMA buffer of {target} bytes made");
    let register = match variant {
        1 => Some(0x040),
        2 => Some(0x080),
        3 => Some(0x028),
        4 => Some(0x03c),
        7 => Some(0x030),
        8 => Some(0x070),
        _ => None,
    };
    if let Some(offset) = register {
        runtime::println!("writing register {offset:#x}");
        d.mmio.write32(offset, 0x4000_0000 >> 12);
        runtime::println!("ESCAPE: register {offset:#x} was written");
        return;
    }
    if variant == 6 {
        race_the_quota();
        return;
    }
    abuse_buffers_and_queues(&d);
}

/// 256 KiB: the default shared-heap quota, so one such buffer at a time is all it may hold.
const RACE_BYTES: usize = 256 * 1024;
const RACERS: usize = 4;
static HELD: AtomicUsize = AtomicUsize::new(0);
static MOST: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);

fn racer() {
    let end = runtime::uptime_ns() + 4_000_000_000;
    while runtime::uptime_ns() < end {
        if let Ok(b) = DmaBuffer::new(RACE_BYTES) {
            let now = HELD.fetch_add(1, SeqCst) + 1;
            MOST.fetch_max(now, SeqCst);
            // Hold it a while (no yield: the time slice ends where it ends).
            let t = runtime::uptime_ns();
            while runtime::uptime_ns() < t + 300_000 {}
            HELD.fetch_sub(1, SeqCst);
            drop(b);
        }
    }
    FINISHED.fetch_add(1, SeqCst);
}

fn race_the_quota() {
    // Precondition: one buffer of the whole quota is granted, a second refused.
    let one = DmaBuffer::new(RACE_BYTES);
    let two = DmaBuffer::new(4096);
    runtime::println!(
        "one {} KiB buffer: {}; one more page beside it: {}",
        RACE_BYTES / 1024,
        if one.is_ok() { "granted" } else { "refused" },
        if two.is_ok() { "granted" } else { "refused" }
    );
    drop((one, two));
    for _ in 0..RACERS {
        if runtime::spawn("racer", racer).is_err() {
            runtime::println!("cannot spawn a racer");
            return;
        }
    }
    while FINISHED.load(SeqCst) < RACERS {
        runtime::sleep_ms(50);
    }
    let most = MOST.load(SeqCst);
    runtime::println!(
        "DMA quota race: at most {most} buffers of {} KiB held at once (quota {} KiB)",
        RACE_BYTES / 1024,
        RACE_BYTES / 1024
    );
    if most > 1 {
        runtime::println!(
            "ESCAPE: {} KiB of DMA memory held with a {} KiB quota",
            most * RACE_BYTES / 1024,
            RACE_BYTES / 1024
        );
    }
}

fn abuse_buffers_and_queues(d: &Device) {
    let mut refused = 0;
    let mut tried = 0;
    let mut check = |what: &str, refused_ok: bool| {
        tried += 1;
        if refused_ok {
            refused += 1;
        } else {
            runtime::println!("ESCAPE: {what} was not refused");
        }
    };
    check("a zero-byte buffer", DmaBuffer::new(0).is_err());
    check("a 1 GiB buffer", DmaBuffer::new(1 << 30).is_err());
    check("a usize::MAX buffer", DmaBuffer::new(usize::MAX).is_err());
    let mut b = match DmaBuffer::new(100) {
        Ok(b) => b,
        Err(e) => {
            runtime::println!("ESCAPE: a small buffer was refused ({e})");
            return;
        }
    };
    let n = b.len();
    let mut byte = [0u8; 1];
    check("a read at the end", b.read(n, &mut byte) == Err(DmaError::OutOfRange));
    check("a read straddling the end", b.read_u32(n - 2) == Err(DmaError::OutOfRange));
    check("a write at usize::MAX", b.write(usize::MAX, &[1]) == Err(DmaError::OutOfRange));
    check("a fill past the end", b.fill(1, n, 0) == Err(DmaError::OutOfRange));
    check(
        "a last-byte write",
        b.write(n - 1, &[7]).is_ok() && b.read(n - 1, &mut byte).is_ok() && byte[0] == 7,
    );
    // Until the quota refuses; then everything is given back.
    let mut hoard = Vec::new();
    while let Ok(x) = DmaBuffer::new(64 * 1024) {
        hoard.push(x);
        if hoard.len() > 1000 {
            break;
        }
    }
    check("buffers past the quota", hoard.len() < 1000);
    runtime::println!("{} buffers of 64 KiB before the quota refused", hoard.len());
    drop(hoard);
    check("a buffer after giving the hoard back", DmaBuffer::new(64 * 1024).is_ok());
    // Queues: sizes the device cannot take, segments outside their buffers.
    for size in [0u16, 3, 1024, u16::MAX] {
        check("a bad queue size", VirtQueue::new(d, 0, size).is_err());
    }
    match VirtQueue::new(d, 0, 8) {
        Err(QueueError::NoQueue) => {
            check("a queue on a transport without a device", true);
        }
        Err(e) => runtime::println!("queue 0: {e}"),
        Ok(mut q) => {
            let bad = [Segment {
                buffer: 0,
                offset: 4090,
                len: 16,
                direction: Direction::FromDevice,
            }];
            let Ok(buf) = DmaBuffer::new(4096) else { return };
            check("a segment past its buffer", q.add(alloc::vec![buf], &bad).is_err());
            let missing = [Segment {
                buffer: 3,
                offset: 0,
                len: 1,
                direction: Direction::ToDevice,
            }];
            let Ok(buf) = DmaBuffer::new(4096) else { return };
            check("a segment of a buffer not given", q.add(alloc::vec![buf], &missing).is_err());
            check("a second queue 0", VirtQueue::new(d, 0, 8).is_err());
        }
    }
    runtime::println!("DMA misuse refused: {refused} of {tried}");
}

fn init() -> Result<(), &'static str> {
    runtime::spawn("attack", attack).map_err(|_| "cannot spawn")
}

runtime::entry!(init);
