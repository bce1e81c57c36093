//! Small CPU primitives: interrupt masking, waiting, the core id.

use aarch64_cpu::asm;
use aarch64_cpu::registers::{Readable, Writeable, DAIF};

/// Saved interrupt mask, restored by [`irq_restore`].
#[derive(Clone, Copy)]
pub struct IrqState(u64);

/// Masks IRQs (and FIQs) and returns the previous state.
#[inline(always)]
pub fn irq_save() -> IrqState {
    let s = IrqState(DAIF.get());
    // SAFETY: masking interrupts has no memory-safety effect; `daifset` touches only PSTATE.
    unsafe { core::arch::asm!("msr daifset, #3", options(nomem, nostack, preserves_flags)) };
    s
}

/// Restores a state from [`irq_save`].
#[inline(always)]
pub fn irq_restore(s: IrqState) {
    DAIF.set(s.0);
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
