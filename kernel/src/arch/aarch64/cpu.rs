//! Small CPU primitives: interrupt masking, waiting, the core id.

use aarch64_cpu::asm;
use aarch64_cpu::registers::{Readable, DAIF};

/// Saved interrupt mask, restored by [`irq_restore`].
#[derive(Clone, Copy)]
pub struct IrqState(u64);

// Both are compiler memory barriers (no `nomem`): memory accesses of a critical section
// must not move across the instructions that mask and unmask interrupts, or another
// context could see the section half done (e.g. a lock still marked held).

/// Masks IRQs (and FIQs) and returns the previous state.
#[inline(always)]
pub fn irq_save() -> IrqState {
    let daif: u64;
    // SAFETY: reads DAIF and masks interrupts; PSTATE only.
    unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #3", out(reg) daif, options(nostack, preserves_flags)) };
    IrqState(daif)
}

/// Restores a state from [`irq_save`].
#[inline(always)]
pub fn irq_restore(s: IrqState) {
    // SAFETY: writes back a DAIF value read by `irq_save`; PSTATE only.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) s.0, options(nostack, preserves_flags)) };
}

/// The stack pointer.
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads SP into a register; no memory access, no other effect.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// True when IRQs are masked on this core (inside a lock or an exception handler).
pub fn irqs_masked() -> bool {
    DAIF.get() & (1 << 7) != 0
}

/// Waits for an interrupt (returns at once if one is pending).
#[inline(always)]
pub fn wait_for_interrupt() {
    asm::wfi();
}

/// Stops this core for good.
pub fn halt() -> ! {
    let _ = irq_save();
    loop {
        asm::wfe();
    }
}

/// Address of a linker-script symbol.
#[macro_export]
macro_rules! linker_symbol {
    ($name:ident) => {{
        extern "C" {
            static $name: u8;
        }
        core::ptr::addr_of!($name) as usize
    }};
}

/// Makes instructions just written through the data cache visible to instruction fetch.
pub fn sync_icache(base: usize, size: usize) {
    const LINE: usize = 64;
    let mut a = base & !(LINE - 1);
    while a < base + size {
        // SAFETY: cache maintenance by address on mapped memory has no other effect.
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += LINE;
    }
    // SAFETY: barriers and instruction-cache invalidation only.
    unsafe { core::arch::asm!("dsb ish", "ic iallu", "dsb ish", "isb", options(nostack, preserves_flags)) };
}
