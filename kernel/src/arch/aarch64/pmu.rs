//! The PMU cycle counter. Under QEMU `-icount shift=0` it counts guest instructions
//! exactly, which is what `cargo xtask bench` reports.

/// Starts the cycle counter (PMCR_EL0.E, PMCNTENSET_EL0.C).
pub fn enable() {
    // SAFETY: PMU configuration registers only; no memory is touched.
    unsafe {
        core::arch::asm!(
            "mrs {t}, pmcr_el0",
            "orr {t}, {t}, #1",
            "msr pmcr_el0, {t}",
            "mov {t}, #(1 << 31)",
            "msr pmcntenset_el0, {t}",
            "isb",
            t = out(reg) _,
            options(nostack)
        )
    };
}

/// The cycle counter.
#[inline(always)]
pub fn cycles() -> u64 {
    let v: u64;
    // SAFETY: reads a counter register.
    unsafe { core::arch::asm!("isb", "mrs {}, pmccntr_el0", out(reg) v, options(nostack)) };
    v
}
