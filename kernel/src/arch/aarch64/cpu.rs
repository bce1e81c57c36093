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
