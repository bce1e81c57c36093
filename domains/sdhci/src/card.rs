//! The controller and the card: start-up as the SD Physical Layer Simplified Specification
//! (4.2, "Card Identification Mode") orders it, and 4 KiB requests as multi-block transfers
//! (CMD18/CMD25 with Auto CMD12) through the controller's buffer data port (SD Host
//! Controller Simplified Specification, 2.2: the register map below).
//!
//! Waits poll the controller's status with a deadline and yield meanwhile, never spin
//! unbounded: the kernel's `irq_wait` has no timeout, so a controller whose interrupt never
//! came would hold the request forever. (QEMU completes each command inside the register
//! write that starts it, so the first poll finds it done.)

use runtime::interfaces::{block_op, block_status, BlockBatch, BlockInfo, BLOCK_BATCH, BLOCK_SIZE};
use runtime::Device;

use crate::answers::{card_ok, divider_bits, published_address, Csd, Error};

// Registers (SD Host Controller spec 2.2; the BCM2835 EMMC block has the same layout).
const BLKSIZECNT: usize = 0x04;
const ARG1: usize = 0x08;
/// Transfer mode (low half) and command (high half): writing it issues the command.
const CMDTM: usize = 0x0c;
const RESP0: usize = 0x10;
const DATA: usize = 0x20;
const STATUS: usize = 0x24;
/// Host control (byte 0), power control (byte 1).
const CONTROL0: usize = 0x28;
/// Clock control (low half), timeout control (byte 2), software reset (byte 3).
const CONTROL1: usize = 0x2c;
const INTERRUPT: usize = 0x30;
/// Which interrupt status bits are recorded (the "status enable" register).
const IRPT_MASK: usize = 0x34;
/// Which recorded bits raise the interrupt line.
const IRPT_EN: usize = 0x38;
const CAPABILITIES: usize = 0x40;
const HOST_VERSION: usize = 0xfc;
/// The registers this driver touches end here: a smaller grant is refused.
const REGISTERS_END: usize = 0x100;

// STATUS (present state).
const CMD_INHIBIT: u32 = 1 << 0;
const DAT_INHIBIT: u32 = 1 << 1;
const CARD_INSERTED: u32 = 1 << 16;

// CONTROL0.
const BUS_WIDTH_4: u32 = 1 << 1;
/// Bus power on, at 3.3 V (power control register, byte 1).
const POWER_3V3_ON: u32 = 0x0f << 8;

// CONTROL1.
const CLK_INTERNAL_EN: u32 = 1 << 0;
const CLK_STABLE: u32 = 1 << 1;
const CLK_SD_EN: u32 = 1 << 2;
/// Data timeout: TMCLK x 2^27, the longest.
const TIMEOUT_MAX: u32 = 0xe << 16;
const SRST_ALL: u32 = 1 << 24;
const SRST_CMD: u32 = 1 << 25;
const SRST_DAT: u32 = 1 << 26;

// INTERRUPT bits: normal (low half) and error (high half).
const INT_CMD_DONE: u32 = 1 << 0;
const INT_DATA_DONE: u32 = 1 << 1;
const INT_WRITE_READY: u32 = 1 << 4;
const INT_READ_READY: u32 = 1 << 5;
const INT_ERROR: u32 = 1 << 15;
const INT_ERRORS: u32 = 0xffff_0000 | INT_ERROR;
/// Recorded: command and transfer complete, both buffer-ready bits, every error.
const INT_RECORDED: u32 = 0x03ff_0000 | INT_CMD_DONE | INT_DATA_DONE | INT_WRITE_READY | INT_READ_READY;

// Transfer mode (CMDTM's low half).
const TM_BLOCK_COUNT: u32 = 1 << 1;
const TM_AUTO_CMD12: u32 = 1 << 2;
const TM_READ: u32 = 1 << 4;
const TM_MULTI_BLOCK: u32 = 1 << 5;

