//! A `Block` shadow that recovers the requests in flight: before a batch goes to the driver
//! it records in a journal what re-issuing it needs (each request's op and block, and a
//! write's data); if the driver crashes with the batch, is being restarted, or a hot swap
//! interrupts the call, it waits for the driver to serve again and re-issues the batch
//! from the journal. Requests are whole-block reads, writes and flushes, so issuing one
//! twice is harmless; the caller sees one answer per request. RedLeaf's block shadow
//! restarts and retries the same way (ANCHORS.md). The journal is one batch on the shared
//! heap, made once and reused; recording costs a copy of the data written (not of reads).

use crate::block::{self, Block};
use crate::{block_op, BlockBatch, BlockInfo, RRef, RpcError, RpcResult, BLOCK_BATCH};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Re-issues at most this many times (a driver that crashes on every attempt is given up
/// on: the caller gets `Crashed`).
const MAX_REISSUES: u32 = 8;

/// A value one thread at a time may take out and put back (the journal). A thread that
/// finds it taken does without.
struct TakeCell<T> {
    taken: AtomicBool,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: `value` is reached only between a successful swap of `taken` to true and its
// release, so one thread at a time; `T: Send` may move between threads.
unsafe impl<T: Send> Sync for TakeCell<T> {}

impl<T> TakeCell<T> {
    const fn new() -> Self {
        TakeCell {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(None),
        }
    }

    /// The value if no one else holds the cell (then the caller holds it until `put`), or
    /// `Err(())` if someone does.
    fn take(&self) -> Result<Option<T>, ()> {
        if self.taken.swap(true, Ordering::Acquire) {
            return Err(());
        }
        // SAFETY: `taken` was false and is now ours: no other access until we release it.
        Ok(unsafe { (*self.value.get()).take() })
    }

    /// Puts `v` back and releases the cell. Only after a successful `take`.
    fn put(&self, v: Option<T>) {
        // SAFETY: the caller holds the cell (its `take` succeeded and it has not put back).
        unsafe { *self.value.get() = v };
        self.taken.store(false, Ordering::Release);
    }
}

pub struct BlockShadow {
    proxy: block::Proxy,
    journal: TakeCell<RRef<BlockBatch>>,
}

impl BlockShadow {
    pub const fn new(proxy: block::Proxy) -> Self {
        BlockShadow {
            proxy,
            journal: TakeCell::new(),
        }
    }
}

/// Records in `journal` what re-issuing `batch` needs.
fn record(journal: &mut BlockBatch, batch: &BlockBatch) {
    let count = (batch.count as usize).min(BLOCK_BATCH);
    journal.count = count as u32;
    for (j, r) in journal.requests[..count].iter_mut().zip(&batch.requests[..count]) {
        j.op = r.op;
        j.lba = r.lba;
        if r.op == block_op::WRITE {
            j.data = r.data;
        }
    }
}

/// A new batch from `journal` (recorded the same way), or `None` if the shared heap has no
/// room.
fn reissue(journal: &BlockBatch) -> Option<RRef<BlockBatch>> {
    let mut b = RRef::<BlockBatch>::try_new_zeroed()?;
    record(&mut b, journal);
    Some(b)
}

/// A failure after which the batch may be issued again once the driver serves.
fn recoverable(e: RpcError) -> bool {
    matches!(e, RpcError::Crashed | RpcError::Unavailable | RpcError::Interrupted)
}

impl BlockShadow {
    fn submit_with(&self, batch: RRef<BlockBatch>, journal: &mut BlockBatch) -> RpcResult<RRef<BlockBatch>> {
        record(journal, &batch);
        let mut attempt = batch;
        for _ in 0..MAX_REISSUES {
            match self.proxy.submit(attempt) {
                Err(e) if recoverable(e) => {
                    // Until the driver serves again (or a second passes).
                    let _ = crate::abi::await_restart(|| Some(self.proxy.info().map(drop)));
                    attempt = reissue(journal).ok_or(RpcError::Refused)?;
                }
                r => return r,
            }
        }
        Err(RpcError::Crashed)
    }
}

impl Block for BlockShadow {
    fn info(&self) -> RpcResult<RRef<BlockInfo>> {
        match self.proxy.info() {
            Err(e) if recoverable(e) => crate::abi::await_restart(|| Some(self.proxy.info())).unwrap_or(Err(e)),
            r => r,
        }
    }

    fn submit(&self, batch: RRef<BlockBatch>) -> RpcResult<RRef<BlockBatch>> {
        match self.journal.take() {
            Ok(kept) => {
                let mut journal = match kept {
                    Some(j) => j,
                    None => match RRef::<BlockBatch>::try_new_zeroed() {
                        Some(j) => j,
                        None => {
                            self.journal.put(None);
                            return Err(RpcError::Refused);
                        }
                    },
                };
                let r = self.submit_with(batch, &mut journal);
                self.journal.put(Some(journal));
                r
            }
            // Another thread's batch is using the journal: one of our own for this batch.
            Err(()) => {
                let mut journal = RRef::<BlockBatch>::try_new_zeroed().ok_or(RpcError::Refused)?;
                self.submit_with(batch, &mut journal)
            }
        }
    }
}
