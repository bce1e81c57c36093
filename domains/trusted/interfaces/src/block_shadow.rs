//! A `Block` shadow that recovers the requests in flight: before a batch goes to the driver
//! it keeps a journal of it (each request's op and block, and a write's data); if the
//! driver crashes with the batch, is being restarted, or a hot swap interrupts the call,
//! it waits for the driver to serve again and re-issues the batch from the journal.
//! Requests are whole-block reads, writes and flushes, so issuing one twice is harmless;
//! the caller sees one answer per request. RedLeaf's block shadow restarts and retries the
//! same way (ANCHORS.md). The journal costs a shared-heap batch and a copy of the data
//! written (not of reads): callers that need no recovery use the plain proxy.
#![forbid(unsafe_code)]

use crate::block::{self, Block};
use crate::{block_op, BlockBatch, BlockInfo, RRef, RpcError, RpcResult, BLOCK_BATCH};

/// Re-issues at most this many times (a driver that crashes on every attempt is given up
/// on: the caller gets `Crashed`).
const MAX_REISSUES: u32 = 8;

#[derive(Clone, Copy, Debug)]
pub struct BlockShadow {
    proxy: block::Proxy,
}

impl BlockShadow {
    pub const fn new(proxy: block::Proxy) -> Self {
        BlockShadow { proxy }
    }
}

/// A copy of `from`'s first `count` requests (a write's data included), or `None` if the
/// shared heap has no room.
fn copy_of(from: &BlockBatch) -> Option<RRef<BlockBatch>> {
    let mut to = RRef::<BlockBatch>::try_new_zeroed()?;
    let count = (from.count as usize).min(BLOCK_BATCH);
    to.count = count as u32;
    for (t, f) in to.requests[..count].iter_mut().zip(&from.requests[..count]) {
        t.op = f.op;
        t.lba = f.lba;
        if f.op == block_op::WRITE {
            t.data = f.data;
        }
    }
    Some(to)
}

/// A failure after which the batch may be issued again once the driver serves.
fn recoverable(e: RpcError) -> bool {
    matches!(e, RpcError::Crashed | RpcError::Unavailable | RpcError::Interrupted)
}

impl Block for BlockShadow {
    fn info(&self) -> RpcResult<RRef<BlockInfo>> {
        match self.proxy.info() {
            Err(e) if recoverable(e) => crate::abi::await_restart(|| Some(self.proxy.info())).unwrap_or(Err(e)),
            r => r,
        }
    }

    fn submit(&self, batch: RRef<BlockBatch>) -> RpcResult<RRef<BlockBatch>> {
        let journal = copy_of(&batch).ok_or(RpcError::Refused)?;
        let mut first = Some(batch);
        for _ in 0..=MAX_REISSUES {
            let attempt = match first.take() {
                Some(b) => b,
                None => copy_of(&journal).ok_or(RpcError::Refused)?,
            };
            match self.proxy.submit(attempt) {
                Err(e) if recoverable(e) => {
                    // Until the driver serves again (or a second passes).
                    let _ = crate::abi::await_restart(|| Some(self.proxy.info().map(drop)));
                }
                r => return r,
            }
        }
        Err(RpcError::Crashed)
    }
}
