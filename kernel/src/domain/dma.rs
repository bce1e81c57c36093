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

struct Buffer {
    owner: DomainId,
    handle: u32,
    frames: FrameRange,
}

struct Buffers {
    list: Vec<Buffer>,
    next_handle: u32,
}

static BUFFERS: IrqLock<Buffers> = IrqLock::new(
    "dma buffers",
    Buffers {
        list: Vec::new(),
        next_handle: 1,
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
    /// No contiguous frames left.
    NoMemory,
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
    }
}

/// A new zeroed buffer of at least `bytes` for `d`: (handle, address, size). RAM is
/// identity-mapped and QEMU virt's devices see CPU physical addresses, so the address is
/// also the device's (the Raspberry Pi's DMA masters see RAM at another bus address: not
/// translated yet, as no Pi driver uses DMA).
pub fn alloc(d: DomainId, bytes: usize) -> Result<(u32, usize, usize), DmaRefusal> {
    if bytes == 0 || bytes > MAX_BYTES {
        return Err(DmaRefusal::BadSize);
    }
    let pages = bytes.div_ceil(crate::memory::PAGE_SIZE);
    let size = pages * crate::memory::PAGE_SIZE;
    if BUFFERS.lock().list.iter().filter(|b| b.owner == d).count() >= MAX_BUFFERS {
        return Err(DmaRefusal::TooMany);
    }
    // Charged before the frames are taken (and given back if there are none), so threads
    // racing through here cannot all pass the check.
    if !super::rref::reserve_dma(d, size) {
        return Err(DmaRefusal::Quota);
    }
    let Some(mut frames) = FrameRange::alloc(pages) else {
        account(d, size, false);
        return Err(DmaRefusal::NoMemory);
    };
    // A previous user's data never reaches the domain (or the device).
    frames.as_mut_slice().fill(0);
    let base = frames.base();
    let mut b = BUFFERS.lock();
    let handle = b.next_handle;
    b.next_handle = b.next_handle.wrapping_add(1).max(1);
    b.list.push(Buffer { owner: d, handle, frames });
    Ok((handle, base, size))
}

/// Frees `d`'s buffer `handle`. False if `d` holds no such buffer.
pub fn free(d: DomainId, handle: u32) -> bool {
    let taken = {
        let mut b = BUFFERS.lock();
        let i = b.list.iter().position(|x| x.owner == d && x.handle == handle);
        i.map(|i| b.list.swap_remove(i))
    };
    match taken {
        Some(b) => {
            account(d, b.frames.bytes(), false);
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
        mine
    };
    let bytes = taken.iter().map(|x| x.frames.bytes()).sum();
    // Nothing is held any more (a charge reserved by an allocation the domain died in
    // goes too).
    if let Some(h) = HELD.get(d as usize) {
        h.store(0, Relaxed);
    }
    (taken.len(), bytes)
}
