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
use runtime::interfaces::{BlockBatch, BlockInfo, RRef, RpcError, RpcResult};
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
    Ok(())
}

runtime::entry!(init);
