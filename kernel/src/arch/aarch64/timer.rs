//! The Arm generic timer: the EL1 physical timer drives the scheduler tick, and the
//! physical counter is the kernel's monotonic clock.

use aarch64_cpu::registers::{Readable, Writeable, CNTFRQ_EL0, CNTPCT_EL0, CNTP_CTL_EL0, CNTP_CVAL_EL0};
use core::sync::atomic::{AtomicU64, Ordering};

/// The counter frequency the kernel uses (Hz; the CPU's or the board's), 0 until set.
static FREQUENCY: AtomicU64 = AtomicU64::new(0);

/// Sets the counter frequency the clock converts with.
pub fn set_frequency(hz: u64) {
    FREQUENCY.store(hz, Ordering::Relaxed);
}

pub fn frequency() -> u64 {
    FREQUENCY.load(Ordering::Relaxed)
}

/// Nanoseconds since the counter started (power-on or QEMU start); 0 before the frequency
/// is known.
pub fn uptime_ns() -> u64 {
    let f = frequency();
    if f == 0 {
        return 0;
    }
    (counter() as u128 * 1_000_000_000 / f as u128) as u64
}

/// Counter frequency as the CPU reports it (0 if firmware never set it).
pub fn reported_frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Current counter value.
#[inline]
pub fn counter() -> u64 {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTPCT_EL0.get()
}

/// Fires the timer interrupt when the counter reaches `deadline`.
pub fn arm_at(deadline: u64) {
    CNTP_CVAL_EL0.set(deadline);
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
}