// Command register (CMDTM's high half): response type, checks, data.
const RSP_NONE: u32 = 0;
const RSP_136: u32 = 1;
const RSP_48: u32 = 2;
const RSP_48_BUSY: u32 = 3;
const CHECK_CRC: u32 = 1 << 3;
const CHECK_INDEX: u32 = 1 << 4;
const HAS_DATA: u32 = 1 << 5;
const R1: u32 = RSP_48 | CHECK_CRC | CHECK_INDEX;
const R1B: u32 = RSP_48_BUSY | CHECK_CRC | CHECK_INDEX;
const R2: u32 = RSP_136 | CHECK_CRC;
/// R3 (the OCR) has neither a CRC nor the command's index.
const R3: u32 = RSP_48;
const R6: u32 = R1;
const R7: u32 = R1;

// Commands (SD Physical Layer spec 4.7.4).
const GO_IDLE_STATE: u32 = 0;
const ALL_SEND_CID: u32 = 2;
const SEND_RELATIVE_ADDR: u32 = 3;
const SELECT_CARD: u32 = 7;
const SEND_IF_COND: u32 = 8;
const SEND_CSD: u32 = 9;
const STOP_TRANSMISSION: u32 = 12;
const SEND_STATUS: u32 = 13;
const SET_BLOCKLEN: u32 = 16;
const READ_MULTIPLE_BLOCK: u32 = 18;
const WRITE_MULTIPLE_BLOCK: u32 = 25;
const APP_CMD: u32 = 55;
const SET_BUS_WIDTH: u32 = 6; // after APP_CMD
const SD_SEND_OP_COND: u32 = 41; // after APP_CMD

/// CMD8's argument: 2.7-3.6 V, check pattern 0xaa; the card echoes both.
const IF_COND_CHECK: u32 = 0x1aa;
/// ACMD41's argument: the 3.2-3.4 V window; with HCS, "the host takes high capacity".
const OCR_3V3_WINDOW: u32 = 0x0030_0000;
const OCR_HCS: u32 = 1 << 30;
const OCR_POWERED_UP: u32 = 1 << 31;
const R1_STATE_SHIFT: u32 = 9;
const R1_READY_FOR_DATA: u32 = 1 << 8;
const STATE_TRAN: u32 = 4;
const STATE_DATA: u32 = 5;
const STATE_RCV: u32 = 6;

const SECTOR: u32 = 512;
const SECTORS_PER_BLOCK: u32 = (BLOCK_SIZE as u32) / SECTOR;
/// The identification clock may be at most 400 kHz (spec 6.6.6); the data clock, in the
/// default speed mode, at most 25 MHz.
const IDENTIFY_HZ: u32 = 400_000;
const DATA_HZ: u32 = 25_000_000;
/// The controller's base clock when its capabilities register says 0 (the BCM2835 EMMC
/// block does: its clock comes from the firmware, 250 MHz on a Pi 3 with the default
/// firmware settings, lower on some). Assuming the highest value gives a clock no faster
/// than asked whatever the firmware chose, at worst slower.
const ASSUMED_BASE_HZ: u32 = 250_000_000;

/// How long a command, a block of data, and a clock or reset may take before it is an error.
const COMMAND_NS: u64 = 100_000_000;
const DATA_NS: u64 = 500_000_000;
const SETTLE_NS: u64 = 100_000_000;
/// ACMD41 is repeated until the card says it is powered up, for at most 1 s (spec 4.2.3).
const POWER_UP_NS: u64 = 1_000_000_000;

/// Why a batch stopped early: the card or controller could not be brought back to a state
/// that takes commands, so the driver must be set up again.
pub struct Failure(pub Error);

pub struct SdCard {
    device: Device,
    /// The controller's base clock, from its capabilities or assumed.
    base_hz: u32,
    /// Host controller spec 3.0 or later: a 10-bit clock divider instead of powers of two.
    ten_bit_divider: bool,
    /// The card's relative address (CMD3), in the high half as commands take it.
    rca_arg: u32,
    /// SDHC/SDXC (OCR's CCS bit): commands take sector numbers; SDSC takes byte addresses.
    block_addressed: bool,
    /// Whole 4 KiB blocks on the card.
    blocks: u64,
    read_only: bool,
}

