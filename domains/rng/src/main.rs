//! The hardware random number generator's driver: owns the BCM2835 RNG
//! (`brcm,bcm2835-rng`) through its device grant and exports `Entropy`.
//!
//! The hardware is set up on the first call, not in `init` (a swap's new version starts
//! while the old one still serves, and setting up restarts the warm-up), as Linux's
//! bcm2835-rng does: the warm-up count goes to RNG_STATUS (the generator throws that
//! many bits away before it offers any), RNG_CTRL enables it, and RNG_STATUS's top byte
//! says how many words wait in its FIFO. On top of that the first words offered are
//! discarded. Every wait for the hardware is bounded: a generator that never becomes
//! ready makes the call answer `NOT_READY`, never hang, and the next call sets it up again.
//!
//! QEMU 7.2's model keeps the warm-up count it is given in RNG_STATUS's low 20 bits and
//! always reports one word available; real hardware counts the warm-up down first.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::entropy::{self, Entropy};
use runtime::interfaces::{entropy_status, RRef, RandomBytes, RpcError, RpcResult};
use runtime::{Device, Mutex};

// Registers (Linux drivers/char/hw_random/bcm2835-rng.c).
const RNG_CTRL: usize = 0x0;
const RNG_STATUS: usize = 0x4;
const RNG_DATA: usize = 0x8;
/// RNG_CTRL: the generator runs.
const RNG_RBGEN: u32 = 0x1;
/// RNG_STATUS bits 0-19: bits the generator discards before its first word (Linux's
/// value: the first numbers generated are less random).
const RNG_WARMUP_COUNT: u32 = 0x40000;
/// RNG_STATUS bits 24-31: words waiting in the FIFO.
const WORDS_AVAILABLE_SHIFT: u32 = 24;

/// Words read and thrown away after the warm-up, before any is handed out.
const DISCARDED_WORDS: u32 = 4;
/// How long the warm-up may take before the generator is taken to be broken. Real
/// hardware needs well under this (a BCM2835 makes about a megabit a second).
const WARMUP_LIMIT_MS: u64 = 1000;
/// How long one word may take once the generator runs.
const WORD_LIMIT_MS: u64 = 100;
/// Polls of RNG_STATUS in a row before the wait sleeps between polls (the CPU is given
/// back: a call's CPU time is budgeted).
const BUSY_POLLS: u32 = 64;

struct Generator {
    device: Option<Device>,
    /// Warmed up and enabled since this instance started (or since the last failure).
    ready: bool,
    /// The last word read, for the continuous test (each word must differ from the one
    /// before it).
    last_word: Option<u32>,
}

struct RngDomain {
    generator: Mutex<Generator>,
}

static RNG: RngDomain = RngDomain {
    generator: Mutex::new(Generator {
        device: None,
        ready: false,
        last_word: None,
    }),
};

/// The hardware did not produce a word within the limit.
struct NotReady;

/// Waits until RNG_STATUS says a word is available, for up to `limit_ms`. Returns how
/// many polls that took.
fn wait_for_word(device: &Device, limit_ms: u64) -> Result<u32, NotReady> {
    let deadline = runtime::uptime_ns().saturating_add(limit_ms * 1_000_000);
    let mut polls = 0u32;
    loop {
        polls = polls.saturating_add(1);
        if device.mmio.read32(RNG_STATUS) >> WORDS_AVAILABLE_SHIFT != 0 {
            return Ok(polls);
        }
        if runtime::uptime_ns() >= deadline {
            return Err(NotReady);
        }
        if polls < BUSY_POLLS {
            core::hint::spin_loop();
        } else {
            runtime::sleep_ms(1);
        }
    }
}

