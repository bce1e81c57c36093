//! The virtio-blk driver for QEMU virt's virtio-mmio block device (virtio 1.2, 5.2),
//! exported as `Block`: batches of 4 KiB requests, completed by interrupt. Safe Rust: the
//! device registers come from the grant (`runtime::Device`), memory the device uses from
//! `runtime::dma`, and the queue from `runtime::virtqueue` (the only code that tells the
//! device an address). Every answer of the device is checked before use.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod device;

use device::{BlockDevice, Failure};
use runtime::interfaces::block::{self, Block};
use runtime::interfaces::block_bench::{self, BlockBench};
use runtime::interfaces::{block_status, BlockBatch, BlockInfo, RRef, RpcError, RpcResult, BLOCK_BATCH};
use runtime::Mutex;

struct BlockDomain {
    device: Mutex<Option<BlockDevice>>,
}

static BLOCK: BlockDomain = BlockDomain { device: Mutex::new(None) };

impl Block for BlockDomain {
    fn info(&self) -> RpcResult<RRef<BlockInfo>> {
        let info = self.device.with(|d| d.as_ref().map(BlockDevice::info)).ok_or(RpcError::Unavailable)?;
        RRef::try_new(info).map_err(|_| RpcError::Refused)
    }

    fn submit(&self, mut batch: RRef<BlockBatch>) -> RpcResult<RRef<BlockBatch>> {
        let r = self.device.with(|d| d.as_mut().map(|d| d.run(&mut batch)));
        match r {
            None => Err(RpcError::Unavailable),
            Some(Ok(())) => Ok(batch),
            // The device broke its protocol: crash, so the kernel resets it and a fresh
            // instance starts over (the caller sees this call fail as Crashed).
            Some(Err(Failure::Device(why))) => panic!("the device broke the virtio protocol: {why}"),
        }
    }
}

impl BlockBench for BlockDomain {
    fn direct(&self, op: u32, batch: u32, rounds: u32) -> RpcResult<u64> {
        let mut b = RRef::<BlockBatch>::try_new_zeroed().ok_or(RpcError::Refused)?;
        b.count = batch.min(BLOCK_BATCH as u32);
        for (i, r) in b.requests.iter_mut().enumerate() {
            r.op = op;
            r.lba = i as u64;
        }
        self.device.with(|d| {
            let d = d.as_mut().ok_or(RpcError::Unavailable)?;
            let mut run = |b: &mut BlockBatch| match d.run(b) {
                Ok(()) if b.requests[..b.count as usize].iter().all(|r| r.status == block_status::OK) => Ok(()),
                _ => Err(RpcError::Refused),
            };
            let t0 = runtime::cycles();
            for _ in 0..rounds {
                run(&mut b)?;
            }
            Ok(runtime::cycles() - t0)
        })
    }
}

fn init() -> Result<(), &'static str> {
    let dev = BlockDevice::start()?;
    let info = dev.info();
    runtime::println!(
        "{} blocks of {} bytes{}",
        info.blocks,
        info.block_size,
        if info.read_only == 1 { ", read-only" } else { "" }
    );
    BLOCK.device.with(|d| *d = Some(dev));
    block::export(&BLOCK).map_err(|_| "cannot export Block")?;
    block_bench::export(&BLOCK).map_err(|_| "cannot export BlockBench")?;
    Ok(())
}

runtime::entry!(init);
