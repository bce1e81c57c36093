//! Arm PL011 UART (DDI 0183): QEMU virt's UART and the Raspberry Pi 3's UART0.

use super::mmio::Mmio;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    FR [
        TXFF OFFSET(5) NUMBITS(1) [],
        RXFE OFFSET(4) NUMBITS(1) [],
        BUSY OFFSET(3) NUMBITS(1) [],
    ],
    LCR_H [
        WLEN OFFSET(5) NUMBITS(2) [EightBit = 0b11],
        FEN OFFSET(4) NUMBITS(1) [],
    ],
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) [],
    ],
    INT [
        RT OFFSET(6) NUMBITS(1) [],
        RX OFFSET(4) NUMBITS(1) [],
    ],
}

register_structs! {
    pub Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: ReadWrite<u32>),
        (0x28 => fbrd: ReadWrite<u32>),
        (0x2c => lcr_h: ReadWrite<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => ifls: ReadWrite<u32>),
        (0x38 => imsc: ReadWrite<u32, INT::Register>),
        (0x3c => ris: ReadOnly<u32, INT::Register>),
        (0x40 => mis: ReadOnly<u32, INT::Register>),
        (0x44 => icr: WriteOnly<u32, INT::Register>),
        (0x48 => @END),
    }
}

pub struct Pl011 {
    regs: Mmio<Registers>,
}

impl Pl011 {
    /// # Safety
    /// As [`Mmio::new`]: `base` is a mapped PL011 that nothing else drives.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            // SAFETY: forwarded to the caller.
            regs: unsafe { Mmio::new(base) },
        }
    }

    /// 115200 8N1 with FIFOs. `clock_hz` is the UART reference clock; QEMU ignores the
    /// divisors, a real Pi 3's firmware runs UART0 at 48 MHz.
    pub fn init(&self, clock_hz: u32) {
        self.flush();
        self.regs.cr.set(0);
        self.regs.icr.set(0x7ff);
        // Divisor in 1/64ths: clock / (16 * baud) = IBRD + FBRD/64.
        let div64 = (clock_hz as u64 * 4).div_ceil(115_200) as u32;
        self.regs.ibrd.set(div64 >> 6);
        self.regs.fbrd.set(div64 & 0x3f);
        self.regs.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        self.regs.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    pub fn write_byte(&self, b: u8) {
        while self.regs.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.regs.dr.set(b as u32);
    }

    /// Waits until everything written has left the transmitter.
    pub fn flush(&self) {
        while self.regs.fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }

    pub fn read_byte(&self) -> Option<u8> {
        if self.regs.fr.is_set(FR::RXFE) {
            None
        } else {
            Some((self.regs.dr.get() & 0xff) as u8)
        }
    }

    /// Interrupt on received data (and receive timeout, so single bytes arrive promptly).
    pub fn enable_rx_interrupt(&self) {
        self.regs.imsc.write(INT::RX::SET + INT::RT::SET);
    }

    pub fn clear_rx_interrupt(&self) {
        self.regs.icr.write(INT::RX::SET + INT::RT::SET);
    }
}