impl Generator {
    /// Warm-up, enable, wait for the first word, discard the first words; logs what it saw.
    fn set_up(&mut self, device: &Device) -> Result<(), NotReady> {
        device.mmio.write32(RNG_STATUS, RNG_WARMUP_COUNT);
        device.mmio.write32(RNG_CTRL, RNG_RBGEN);
        let started = runtime::uptime_ns();
        let polls = match wait_for_word(device, WARMUP_LIMIT_MS) {
            Ok(p) => p,
            Err(e) => {
                runtime::println!(
                    "warm-up: no word available after {WARMUP_LIMIT_MS} ms (RNG_STATUS {:#010x}): the generator is not ready",
                    device.mmio.read32(RNG_STATUS)
                );
                return Err(e);
            }
        };
        let status = device.mmio.read32(RNG_STATUS);
        let waited_us = runtime::uptime_ns().saturating_sub(started) / 1000;
        for _ in 0..DISCARDED_WORDS {
            wait_for_word(device, WORD_LIMIT_MS)?;
            self.last_word = Some(device.mmio.read32(RNG_DATA));
        }
        runtime::println!(
            "warm-up: wrote the count {RNG_WARMUP_COUNT:#x} to RNG_STATUS and enabled the generator; waited {waited_us} us ({polls} polls) until RNG_STATUS ({status:#010x}) counted {} word(s) in the FIFO; discarded the first {DISCARDED_WORDS} words",
            status >> WORDS_AVAILABLE_SHIFT
        );
        self.ready = true;
        Ok(())
    }

    /// Fills `out` with words from the hardware; the status to answer.
    fn fill(&mut self, out: &mut [u8]) -> u32 {
        let Some(device) = self.device.take() else {
            return entropy_status::NOT_READY;
        };
        let status = self.fill_from(&device, out);
        self.device = Some(device);
        if status != entropy_status::OK {
            // Nothing read in a failed call is handed out, and the next call starts over.
            out.fill(0);
            self.ready = false;
            self.last_word = None;
        }
        status
    }

    fn fill_from(&mut self, device: &Device, out: &mut [u8]) -> u32 {
        if !self.ready && self.set_up(device).is_err() {
            return entropy_status::NOT_READY;
        }
        for chunk in out.chunks_mut(4) {
            if wait_for_word(device, WORD_LIMIT_MS).is_err() {
                runtime::println!("no word available within {WORD_LIMIT_MS} ms: the generator stopped; it is set up again on the next call");
                return entropy_status::NOT_READY;
            }
            let word = device.mmio.read32(RNG_DATA);
            if self.last_word == Some(word) {
                runtime::println!("the generator gave {word:#010x} twice in a row (continuous test): refusing its output");
                return entropy_status::STUCK;
            }
            self.last_word = Some(word);
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
        entropy_status::OK
    }
}

impl Entropy for RngDomain {
    fn fill(&self, buffer: RRef<RandomBytes>) -> RpcResult<RRef<RandomBytes>> {
        let mut buffer = buffer;
        let len = buffer.len as usize;
        if len > RandomBytes::CAPACITY {
            buffer.status = entropy_status::TOO_MANY;
            buffer.bytes = [0; RandomBytes::CAPACITY];
            return Ok(buffer);
        }
        let status = self.generator.with(|g| {
            if g.device.is_none() {
                return Err(RpcError::Unavailable);
            }
            Ok(g.fill(&mut buffer.bytes[..len]))
        })?;
        // Bytes past `len` are the caller's own; nothing of the generator's goes there.
        buffer.status = status;
        Ok(buffer)
    }
}

fn init() -> Result<(), &'static str> {
    let device = Device::claim(0).ok_or("no RNG granted (the recipe must list brcm,bcm2835-rng)")?;
    if device.mmio.size() < RNG_DATA + 4 {
        return Err("the RNG grant is smaller than its registers (0xc bytes at least)");
    }
    RNG.generator.with(|g| g.device = Some(device));
    entropy::export(&RNG).map_err(|_| "cannot export Entropy")?;
    let (major, minor, patch) = runtime::version();
    runtime::println!("BCM2835 RNG driver {major}.{minor}.{patch} ready (the generator is warmed up on the first call)");
    Ok(())
}

runtime::entry!(init);
