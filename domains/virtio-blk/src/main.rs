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

use device::BlockDevice;
use runtime::interfaces::block::{self, Block};
use runtime::interfaces::block_bench::{self, BlockBench};
use runtime::interfaces::{BlockBatch, BlockInfo, RRef, RpcError, RpcResult};
use runtime::Mutex;

struct BlockDomain {
    /// Set up on the first call, not in `init`: a version being swapped in must not touch
    /// the device while the running one still has requests in flight (the swap drains
    /// them, then this version serves).
    device: Mutex<Option<BlockDevice>>,
}

static BLOCK: BlockDomain = BlockDomain { device: Mutex::new(None) };

impl BlockDomain {
    /// `f` on the device, set up first if this is the first call.
    fn with_device<R>(&self, f: impl FnOnce(&mut BlockDevice) -> RpcResult<R>) -> RpcResult<R> {
        self.device.with(|d| {
            if d.is_none() {
                let dev = BlockDevice::start().map_err(|why| {
                    runtime::println!("cannot start the device: {why}");
                    RpcError::Unavailable
                })?;
                let info = dev.info();
                runtime::println!(
                    "{} blocks of {} bytes{}",
                    info.blocks,
                    info.block_size,
                    if info.read_only == 1 { ", read-only" } else { "" }
                );
                *d = Some(dev);
            }
            match d.as_mut() {
                Some(dev) => f(dev),
                None => Err(RpcError::Unavailable),
            }
        })
    }
}

impl BlockDomain {
    /// One batch, exactly as `Block::submit` runs it: `BlockBench::direct` runs the same,
    /// so the bench's proxied and direct figures differ only by the crossing.
    fn run(&self, batch: &mut BlockBatch) -> RpcResult<()> {
        match self.with_device(|d| Ok(d.run(batch)))? {
            Ok(()) => Ok(()),
            // The device broke its protocol: crash, so the kernel resets it and a fresh
            // instance starts over (the caller sees this call fail as Crashed).
            Err(why) => panic!("the device broke the virtio protocol: {why}"),
        }
    }
}

impl Block for BlockDomain {
    fn info(&self) -> RpcResult<RRef<BlockInfo>> {
        let info = self.with_device(|d| Ok(d.info()))?;
        RRef::try_new(info).map_err(|_| RpcError::Refused)
    }

    fn submit(&self, mut batch: RRef<BlockBatch>) -> RpcResult<RRef<BlockBatch>> {
        self.run(&mut batch)?;
        Ok(batch)
    }
}

impl BlockBench for BlockDomain {
    fn direct(&self, op: u32, batch: u32, rounds: u32) -> RpcResult<u64> {
        // Set up outside the measured rounds, as the proxy's figures (after a warm-up) are.
        self.with_device(|_| Ok(()))?;
        runtime::block_bench::direct_rounds(op, batch, rounds, |b| self.run(b))
    }
}

fn init() -> Result<(), &'static str> {
    // The grant is checked now (the kernel grants it only if the device is there); the
    // device itself is set up on the first call.
    runtime::Device::claim(0).ok_or("no device granted (the recipe grants virtio,mmio:2)")?;
    block::export(&BLOCK).map_err(|_| "cannot export Block")?;
    block_bench::export(&BLOCK).map_err(|_| "cannot export BlockBench")?;
    Ok(())
}

runtime::entry!(init);
