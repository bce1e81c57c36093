//! What the controller and the card answer, checked before it is used: card status bits,
//! the published relative address, the card-specific data (CSD) and the clock divider the
//! driver derives from the controller's capabilities. Pure functions over the values read,
//! so the host can test them with the answers a broken or hostile card would give
//! (`fuzz/tests/sd_answers.rs` compiles this file as it is).

use core::fmt;

/// What went wrong, for the log and the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No answer in time (what was awaited).
    Timeout(&'static str),
    /// The controller set error interrupt bits (its INTERRUPT register's high half).
    Controller(&'static str, u32),
    /// The card reported an error in its status (R1).
    Card(&'static str, u32),
    /// An answer that makes no sense.
    Protocol(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Error::Controller(what, bits) => write!(f, "{what}: controller error bits {bits:#06x}"),
            Error::Card(what, status) => write!(f, "{what}: the card reports status {status:#010x}"),
            Error::Protocol(what) => write!(f, "{what}"),
        }
    }
}

/// Card status (R1) bits that report an error (spec 4.10.1: OUT_OF_RANGE ... AKE_SEQ_ERROR).
const R1_ERRORS: u32 = 0xfdf9_8008;
/// R6: the card status bits 23, 22, 19 it carries (in its bits 15-13).
const R6_ERRORS: u32 = 0xe000;
/// The divider bits of the clock control register (10-bit divider, spec 3.0).
pub const CLK_DIVIDER_MASK: u32 = 0xffc0;
/// A card claiming more than SDXC's 2 TiB is not believed.
const MAX_CAPACITY: u64 = 2 << 40;

/// The relative card address CMD3's answer (R6) publishes, as the argument of the commands
/// that take it: refused if the answer reports an error or the address is 0.
pub fn published_address(r6: u32) -> Result<u32, Error> {
    if r6 & R6_ERRORS != 0 {
        return Err(Error::Card("CMD3", r6));
    }
    if r6 >> 16 == 0 {
        return Err(Error::Protocol("the card published relative address 0"));
    }
    Ok(r6 & 0xffff_0000)
}

/// The clock control bits that divide `base_hz` down to at most `hz`: spec 3.0's 10-bit
/// divider N (SDCLK = base / 2N), or before it a power of two (base / 2N, N up to 128).
/// `None` if no divider is large enough.
pub fn divider_bits(base_hz: u32, hz: u32, ten_bit: bool) -> Option<u32> {
    if base_hz <= hz {
        return Some(0);
    }
    let n = base_hz.div_ceil(2 * hz);
    if ten_bit {
        (n <= 0x3ff).then_some(((n & 0xff) << 8 | (n >> 8) << 6) & CLK_DIVIDER_MASK)
    } else {
        let n = n.checked_next_power_of_two()?;
        (n <= 0x80).then_some(n << 8)
    }
}

/// An R1 card status without error bits.
pub fn card_ok(what: &'static str, status: u32) -> Result<(), Error> {
    if status & R1_ERRORS != 0 {
        Err(Error::Card(what, status))
    } else {
        Ok(())
    }
}

/// The card-specific data register as the controller gives it: the response registers
/// hold CSD bits 127-8 (the CRC byte dropped) as bits 119-0.
pub struct Csd(pub [u32; 4]);

impl Csd {
    /// CSD bits `hi` down to `lo` (at most 32 of them, all at or above bit 8).
    fn bits(&self, hi: u32, lo: u32) -> u32 {
        let mut v = 0u64;
        for bit in (lo..=hi).rev() {
            let at = bit - 8;
            v = v << 1 | u64::from(self.0[(at / 32) as usize] >> (at % 32) & 1);
        }
        v as u32
    }

    /// The card's size in `block`-byte blocks, checked against how the card is addressed
    /// (`block_addressed`: the OCR's CCS bit): a CSD version that disagrees with it, an SDSC
    /// card too large for 32-bit byte addresses, or a card smaller than one block is refused.
    pub fn blocks(&self, block_addressed: bool, block: u64) -> Result<u64, Error> {
        let bytes = self.capacity()?;
        if self.high_capacity() != block_addressed {
            return Err(Error::Protocol("the card's CSD version disagrees with its capacity bit (OCR CCS)"));
        }
        // SDSC takes byte addresses in 32 bits: a larger one could not be addressed.
        if !block_addressed && bytes > 1 << 32 {
            return Err(Error::Protocol("an SDSC card larger than 4 GiB"));
        }
        match bytes / block {
            0 => Err(Error::Protocol("the card is smaller than one 4 KiB block")),
            n => Ok(n),
        }
    }

    fn high_capacity(&self) -> bool {
        self.bits(127, 126) == 1
    }

    /// PERM_WRITE_PROTECT or TMP_WRITE_PROTECT.
    pub fn write_protected(&self) -> bool {
        self.bits(13, 12) != 0
    }

    /// The card's size in bytes (spec 5.3.2, 5.3.3), checked to be believable.
    pub fn capacity(&self) -> Result<u64, Error> {
        let bytes = match self.bits(127, 126) {
            // CSD version 1.0: (C_SIZE + 1) * 2^(C_SIZE_MULT + 2) blocks of 2^READ_BL_LEN.
            0 => {
                let read_bl_len = self.bits(83, 80);
                if !(9..=11).contains(&read_bl_len) {
                    return Err(Error::Protocol("the CSD gives a block length other than 512, 1024 or 2048"));
                }
                let c_size = u64::from(self.bits(73, 62));
                let mult = self.bits(49, 47) + 2;
                (c_size + 1) << (mult + read_bl_len)
            }
            // CSD version 2.0: (C_SIZE + 1) * 512 KiB.
            1 => (u64::from(self.bits(69, 48)) + 1) << 19,
            _ => return Err(Error::Protocol("the CSD has an unknown structure version")),
        };
        if bytes > MAX_CAPACITY {
            return Err(Error::Protocol("the CSD gives a capacity over 2 TiB"));
        }
        Ok(bytes)
    }
}
