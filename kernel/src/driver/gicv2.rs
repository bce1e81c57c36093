//! Arm GICv2 (IHI 0048B): QEMU virt's interrupt controller.

use super::mmio::Mmio;
use crate::irq::{IrqController, IrqNumber};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    pub DistributorRegs {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => typer: ReadOnly<u32>),
        (0x008 => _reserved0),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => icenabler: [ReadWrite<u32>; 32]),
        (0x200 => _reserved1),
        (0x400 => ipriorityr: [ReadWrite<u32>; 255]),
        (0x7fc => _reserved2),
        (0x800 => itargetsr: [ReadWrite<u32>; 255]),
        (0xbfc => _reserved3),
        (0xc00 => @END),
    }
}

register_structs! {
    pub CpuInterfaceRegs {
        (0x00 => ctlr: ReadWrite<u32>),
        (0x04 => pmr: ReadWrite<u32>),
        (0x08 => bpr: ReadWrite<u32>),
        (0x0c => iar: ReadOnly<u32>),
        (0x10 => eoir: WriteOnly<u32>),
        (0x14 => @END),
    }
}

/// Device-tree `compatible` strings this driver handles.
pub const COMPATIBLE: &[&str] = &["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic", "arm,arm11mp-gic"];

pub struct GicV2 {
    dist: Mmio<DistributorRegs>,
    cpu: Mmio<CpuInterfaceRegs>,
    lines: u32,
}

impl GicV2 {
    /// # Safety
    /// Both bases must be mapped GICv2 register frames that no other code drives.
    pub unsafe fn new(dist: usize, cpu: usize) -> Self {
        // SAFETY: forwarded to the caller.
        let (dist, cpu) = unsafe { (Mmio::<DistributorRegs>::new(dist), Mmio::<CpuInterfaceRegs>::new(cpu)) };
        let lines = ((dist.typer.get() & 0x1f) + 1) * 32;
        let gic = Self {
            dist,
            cpu,
            lines: lines.min(1020),
        };
        gic.init();
        gic
    }

    fn init(&self) {
        self.dist.ctlr.set(0);
        for i in 0..(self.lines / 32) as usize {
            self.dist.icenabler[i].set(u32::MAX);
        }
        for i in 8..(self.lines / 4) as usize {
            // Shared interrupts: middle priority, delivered to CPU 0.
            self.dist.ipriorityr[i].set(0xa0a0_a0a0);
            self.dist.itargetsr[i].set(0x0101_0101);
        }
        for i in 0..8 {
            self.dist.ipriorityr[i].set(0xa0a0_a0a0);
        }
        self.dist.ctlr.set(1);
        self.cpu.pmr.set(0xff);
        self.cpu.bpr.set(0);
        self.cpu.ctlr.set(1);
    }
}

impl IrqController for GicV2 {
    fn name(&self) -> &'static str {
        "GICv2"
    }

    fn enable(&self, irq: IrqNumber) -> bool {
        if irq >= self.lines {
            return false;
        }
        self.dist.isenabler[(irq / 32) as usize].set(1 << (irq % 32));
        true
    }

    fn disable(&self, irq: IrqNumber) {
        if irq < self.lines {
            self.dist.icenabler[(irq / 32) as usize].set(1 << (irq % 32));
        }
    }

    fn claim(&self) -> Option<IrqNumber> {
        let iar = self.cpu.iar.get() & 0x3ff;
        if iar >= 1020 {
            None
        } else {
            Some(iar)
        }
    }

    fn complete(&self, irq: IrqNumber) {
        self.cpu.eoir.set(irq);
    }

    fn translate(&self, _controller: &str, cells: &[u32]) -> Option<IrqNumber> {
        // <type number flags>: type 0 = SPI (IDs from 32), 1 = PPI (IDs 16..31).
        match cells {
            [0, n, ..] if *n < 988 => Some(n + 32),
            [1, n, ..] if *n < 16 => Some(n + 16),
            _ => None,
        }
    }
}
