//! Raspberry Pi 3 interrupts: the BCM2836 per-core "local" controller (core timers,
//! mailboxes, and one line for the GPU controller) and the BCM2835 "ARM control"
//! controller behind it (the peripherals' interrupts). QvQ numbers them in one space:
//!
//! | numbers  | source                                        |
//! |----------|-----------------------------------------------|
//! | 0..=31   | core-0 local sources (bit in its IRQ source register; 1 = CNTPNS timer) |
//! | 32..=63  | GPU interrupts 0..31 (ARM control bank 1)      |
//! | 64..=95  | GPU interrupts 32..63 (bank 2; UART0 is 57 → 89) |
//! | 96..=103 | ARM control "basic" interrupts                |

use super::mmio::Mmio;
use crate::irq::{IrqController, IrqNumber};
use crate::sync::IrqLock;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_structs! {
    pub LocalRegs {
        (0x00 => control: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x0c => gpu_routing: ReadWrite<u32>),
        (0x10 => _reserved1),
        (0x40 => core0_timer_irq_control: ReadWrite<u32>),
        (0x44 => _reserved2),
        (0x60 => core0_irq_source: ReadOnly<u32>),
        (0x64 => @END),
    }
}

register_structs! {
    pub ArmControlRegs {
        (0x00 => pending_basic: ReadOnly<u32>),
        (0x04 => pending: [ReadOnly<u32>; 2]),
        (0x0c => fiq_control: ReadWrite<u32>),
        (0x10 => enable: [ReadWrite<u32>; 2]),
        (0x18 => enable_basic: ReadWrite<u32>),
        (0x1c => disable: [ReadWrite<u32>; 2]),
        (0x24 => disable_basic: ReadWrite<u32>),
        (0x28 => @END),
    }
}

pub const LOCAL_COMPATIBLE: &str = "brcm,bcm2836-l1-intc";
pub const ARMCTRL_COMPATIBLE: &[&str] = &["brcm,bcm2836-armctrl-ic", "brcm,bcm2835-armctrl-ic"];

const LOCAL_GPU_BIT: u32 = 8;
const GPU_BASE: u32 = 32;
const BASIC_BASE: u32 = 96;

pub struct Bcm2836Intc {
    local: Mmio<LocalRegs>,
    armctrl: Option<Mmio<ArmControlRegs>>,
    /// Local sources enabled through this driver (the source register shows all).
    local_enabled: IrqLock<u32>,
}

impl Bcm2836Intc {
    /// # Safety
    /// `local` (and `armctrl`, if given) must be mapped register blocks of those controllers
    /// that no other code drives.
    pub unsafe fn new(local: usize, armctrl: Option<usize>) -> Self {
        // SAFETY: forwarded to the caller.
        let (local, armctrl) = unsafe { (Mmio::<LocalRegs>::new(local), armctrl.map(|a| Mmio::<ArmControlRegs>::new(a))) };
        local.gpu_routing.set(0); // GPU interrupts to core 0's IRQ line
        local.core0_timer_irq_control.set(0);
        if let Some(a) = &armctrl {
            a.disable[0].set(u32::MAX);
            a.disable[1].set(u32::MAX);
            a.disable_basic.set(u32::MAX);
            a.fiq_control.set(0);
        }
        Self {
            local,
            armctrl,
            local_enabled: IrqLock::new("bcm2836 local mask", 0),
        }
    }
}

impl IrqController for Bcm2836Intc {
    fn name(&self) -> &'static str {
        if self.armctrl.is_some() {
            "BCM2836 local + BCM2835 ARM control"
        } else {
            "BCM2836 local"
        }
    }

    fn enable(&self, irq: IrqNumber) -> bool {
        match irq {
            0..=3 => {
                *self.local_enabled.lock() |= 1 << irq;
                self.local.core0_timer_irq_control.set(*self.local_enabled.lock() & 0xf);
                true
            }
            GPU_BASE..=95 => match &self.armctrl {
                Some(a) => {
                    let n = irq - GPU_BASE;
                    a.enable[(n / 32) as usize].set(1 << (n % 32));
                    true
                }
                None => false,
            },
            BASIC_BASE..=103 => match &self.armctrl {
                Some(a) => {
                    a.enable_basic.set(1 << (irq - BASIC_BASE));
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn disable(&self, irq: IrqNumber) {
        match irq {
            0..=3 => {
                *self.local_enabled.lock() &= !(1 << irq);
                self.local.core0_timer_irq_control.set(*self.local_enabled.lock() & 0xf);
            }
            GPU_BASE..=95 => {
                if let Some(a) = &self.armctrl {
                    let n = irq - GPU_BASE;
                    a.disable[(n / 32) as usize].set(1 << (n % 32));
                }
            }
            BASIC_BASE..=103 => {
                if let Some(a) = &self.armctrl {
                    a.disable_basic.set(1 << (irq - BASIC_BASE));
                }
            }
            _ => {}
        }
    }

    fn claim(&self) -> Option<IrqNumber> {
        let source = self.local.core0_irq_source.get();
        let local = source & *self.local_enabled.lock();
        if local != 0 {
            return Some(local.trailing_zeros());
        }
        if source & (1 << LOCAL_GPU_BIT) != 0 {
            if let Some(a) = &self.armctrl {
                for bank in 0..2 {
                    let p = a.pending[bank].get();
                    if p != 0 {
                        return Some(GPU_BASE + bank as u32 * 32 + p.trailing_zeros());
                    }
                }
                let basic = a.pending_basic.get() & 0xff;
                if basic != 0 {
                    return Some(BASIC_BASE + basic.trailing_zeros());
                }
            }
        }
        None
    }

    fn complete(&self, _irq: IrqNumber) {
        // Level-triggered sources: the device clears its own line.
    }

    fn translate(&self, controller: &str, cells: &[u32]) -> Option<IrqNumber> {
        if controller == LOCAL_COMPATIBLE {
            return match cells {
                [n, ..] if *n < 32 => Some(*n),
                _ => None,
            };
        }
        // ARM control: <bank number>; bank 0 = basic, 1 = GPU 0..31, 2 = GPU 32..63.
        match cells {
            [0, n, ..] if *n < 8 => Some(BASIC_BASE + n),
            [1, n, ..] if *n < 32 => Some(GPU_BASE + n),
            [2, n, ..] if *n < 32 => Some(GPU_BASE + 32 + n),
            _ => None,
        }
    }
}
