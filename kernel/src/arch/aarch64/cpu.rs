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

/// ID_AA64ISAR0_EL1 as read once (`u64::MAX`: not read yet; no CPU sets every field).
static ISAR0: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(u64::MAX);

/// The 4-bit field at `shift` of ID_AA64ISAR0_EL1 (which instruction-set extensions this
/// CPU has: AES at 4, SHA-256 at 12, CRC32 at 16, ...), the register read once.
pub fn isar0_field(shift: u32) -> u64 {
    use core::sync::atomic::Ordering::Relaxed;
    let mut isar0 = ISAR0.load(Relaxed);
    if isar0 == u64::MAX {
        // SAFETY: reads an ID register; no side effects.
        unsafe { core::arch::asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack, preserves_flags)) };
        ISAR0.store(isar0, Relaxed);
    }
    (isar0 >> shift) & 0xf
}
