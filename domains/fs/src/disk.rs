//! The FAT code's 512-byte sectors on the `Block` interface's 4 KiB blocks, through the
//! re-issuing block shadow (a batch the driver crashed with is sent again once it
//! restarts). Reads go through a small cache of whole blocks; a `write` call's sectors
//! become one batch: sectors of the same block are merged, and a block only partly
//! written is read first (from the cache or the disk) and written whole. The cache is
//! written through, so it never holds anything the disk does not.

use crate::fat::layout::SECTOR;
use crate::fat::{FsError, Sectors};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use runtime::interfaces::block::{self, Block};
use runtime::interfaces::block_shadow::BlockShadow;
use runtime::interfaces::{block_op, block_status, BlockBatch, ImportError, RRef, BLOCK_BATCH, BLOCK_SIZE};

/// Sectors in one block.
const PER_BLOCK: usize = BLOCK_SIZE / SECTOR;
/// Blocks the read cache keeps (the FAT's and a directory's blocks are read over and over).
pub const CACHED_BLOCKS: usize = 16;

/// A block's bytes, on the heap: calls run on the caller's stack, of which a callee is
/// guaranteed only `CALL_STACK` (10 KiB) and the driver's call needs its own, so this
/// domain keeps no 4 KiB buffer on the stack.
type BlockBytes = Box<[u8]>;

fn block_bytes(from: Option<&[u8]>) -> BlockBytes {
    let mut b = vec![0u8; BLOCK_SIZE].into_boxed_slice();
    if let Some(d) = from {
        b.copy_from_slice(d);
    }
    b
}

pub struct BlockSectors {
    device: BlockShadow,
    blocks: u64,
    /// The batch sent last, kept for the next (a `BlockBatch` is 128 KiB of shared heap).
    batch: Option<RRef<BlockBatch>>,
    /// Blocks read or written lately, the most recent last.
    cache: Vec<(u64, BlockBytes)>,
}

impl BlockSectors {
    /// The board's block device, or why there is none.
    pub fn open() -> Result<BlockSectors, &'static str> {
        let proxy = block::import().map_err(|e| match e {
            ImportError::NotDeclared => "this domain's manifest does not import Block",
            ImportError::NotExported => "the block driver is not running (no disk attached?)",
            _ => "cannot import Block",
        })?;
        let device = BlockShadow::new(proxy);
        let info = device
            .info()
            .map_err(|_| "the block driver refused to say the disk's size (no card or disk?)")?;
        if info.block_size as usize != BLOCK_SIZE {
            return Err("the block driver's blocks are not 4096 bytes");
        }
        Ok(BlockSectors {
            device,
            blocks: info.blocks,
            batch: None,
            cache: Vec::new(),
        })
    }

    fn cached(&mut self, block: u64) -> Option<&[u8]> {
        let at = self.cache.iter().position(|(b, _)| *b == block)?;
        // Most recently used last.
        let entry = self.cache.remove(at);
        self.cache.push(entry);
        self.cache.last().map(|(_, d)| &**d)
    }

    fn remember(&mut self, block: u64, data: &[u8]) {
        if let Some((_, d)) = self.cache.iter_mut().find(|(b, _)| *b == block) {
            d.copy_from_slice(data);
            return;
        }
        if self.cache.len() >= CACHED_BLOCKS {
            self.cache.remove(0);
        }
        self.cache.push((block, block_bytes(Some(data))));
    }

    fn forget(&mut self, block: u64) {
        self.cache.retain(|(b, _)| *b != block);
    }

    /// Runs one batch of `requests` (op, block, data for writes) and hands each request's
    /// data to `done` (for reads). Any request that does not end OK, or comes back for
    /// another block, fails the whole call.
    fn submit(&mut self, op: u32, requests: &[(u64, Option<&[u8]>)], mut done: impl FnMut(usize, &[u8])) -> Result<(), FsError> {
        if requests.is_empty() || requests.len() > BLOCK_BATCH {
            return Err(FsError::Io);
        }
        let mut batch = match self.batch.take() {
            Some(b) => b,
            None => RRef::<BlockBatch>::try_new_zeroed().ok_or_else(|| {
                runtime::println!("no shared heap for a block batch");
                FsError::Io
            })?,
        };
        batch.count = requests.len() as u32;
        for (r, (block, data)) in batch.requests.iter_mut().zip(requests) {
            r.op = op;
            r.lba = *block;
            r.status = block_status::NOT_DONE;
            if let Some(d) = data {
                if d.len() != BLOCK_SIZE {
                    return Err(FsError::Io);
                }
                r.data.copy_from_slice(d);
            }
        }
        let batch = self.device.submit(batch).map_err(|e| {
            runtime::println!("the block driver failed a batch: {e}");
            FsError::Io
        })?;
        let mut result = Ok(());
        for (i, (r, (block, _))) in batch.requests.iter().zip(requests).enumerate() {
            if r.status != block_status::OK || r.lba != *block {
                runtime::println!("block {block}: status {} from the driver", r.status);
                result = Err(FsError::Io);
                break;
            }
            done(i, &r.data);
        }
        self.batch = Some(batch);
        result
    }
}