impl SdCard {
    /// Resets the controller and brings the card from power-up to the transfer state.
    pub fn start() -> Result<SdCard, Error> {
        let device = Device::claim(0).ok_or(Error::Protocol("no device granted (the recipe grants brcm,bcm2835-sdhci)"))?;
        if device.mmio.size() < REGISTERS_END {
            return Err(Error::Protocol("the granted register range is smaller than an SDHCI controller's"));
        }
        let caps = device.mmio.read32(CAPABILITIES);
        let version = (device.mmio.read32(HOST_VERSION) >> 16) & 0xff;
        let ten_bit_divider = version >= 2;
        // Base clock in MHz: bits 15-8 from spec 3.0 on, bits 13-8 before.
        let base_mhz = (caps >> 8) & if ten_bit_divider { 0xff } else { 0x3f };
        let base_hz = if base_mhz == 0 { ASSUMED_BASE_HZ } else { base_mhz * 1_000_000 };
        let mut card = SdCard {
            device,
            base_hz,
            ten_bit_divider,
            rca_arg: 0,
            block_addressed: false,
            blocks: 0,
            read_only: false,
        };
        match card.identify() {
            Ok(()) => Ok(card),
            // The BCM2835's card-detect bit is unreliable on real boards (Linux ignores
            // it), so it only explains a failure, never prevents a try.
            Err(e) if card.device.mmio.read32(STATUS) & CARD_INSERTED == 0 => {
                runtime::println!("{e}");
                Err(Error::Protocol("no SD card in the slot (`cargo xtask run --board rpi3` attaches one)"))
            }
            Err(e) => Err(e),
        }
    }

    pub fn info(&self) -> BlockInfo {
        BlockInfo {
            blocks: self.blocks,
            block_size: BLOCK_SIZE as u32,
            read_only: self.read_only as u32,
            can_flush: 1,
            max_batch: BLOCK_BATCH as u32,
        }
    }

