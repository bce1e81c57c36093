//! NS16550A-compatible UART (QEMU's `pci-serial`, the second serial port on virt that
//! carries hot-swap pushes from the host), read on its receive interrupt. Registers are one
//! byte apart.

// tock-registers' layout checks take offsets modulo the register alignment, 1 for bytes.
#![allow(clippy::modulo_one)]

use super::mmio::Mmio;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u8,
    LSR [
        THRE OFFSET(5) NUMBITS(1) [],
        DR OFFSET(0) NUMBITS(1) [],
    ],
    FCR [
        /// Receive interrupt at 1, 4, 8 or 14 bytes waiting.
        TRIGGER OFFSET(6) NUMBITS(2) [Bytes14 = 0b11],
        CLEAR_TX OFFSET(2) NUMBITS(1) [],
        CLEAR_RX OFFSET(1) NUMBITS(1) [],
        ENABLE OFFSET(0) NUMBITS(1) [],
    ],
    LCR [
        /// Divisor latch access: offsets 0 and 1 are the baud divisor.
        DLAB OFFSET(7) NUMBITS(1) [],
        WLEN OFFSET(0) NUMBITS(2) [EightBit = 0b11],
    ],
    IER [
        /// Received data available (and the FIFO's character timeout).
        RDI OFFSET(0) NUMBITS(1) [],
    ],
}

register_structs! {
    pub Registers {
        (0x00 => data: ReadWrite<u8>),
        (0x01 => ier: ReadWrite<u8, IER::Register>),
        (0x02 => fcr: ReadWrite<u8, FCR::Register>),
        (0x03 => lcr: ReadWrite<u8, LCR::Register>),
        (0x04 => mcr: ReadWrite<u8>),
        (0x05 => lsr: ReadOnly<u8, LSR::Register>),
        (0x06 => @END),
    }
}

pub struct Ns16550 {
    regs: Mmio<Registers>,
}

impl Ns16550 {
    /// # Safety
    /// As [`Mmio::new`]: `base` is a mapped 16550 that nothing else drives.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Self {
            // SAFETY: forwarded to the caller.
            regs: unsafe { Mmio::new(base) },
        };
        uart.regs.ier.set(0); // until the receiver waits for bytes
                              // Divisor 1 (115200 baud): QEMU does not pace the link by it, but its FIFO's
                              // character timeout is 4 character times, 0.35 ms here rather than 4 ms at 9600.
        uart.regs.lcr.write(LCR::DLAB::SET);
        uart.regs.data.set(1);
        uart.regs.ier.set(0);
        uart.regs.lcr.write(LCR::WLEN::EightBit);
        // Interrupt at 14 bytes (or on the timeout): QEMU then moves up to 14 bytes from the
        // socket per turn of its main loop, where a 1-byte trigger level gets 1.
        uart.regs
            .fcr
            .write(FCR::ENABLE::SET + FCR::CLEAR_RX::SET + FCR::CLEAR_TX::SET + FCR::TRIGGER::Bytes14);
        uart.regs.mcr.set(0x03); // DTR, RTS
        uart
    }
}

impl super::SerialPort for Ns16550 {
    fn read_byte(&self) -> Option<u8> {
        self.regs.lsr.is_set(LSR::DR).then(|| self.regs.data.get())
    }

    fn write_byte(&self, b: u8) {
        while !self.regs.lsr.is_set(LSR::THRE) {
            core::hint::spin_loop();
        }
        self.regs.data.set(b);
    }

    fn set_rx_interrupt(&self, on: bool) {
        self.regs.ier.write(if on { IER::RDI::SET } else { IER::RDI::CLEAR });
    }
}