impl Sectors for BlockSectors {
    fn read(&mut self, lba: u64, out: &mut [u8; SECTOR]) -> Result<(), FsError> {
        if lba >= self.count() {
            return Err(FsError::Io);
        }
        let block = lba / PER_BLOCK as u64;
        let within = (lba % PER_BLOCK as u64) as usize * SECTOR;
        if let Some(d) = self.cached(block) {
            out.copy_from_slice(&d[within..within + SECTOR]);
            return Ok(());
        }
        let mut read: Option<BlockBytes> = None;
        self.submit(block_op::READ, &[(block, None)], |_, d| read = Some(block_bytes(Some(d))))?;
        let d = read.ok_or(FsError::Io)?;
        out.copy_from_slice(&d[within..within + SECTOR]);
        self.remember(block, &d);
        Ok(())
    }

    fn write(&mut self, sectors: &[(u64, [u8; SECTOR])]) -> Result<(), FsError> {
        // Each block written, with which of its sectors the call gives (the last one given
        // for a sector wins).
        let mut blocks: BTreeMap<u64, [Option<usize>; PER_BLOCK]> = BTreeMap::new();
        for (i, (lba, _)) in sectors.iter().enumerate() {
            if *lba >= self.count() {
                return Err(FsError::Io);
            }
            blocks.entry(lba / PER_BLOCK as u64).or_insert([None; PER_BLOCK])[(lba % PER_BLOCK as u64) as usize] = Some(i);
        }
        // The blocks' new contents: their present bytes where the call leaves sectors out.
        let mut contents: Vec<(u64, BlockBytes)> = Vec::with_capacity(blocks.len());
        let mut missing: Vec<usize> = Vec::new();
        for (&block, given) in &blocks {
            let whole = given.iter().all(Option::is_some);
            let data = match (whole, self.cached(block)) {
                (true, _) => block_bytes(None),
                (false, Some(d)) => block_bytes(Some(d)),
                (false, None) => {
                    missing.push(contents.len());
                    block_bytes(None)
                }
            };
            contents.push((block, data));
        }
        for group in missing.chunks(BLOCK_BATCH) {
            let requests: Vec<(u64, Option<&[u8]>)> = group.iter().map(|&i| (contents[i].0, None)).collect();
            let mut read: Vec<BlockBytes> = Vec::with_capacity(group.len());
            self.submit(block_op::READ, &requests, |_, d| read.push(block_bytes(Some(d))))?;
            for (&i, d) in group.iter().zip(read) {
                contents[i].1 = d;
            }
        }
        for ((_, data), given) in contents.iter_mut().zip(blocks.values()) {
            for (s, at) in given.iter().enumerate() {
                if let Some(&i) = at.as_ref() {
                    data[s * SECTOR..(s + 1) * SECTOR].copy_from_slice(&sectors[i].1);
                }
            }
        }
        // One batch: the driver runs it as one request list, and the block shadow re-issues
        // it whole after a driver crash, so the FAT code's "metadata in one write" holds. More
        // than BLOCK_BATCH blocks (only large file data, never one operation's metadata in
        // practice) go as several batches, and that atomicity is lost between them.
        for group in contents.chunks(BLOCK_BATCH) {
            let requests: Vec<(u64, Option<&[u8]>)> = group.iter().map(|(b, d)| (*b, Some(&**d))).collect();
            if let Err(e) = self.submit(block_op::WRITE, &requests, |_, _| {}) {
                // What the disk holds now is unknown: read it again next time.
                for (b, _) in group {
                    self.forget(*b);
                }
                return Err(e);
            }
            for (b, d) in group {
                self.remember(*b, d);
            }
        }
        Ok(())
    }

    fn count(&self) -> u64 {
        self.blocks.saturating_mul(PER_BLOCK as u64)
    }
}
