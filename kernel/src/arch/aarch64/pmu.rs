//! The PMU cycle counter. Under QEMU `-icount shift=0` it counts guest instructions
//! exactly, which is what `cargo xtask bench` reports; on a real Cortex-A53 (`cargo xtask
//! dist --bench`) it counts CPU cycles. Several of the registers below reset to UNKNOWN
//! values on hardware (QEMU resets them to 0), so `enable` sets every field it relies on;
//! boot.s has already let EL1 use the PMU untrapped (MDCR_EL2, MDCR_EL3).

/// PMCR_EL0 bits: E (enable), D (count every 64th cycle), LC (64-bit overflow).
const PMCR_E: u64 = 1 << 0;
const PMCR_D: u64 = 1 << 3;
const PMCR_LC: u64 = 1 << 6;

/// Starts the cycle counter: PMCR_EL0.E on, .D off (every cycle), .LC on; PMCCFILTR_EL0
/// zero (count at EL0 and EL1, whatever the firmware left); PMCNTENSET_EL0.C.
pub fn enable() {
    // SAFETY: PMU configuration registers only; no memory is touched.
    unsafe {
        core::arch::asm!(
            "msr pmccfiltr_el0, xzr",
            "mrs {t}, pmcr_el0",
            "bic {t}, {t}, {d}",
            "orr {t}, {t}, {on}",
            "msr pmcr_el0, {t}",
            "mov {t}, #(1 << 31)",
            "msr pmcntenset_el0, {t}",
            "isb",
            t = out(reg) _,
            d = in(reg) PMCR_D,
            on = in(reg) PMCR_E | PMCR_LC,
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
