//! DMA buffers for driver domains: zeroed, physically contiguous frames a device may read
//! and write, owned by one domain and charged to its shared-heap quota. The domain reaches
//! them through the runtime's bounds-checked accessors; only the runtime's trusted queue
//! code ever gives a device their address. When the domain goes, its devices are reset
//! first (`grants::quiesce`), then its buffers freed, so no device writes freed memory.

use super::registry::MAX_DOMAINS;
use super::DomainId;
use crate::memory::FrameRange;
use crate::sync::IrqLock;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Buffers one domain may hold at once (a bound on the kernel's own bookkeeping).
pub const MAX_BUFFERS: usize = 256;
/// Largest buffer: 64 pages.
pub const MAX_BYTES: usize = 256 * 1024;
/// DMA memory all domains together may hold: each domain's share is bounded by its quota,
/// and this bounds what the frames left to everything else can lose to DMA.
pub const MAX_TOTAL_BYTES: usize = 8 * 1024 * 1024;

struct Buffer {
    owner: DomainId,
    handle: u32,
    frames: FrameRange,
}

struct Buffers {
    list: Vec<Buffer>,
    next_handle: u32,
    /// Bytes of every buffer in `list`.
    total: usize,
    /// Per domain, how many times its buffers were all freed (its instance ended): an
    /// allocation that started before and finishes after is refused, so no buffer reaches
    /// the next instance.
    epochs: [u32; MAX_DOMAINS],
}

impl Buffers {
    /// A handle no live buffer has (the counter wraps after 2^32 allocations).
    fn unused_handle(&mut self) -> u32 {
        loop {
            let h = self.next_handle;
            self.next_handle = self.next_handle.wrapping_add(1).max(1);
            if !self.list.iter().any(|b| b.handle == h) {
                return h;
            }
        }
    }
}

static BUFFERS: IrqLock<Buffers> = IrqLock::new(
    "dma buffers",
    Buffers {
        list: Vec::new(),
        next_handle: 1,
        total: 0,
        epochs: [0; MAX_DOMAINS],
    },
);

/// Why a DMA allocation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaRefusal {
    /// Zero bytes, or more than `MAX_BYTES`.
    BadSize,
    /// The domain holds `MAX_BUFFERS` already.
    TooMany,
    /// Its shared-heap quota has no room.
    Quota,
    /// No contiguous frames left, or all domains together hold `MAX_TOTAL_BYTES`.
    NoMemory,
    /// The domain's instance ended while the buffer was being made.
    Ended,
}

/// Bytes of DMA memory each domain holds, read lock-free on the shared heap's hot path.
static HELD: [AtomicUsize; MAX_DOMAINS] = [const { AtomicUsize::new(0) }; MAX_DOMAINS];

/// Bytes of DMA memory `d` holds.
pub fn bytes_of(d: DomainId) -> usize {
    HELD.get(d as usize).map_or(0, |h| h.load(Relaxed))
}

pub(super) fn account(d: DomainId, bytes: usize, added: bool) {
    if let Some(h) = HELD.get(d as usize) {
        if added {
            h.fetch_add(bytes, Relaxed);
        } else {
            h.fetch_sub(bytes, Relaxed);
        }
        // What its shared-heap blocks may cost changes with it.
        super::rref::refresh_limit(d);
    }
}

/// A new zeroed buffer of at least `bytes` for `d`: (handle, address, size). RAM is
/// identity-mapped and QEMU virt's devices see CPU physical addresses, so the address is
/// also the device's (the Raspberry Pi's DMA masters see RAM at another bus address: not
/// translated yet, as no Pi driver uses DMA).
///
/// The frames are taken and zeroed first, outside any lock; then every limit is checked
/// and the buffer charged and recorded in one step under the lock, so racing threads
/// cannot pass a check together and an instance that ended meanwhile gets nothing.
pub fn alloc(d: DomainId, bytes: usize) -> Result<(u32, usize, usize), DmaRefusal> {
    if bytes == 0 || bytes > MAX_BYTES {
        return Err(DmaRefusal::BadSize);
    }
    let pages = bytes.div_ceil(crate::memory::PAGE_SIZE);
    let size = pages * crate::memory::PAGE_SIZE;
    let epoch = {
        let b = BUFFERS.lock();
        // Early answers for the common refusals, before any frame is touched (the binding
        // checks are below).
        if b.list.iter().filter(|x| x.owner == d).count() >= MAX_BUFFERS {
            return Err(DmaRefusal::TooMany);
        }
        b.epochs.get(d as usize).copied().ok_or(DmaRefusal::Ended)?
    };
    let Some(mut frames) = FrameRange::alloc(pages) else {
        return Err(DmaRefusal::NoMemory);
    };
    // A previous user's data never reaches the domain (or the device).
    frames.as_mut_slice().fill(0);
    let base = frames.base();
    let mut b = BUFFERS.lock();
    let refusal = if b.epochs.get(d as usize) != Some(&epoch) {
        Some(DmaRefusal::Ended)
    } else if b.list.iter().filter(|x| x.owner == d).count() >= MAX_BUFFERS {
        Some(DmaRefusal::TooMany)
    } else if b.total + size > MAX_TOTAL_BYTES {
        Some(DmaRefusal::NoMemory)
    } else if !super::rref::reserve_dma(d, size) {
        // Charged under the shared-heap registry's lock too, where `RRef` allocations
        // check the same quota.
        Some(DmaRefusal::Quota)
    } else {
        None
    };
    if let Some(why) = refusal {
        drop(b);
        // The frames go back outside the lock.
        drop(frames);
        return Err(why);
    }
    let handle = b.unused_handle();
    b.total += size;
    b.list.push(Buffer { owner: d, handle, frames });
    Ok((handle, base, size))
}

/// Frees `d`'s buffer `handle`. False if `d` holds no such buffer.
pub fn free(d: DomainId, handle: u32) -> bool {
    let taken = {
        let mut b = BUFFERS.lock();
        let i = b.list.iter().position(|x| x.owner == d && x.handle == handle);
        let taken = i.map(|i| b.list.swap_remove(i));
        if let Some(x) = &taken {
            b.total -= x.frames.bytes();
            account(d, x.frames.bytes(), false);
        }
        taken
    };
    match taken {
        Some(b) => {
            // Dropped outside the lock: the frames go back to the frame allocator.
            drop(b);
            true
        }
        None => false,
    }
}

/// Frees every buffer of `d` (its devices were reset first); returns (buffers, bytes).
pub fn free_all_owned_by(d: DomainId) -> (usize, usize) {
    let taken: Vec<Buffer> = {
        let mut b = BUFFERS.lock();
        let (mine, rest): (Vec<Buffer>, Vec<Buffer>) = core::mem::take(&mut b.list).into_iter().partition(|x| x.owner == d);
        b.list = rest;
        b.total -= mine.iter().map(|x| x.frames.bytes()).sum::<usize>();
        if let Some(e) = b.epochs.get_mut(d as usize) {
            *e = e.wrapping_add(1);
        }
        // Nothing is held any more; an allocation in progress now will be refused.
        if let Some(h) = HELD.get(d as usize) {
            h.store(0, Relaxed);
        }
        super::rref::refresh_limit(d);
        mine
    };
    let bytes = taken.iter().map(|x| x.frames.bytes()).sum();
    // Dropped outside the lock: the frames go back to the frame allocator.
    (taken.len(), bytes)
}
