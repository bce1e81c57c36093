//! The SD card driver of the Raspberry Pi 3: the Arasan SDHCI controller (the BCM2835's
//! "EMMC" block, `brcm,bcm2835-sdhci`) and the card in its slot, exported as `Block`:
//! batches of 4 KiB requests, each 8 sectors moved by programmed I/O through the
//! controller's data port (no DMA). Safe Rust: the registers come from the grant
//! (`runtime::Device`). Every answer of the controller and the card is checked before use.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod answers;
mod card;

use card::{Failure, SdCard};
use runtime::interfaces::block::{self, Block};
use runtime::interfaces::block_bench::{self, BlockBench};
use runtime::interfaces::{BlockBatch, BlockInfo, RRef, RpcError, RpcResult};
use runtime::Mutex;

struct BlockDomain {
    /// Set up on the first call, not in `init`: a version being swapped in must not reset
    /// the controller while the running one still has requests in flight (the swap drains
    /// them, then this version serves). Emptied again when the card stops answering, so
    /// the next call starts it over.
    card: Mutex<Option<SdCard>>,
}

static BLOCK: BlockDomain = BlockDomain { card: Mutex::new(None) };

/// The card, set up first if this is the first call (or the last one lost it).
fn ready(slot: &mut Option<SdCard>) -> RpcResult<&mut SdCard> {
    if slot.is_none() {
        let card = SdCard::start().map_err(|why| {
            runtime::println!("cannot start the SD card: {why}");
            // Not `Unavailable`: that says "restarting, try again", and a caller's shadow
            // would wait and retry; a missing or broken card is this call's refusal.
            RpcError::Refused
        })?;
        let info = card.info();
        runtime::println!(
            "{} blocks of {} bytes ({}){}",
            info.blocks,
            info.block_size,
            card.kind(),
            if info.read_only == 1 { ", read-only" } else { "" }
        );
        *slot = Some(card);
    }
    slot.as_mut().ok_or(RpcError::Unavailable)
}

impl BlockDomain {
    /// Runs `batch` on the card; if the card could not be brought back after an error, it
    /// is dropped (the requests not run say `NOT_DONE`) and the next call sets it up again.
    fn run(&self, batch: &mut BlockBatch) -> RpcResult<()> {
        self.card.with(|slot| {
            if let Err(Failure(why)) = ready(slot)?.run(batch) {
                runtime::println!("the SD card stopped answering ({why}); it is set up again on the next call");
                *slot = None;
            }
            Ok(())
        })
    }
}

impl Block for BlockDomain {
    fn info(&self) -> RpcResult<RRef<BlockInfo>> {
        let info = self.card.with(|slot| ready(slot).map(|c| c.info()))?;
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
        self.card.with(|slot| ready(slot).map(|_| ()))?;
        runtime::block_bench::direct_rounds(op, batch, rounds, |b| self.run(b))
    }
}

fn init() -> Result<(), &'static str> {
    // The grant is checked now (the kernel grants it only if the device tree has the
    // controller); the controller and card are set up on the first call.
    runtime::Device::claim(0).ok_or("no device granted (the recipe grants brcm,bcm2835-sdhci)")?;
    block::export(&BLOCK).map_err(|_| "cannot export Block")?;
    block_bench::export(&BLOCK).map_err(|_| "cannot export BlockBench")?;
    Ok(())
}

runtime::entry!(init);
