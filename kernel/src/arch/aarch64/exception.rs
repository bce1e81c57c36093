//! Exception entry from the vectors (vectors.s), decoding of syndromes, fatal reports.

use aarch64_cpu::registers::{Readable, Writeable, ESR_EL1, FAR_EL1, VBAR_EL1};
use core::fmt;

/// Registers saved on exception entry; layout shared with vectors.s.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub sp: u64,
    pub elr: u64,
    pub spsr: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 272);

/// SPSR for a kernel thread: EL1 on SP_EL0 ("EL1t"), interrupts enabled.
pub const SPSR_EL1T_IRQS_ON: u64 = 0b0100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Kind {
    Sync = 0,
    Irq = 1,
    Fiq = 2,
    SError = 3,
    LowerEl = 4,
}

impl Kind {
    pub fn from_raw(k: u64) -> Kind {
        match k {
            0 => Kind::Sync,
            1 => Kind::Irq,
            2 => Kind::Fiq,
            3 => Kind::SError,
            _ => Kind::LowerEl,
        }
    }
}

/// Exception class and details from ESR_EL1, decoded for people.
#[derive(Clone, Copy)]
pub struct Syndrome {
    pub esr: u64,
    pub far: u64,
}

pub const EC_UNKNOWN: u64 = 0x00;
pub const EC_SVC64: u64 = 0x15;

impl Syndrome {
    pub fn read() -> Self {
        Syndrome {
            esr: ESR_EL1.get(),
            far: FAR_EL1.get(),
        }
    }
    pub fn class(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }
    pub fn class_name(&self) -> &'static str {
        match self.class() {
            0x00 => "unknown reason (undefined instruction)",
            0x01 => "WFI/WFE trapped",
            0x07 => "FP/SIMD access trapped",
            0x0e => "illegal execution state",
            0x15 => "SVC from AArch64",
            0x18 => "system register access trapped",
            0x20 => "instruction abort from a lower EL",
            0x21 => "instruction abort (same EL)",
            0x22 => "PC alignment fault",
            0x24 => "data abort from a lower EL",
            0x25 => "data abort (same EL)",
            0x26 => "SP alignment fault",
            0x2f => "SError",
            0x30 | 0x31 => "breakpoint",
            0x32 | 0x33 => "software step",
            0x34 | 0x35 => "watchpoint",
            0x3c => "BRK instruction",
            _ => "unrecognised exception class",
        }
    }
    /// True for aborts, where FAR holds the faulting address.
    pub fn is_abort(&self) -> bool {
        matches!(self.class(), 0x20 | 0x21 | 0x24 | 0x25)
    }
}

impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [EC {:#04x}]", self.class_name(), self.class())?;
        if self.is_abort() {
            let fsc = self.esr & 0x3f;
            let level = fsc & 0b11;
            let what = match fsc >> 2 {
                0b0001 => "translation fault",
                0b0010 => "access flag fault",
                0b0011 => "permission fault",
                _ if fsc == 0b100001 => "alignment fault",
                _ if fsc == 0b010000 => "synchronous external abort",
                _ => "other fault",
            };
            write!(f, ", {what} at level {level}")?;
            if self.class() & !1 == 0x24 {
                let write = self.esr & (1 << 6) != 0;
                write!(f, ", on {}", if write { "write" } else { "read" })?;
            }
        }
        Ok(())
    }
}

/// Points VBAR_EL1 at the vector table.
pub fn install_vectors() {
    extern "C" {
        static qvq_vectors: u8;
    }
    let base = core::ptr::addr_of!(qvq_vectors) as u64;
    VBAR_EL1.set(base);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Fix-ups that make some traps non-fatal. Returns true if the trap was handled.
pub fn try_fixup(frame: &mut TrapFrame, syn: &Syndrome) -> bool {
    if syn.class() == EC_UNKNOWN && frame.elr as usize == super::semihosting::hlt_address() {
        super::semihosting::note_trapped();
        frame.elr += 4;
        return true;
    }
    false
}

/// Leaves boot code and runs `frame` (a thread's initial frame) on SP_EL0.
pub fn enter_first_thread(frame: &TrapFrame) -> ! {
    extern "C" {
        fn qvq_enter_first_thread(frame: *mut TrapFrame) -> !;
    }
    let top = crate::linker_symbol!(__boot_stack_top);
    let slot = (top - core::mem::size_of::<TrapFrame>()) as *mut TrapFrame;
    // SAFETY: `slot` is the top 272 bytes of the boot stack, which from here on is only the
    // exception stack: nothing on it is live once we jump, and interrupts are masked.
    unsafe {
        slot.write(*frame);
        qvq_enter_first_thread(slot)
    }
}
