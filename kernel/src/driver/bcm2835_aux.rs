//! The BCM2835 auxiliary "mini UART" (BCM2835 ARM Peripherals, section 2.2), read on its
//! receive interrupt: the
//! Raspberry Pi 3's second serial port, which carries hot-swap pushes from the host in QEMU.
//! (On a real board it would also need the AUX enable bit and GPIO pins; see the README.)

use super::mmio::Mmio;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    LSR [
        TX_EMPTY OFFSET(5) NUMBITS(1) [],
        DATA_READY OFFSET(0) NUMBITS(1) [],
    ],
    CNTL [
        TX_ENABLE OFFSET(1) NUMBITS(1) [],
        RX_ENABLE OFFSET(0) NUMBITS(1) [],
    ],
}

// Offsets from the UART's own node (`brcm,bcm2835-aux-uart`, at AUX base + 0x40).
register_structs! {
    pub Registers {
        (0x00 => io: ReadWrite<u32>),
        (0x04 => ier: ReadWrite<u32>),
        (0x08 => iir: ReadWrite<u32>),
        (0x0c => lcr: ReadWrite<u32>),
        (0x10 => mcr: ReadWrite<u32>),
        (0x14 => lsr: ReadOnly<u32, LSR::Register>),
        (0x18 => _reserved0),
        (0x20 => cntl: ReadWrite<u32, CNTL::Register>),
        (0x24 => _reserved1),
        (0x40 => @END),
    }
}

pub struct MiniUart {
    regs: Mmio<Registers>,
}

impl MiniUart {
    /// # Safety
    /// As [`Mmio::new`]: `base` is the mapped mini UART, which nothing else drives.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Self {
            // SAFETY: forwarded to the caller.
            regs: unsafe { Mmio::new(base) },
        };
        uart.regs.ier.set(0); // until the receiver waits for bytes
        uart.regs.lcr.set(0b11); // 8 bits
        uart.regs.cntl.write(CNTL::RX_ENABLE::SET + CNTL::TX_ENABLE::SET);
        uart
    }
}

impl super::SerialPort for MiniUart {
    fn read_byte(&self) -> Option<u8> {
        self.regs.lsr.is_set(LSR::DATA_READY).then(|| (self.regs.io.get() & 0xff) as u8)
    }

    fn write_byte(&self, b: u8) {
        while !self.regs.lsr.is_set(LSR::TX_EMPTY) {
            core::hint::spin_loop();
        }
        self.regs.io.set(b as u32);
    }

    fn set_rx_interrupt(&self, on: bool) {
        // Bit 0: receive interrupt (the datasheet's table swaps it with bit 1; QEMU and
        // Linux use bit 0).
        self.regs.ier.set(on as u32);
    }
}
