#![forbid(unsafe_code)]
//! The measured loop of a block driver's `BlockBench::direct`: the driver's own per-batch
//! entry (the one its `Block::submit` runs) called `rounds` times on one batch, with no
//! cross-domain call, so the bench's direct and proxied figures differ only by the
//! crossing. Shared here because a domain cannot share a crate with another domain.

use interfaces::{block_status, BlockBatch, RRef, RpcError, RpcResult, BLOCK_BATCH};

/// Runs `run` on a batch of `batch` requests of `op` (blocks 0 up) `rounds` times; returns
/// the cycles spent (under QEMU `-icount shift=0`, instructions). Every request must come
/// back OK; that is checked once at the end, as the kernel's proxied rounds check it.
/// The caller sets its device up first, outside the measured rounds.
pub fn direct_rounds(op: u32, batch: u32, rounds: u32, mut run: impl FnMut(&mut BlockBatch) -> RpcResult<()>) -> RpcResult<u64> {
    let mut b = RRef::<BlockBatch>::try_new_zeroed().ok_or(RpcError::Refused)?;
    b.count = batch.min(BLOCK_BATCH as u32);
    for (i, r) in b.requests.iter_mut().enumerate() {
        r.op = op;
        r.lba = i as u64;
    }
    let t0 = crate::cycles();
    for _ in 0..rounds {
        run(&mut b)?;
    }
    let spent = crate::cycles() - t0;
    if b.requests[..b.count as usize].iter().any(|r| r.status != block_status::OK) {
        return Err(RpcError::Refused);
    }
    Ok(spent)
}