    /// Whether the card is addressed by sector (SDHC/SDXC) or by byte (SDSC).
    pub fn kind(&self) -> &'static str {
        if self.block_addressed {
            "SDHC/SDXC, sector addresses"
        } else {
            "SDSC, byte addresses"
        }
    }

    /// The identification sequence (spec 4.2, figure 4-2), then the data clock.
    fn identify(&mut self) -> Result<(), Error> {
        let m = &self.device.mmio;
        m.write32(CONTROL1, SRST_ALL);
        self.wait_control1_clear(SRST_ALL, "the controller's reset")?;
        m.write32(CONTROL0, POWER_3V3_ON);
        m.write32(IRPT_MASK, INT_RECORDED);
        // Polled, see the module's comment: the line stays quiet.
        m.write32(IRPT_EN, 0);
        m.write32(INTERRUPT, 0xffff_ffff);
        self.set_clock(IDENTIFY_HZ)?;
        // The card needs 74 clocks after power-up before its first command (spec 6.4.1).
        runtime::sleep_ms(1);

        self.command(GO_IDLE_STATE, 0, RSP_NONE, 0)?;
        // CMD8: a card of spec 2.0 or later echoes the voltage and the check pattern; a
        // version 1 card does not answer (and cannot be high capacity).
        let high_capacity_host = match self.command(SEND_IF_COND, IF_COND_CHECK, R7, 0) {
            Ok(r) if r[0] & 0xfff == IF_COND_CHECK => true,
            Ok(_) => return Err(Error::Protocol("the card answered CMD8 with another voltage or check pattern")),
            Err(Error::Controller(..)) | Err(Error::Timeout(_)) => {
                self.reset_lines()?;
                false
            }
            Err(e) => return Err(e),
        };
        let hcs = if high_capacity_host { OCR_HCS } else { 0 };
        let t0 = runtime::uptime_ns();
        let ocr = loop {
            self.app_command(0)?;
            let ocr = self.command(SD_SEND_OP_COND, hcs | OCR_3V3_WINDOW, R3, 0)?[0];
            if ocr & OCR_POWERED_UP != 0 {
                break ocr;
            }
            if runtime::uptime_ns().saturating_sub(t0) > POWER_UP_NS {
                return Err(Error::Timeout("the card to power up (ACMD41)"));
            }
            runtime::sleep_ms(1);
        };
        if ocr & OCR_3V3_WINDOW == 0 {
            return Err(Error::Protocol("the card does not work at 3.3 V"));
        }
        self.block_addressed = high_capacity_host && ocr & OCR_HCS != 0;

        self.command(ALL_SEND_CID, 0, R2, 0)?;
        let r6 = self.command(SEND_RELATIVE_ADDR, 0, R6, 0)?[0];
        self.rca_arg = published_address(r6)?;

        let csd = Csd(self.command(SEND_CSD, self.rca_arg, R2, 0)?);
        self.blocks = csd.blocks(self.block_addressed, BLOCK_SIZE as u64)?;
        self.read_only = csd.write_protected();

        let status = self.command(SELECT_CARD, self.rca_arg, R1B, 0)?[0];
        card_ok("CMD7", status)?;
        self.wait_status_clear(DAT_INHIBIT, COMMAND_NS, "the card to be selected")?;
        self.app_command(self.rca_arg)?;
        card_ok("ACMD6", self.command(SET_BUS_WIDTH, 2, R1, 0)?[0])?;
        let m = &self.device.mmio;
        m.write32(CONTROL0, m.read32(CONTROL0) | BUS_WIDTH_4);
        card_ok("CMD16", self.command(SET_BLOCKLEN, SECTOR, R1, 0)?[0])?;
        self.set_clock(DATA_HZ)?;
        Ok(())
    }

    /// CMD55: the next command is an application command.
    fn app_command(&self, rca_arg: u32) -> Result<(), Error> {
        let status = self.command(APP_CMD, rca_arg, R1, 0)?[0];
        // APP_CMD (bit 5): the card took it as such.
        if status & (1 << 5) == 0 {
            return Err(Error::Card("CMD55 not taken as an application command", status));
        }
        Ok(())
    }

    /// Stops the SD clock, sets it to at most `hz` from the base clock, waits until the
    /// internal clock is stable, starts the SD clock again.
    fn set_clock(&self, hz: u32) -> Result<(), Error> {
        let m = &self.device.mmio;
        m.write32(CONTROL1, m.read32(CONTROL1) & !CLK_SD_EN);
        let divider = divider_bits(self.base_hz, hz, self.ten_bit_divider).ok_or(Error::Protocol("the base clock is too fast to divide down to 400 kHz"))?;
        let value = TIMEOUT_MAX | divider | CLK_INTERNAL_EN;
        m.write32(CONTROL1, value);
        let t0 = runtime::uptime_ns();
        while m.read32(CONTROL1) & CLK_STABLE == 0 {
            if runtime::uptime_ns().saturating_sub(t0) > SETTLE_NS {
                return Err(Error::Timeout("the controller's clock to be stable"));
            }
            runtime::yield_now();
        }
        m.write32(CONTROL1, value | CLK_SD_EN);
        Ok(())
    }

    /// Issues command `index` with `arg`; `flags` say its response (and data); `mode` is the
    /// transfer mode for a data command. Returns the response registers.
    fn command(&self, index: u32, arg: u32, flags: u32, mode: u32) -> Result<[u32; 4], Error> {
        let m = &self.device.mmio;
        let busy = if flags & HAS_DATA != 0 || flags & 3 == RSP_48_BUSY {
            CMD_INHIBIT | DAT_INHIBIT
        } else {
            CMD_INHIBIT
        };
        self.wait_status_clear(busy, COMMAND_NS, "the controller to take a command")?;
        m.write32(INTERRUPT, 0xffff_ffff);
        m.write32(ARG1, arg);
        m.write32(CMDTM, (flags | index << 8) << 16 | mode);
        self.wait_interrupt(INT_CMD_DONE, COMMAND_NS, "a command's response")?;
        Ok([m.read32(RESP0), m.read32(RESP0 + 4), m.read32(RESP0 + 8), m.read32(RESP0 + 12)])
    }

    /// Waits until the interrupt status has every bit of `want` (then clears them), or an
    /// error bit (cleared; an error), or the deadline.
    fn wait_interrupt(&self, want: u32, limit_ns: u64, what: &'static str) -> Result<(), Error> {
        let m = &self.device.mmio;
        let mut deadline = None;
        loop {
            let s = m.read32(INTERRUPT);
            if s & INT_ERRORS != 0 {
                m.write32(INTERRUPT, s & INT_ERRORS);
                return Err(Error::Controller(what, s >> 16));
            }
            if s & want == want {
                m.write32(INTERRUPT, want);
                return Ok(());
            }
            let now = runtime::uptime_ns();
            match deadline {
                None => deadline = Some(now.saturating_add(limit_ns)),
                Some(d) if now > d => return Err(Error::Timeout(what)),
                Some(_) => runtime::yield_now(),
            }
        }
    }

    /// Waits until none of `bits` is set in the present-state register.
    fn wait_status_clear(&self, bits: u32, limit_ns: u64, what: &'static str) -> Result<(), Error> {
        let m = &self.device.mmio;
        let mut deadline = None;
        while m.read32(STATUS) & bits != 0 {
            let now = runtime::uptime_ns();
            match deadline {
                None => deadline = Some(now.saturating_add(limit_ns)),
                Some(d) if now > d => return Err(Error::Timeout(what)),
                Some(_) => runtime::yield_now(),
            }
        }
        Ok(())
    }

    fn wait_control1_clear(&self, bits: u32, what: &'static str) -> Result<(), Error> {
        let m = &self.device.mmio;
        let t0 = runtime::uptime_ns();
        while m.read32(CONTROL1) & bits != 0 {
            if runtime::uptime_ns().saturating_sub(t0) > SETTLE_NS {
                return Err(Error::Timeout(what));
            }
            runtime::yield_now();
        }
        Ok(())
    }

    /// Resets the command and data lines (one at a time: each reset bit is its own request)
    /// and clears every interrupt status: the controller takes commands again.
    fn reset_lines(&self) -> Result<(), Error> {
        let m = &self.device.mmio;
        for line in [SRST_CMD, SRST_DAT] {
            m.write32(CONTROL1, m.read32(CONTROL1) | line);
            self.wait_control1_clear(line, "a command or data line reset")?;
        }
        m.write32(INTERRUPT, 0xffff_ffff);
        Ok(())
    }

    /// After a failed transfer: the controller's lines reset, the card stopped if it is
    /// still sending or receiving, and back in the transfer state. An error here means the
    /// card must be set up again.
    fn recover(&self) -> Result<(), Error> {
        self.reset_lines()?;
        for _ in 0..3 {
            let status = match self.command(SEND_STATUS, self.rca_arg, R1, 0) {
                Ok(r) => r[0],
                Err(_) => {
                    self.reset_lines()?;
                    continue;
                }
            };
            match (status >> R1_STATE_SHIFT) & 0xf {
                STATE_TRAN => return Ok(()),
                STATE_DATA | STATE_RCV => {
                    if self.command(STOP_TRANSMISSION, 0, R1B, 0).is_err() {
                        self.reset_lines()?;
                    }
                }
                // Programming: give it time.
                _ => runtime::sleep_ms(1),
            }
        }
        Err(Error::Protocol("the card does not return to the transfer state"))
    }

    /// Waits until the card has finished programming and is ready for data (CMD13).
    fn wait_ready(&self) -> Result<(), Error> {
        let t0 = runtime::uptime_ns();
        loop {
            let status = self.command(SEND_STATUS, self.rca_arg, R1, 0)?[0];
            card_ok("CMD13", status)?;
            if (status >> R1_STATE_SHIFT) & 0xf == STATE_TRAN && status & R1_READY_FOR_DATA != 0 {
                return Ok(());
            }
            if runtime::uptime_ns().saturating_sub(t0) > DATA_NS {
                return Err(Error::Timeout("the card to finish programming"));
            }
            runtime::sleep_ms(1);
        }
    }

    /// Reads or writes 4 KiB block `lba` (already checked to be on the card).
    fn transfer(&self, write: bool, lba: u64, data: &mut [u8; BLOCK_SIZE]) -> Result<(), Error> {
        let sector = lba.checked_mul(u64::from(SECTORS_PER_BLOCK));
        let address = if self.block_addressed {
            sector
        } else {
            sector.and_then(|s| s.checked_mul(u64::from(SECTOR)))
        };
        let arg = address
            .and_then(|a| u32::try_from(a).ok())
            .ok_or(Error::Protocol("a block whose address does not fit a command"))?;
        let m = &self.device.mmio;
        m.write32(BLKSIZECNT, SECTORS_PER_BLOCK << 16 | SECTOR);
        let mode = TM_BLOCK_COUNT | TM_AUTO_CMD12 | TM_MULTI_BLOCK | if write { 0 } else { TM_READ };
        let (index, ready) = if write {
            (WRITE_MULTIPLE_BLOCK, INT_WRITE_READY)
        } else {
            (READ_MULTIPLE_BLOCK, INT_READ_READY)
        };
        let status = self.command(index, arg, R1 | HAS_DATA, mode)?[0];
        card_ok(if write { "CMD25" } else { "CMD18" }, status)?;
        for sector in data.chunks_exact_mut(SECTOR as usize) {
            self.wait_interrupt(ready, DATA_NS, "the controller's data buffer")?;
            for word in sector.chunks_exact_mut(4) {
                if write {
                    m.write32(DATA, u32::from_le_bytes([word[0], word[1], word[2], word[3]]));
                } else {
                    word.copy_from_slice(&m.read32(DATA).to_le_bytes());
                }
            }
        }
        self.wait_interrupt(INT_DATA_DONE, DATA_NS, "the end of a transfer")
    }

    /// Runs the first `count` requests of `batch`, each to its own status. Stops early
    /// (the rest `NOT_DONE`) only if the card cannot be brought back after an error.
    pub fn run(&mut self, batch: &mut BlockBatch) -> Result<(), Failure> {
        let count = (batch.count as usize).min(BLOCK_BATCH);
        for r in batch.requests.iter_mut() {
            r.status = block_status::NOT_DONE;
        }
        for r in batch.requests[..count].iter_mut() {
            let result = match r.op {
                block_op::READ | block_op::WRITE if r.lba >= self.blocks => {
                    r.status = block_status::OUT_OF_RANGE;
                    continue;
                }
                block_op::WRITE if self.read_only => {
                    r.status = block_status::UNSUPPORTED;
                    continue;
                }
                block_op::READ => self.transfer(false, r.lba, &mut r.data),
                block_op::WRITE => self.transfer(true, r.lba, &mut r.data),
                block_op::FLUSH => self.wait_ready(),
                _ => {
                    r.status = block_status::UNSUPPORTED;
                    continue;
                }
            };
            r.status = match result {
                Ok(()) => block_status::OK,
                Err(e) => {
                    runtime::println!("block {}: {e}", r.lba);
                    self.recover().map_err(Failure)?;
                    match e {
                        Error::Protocol(_) => block_status::BAD_ANSWER,
                        _ => block_status::IO_ERROR,
                    }
                }
            };
        }
        Ok(())
    }
}
