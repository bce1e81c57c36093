//! Arm semihosting, used only to end a QEMU run with an exit status.
//!
//! QvQ cannot know whether QEMU was started with `-semihosting`, so it probes once at boot:
//! it issues a harmless call; without semihosting the `hlt` traps as an undefined
//! instruction, the sync handler recognises the address, records that, and skips it.

use core::sync::atomic::{AtomicU8, Ordering};

extern "C" {
    fn qvq_semihosting_call(op: u64, param: u64) -> u64;
    static qvq_semihosting_hlt: u8;
}

const SYS_CLOCK: u64 = 0x10;
const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const ABSENT: u8 = 2;
// Plain load/store only (no read-modify-write): safe before the MMU is on.
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
static TRAPPED: AtomicU8 = AtomicU8::new(0);

/// Address of the `hlt` instruction, for the exception handler's fix-up.
pub fn hlt_address() -> usize {
    core::ptr::addr_of!(qvq_semihosting_hlt) as usize
}

/// Called by the sync handler when the semihosting `hlt` trapped.
pub fn note_trapped() {
    TRAPPED.store(1, Ordering::Relaxed);
}

/// Finds out once whether semihosting answers. Needs the exception vectors installed.
pub fn probe() -> bool {
    if STATE.load(Ordering::Relaxed) == UNKNOWN {
        // SAFETY: SYS_CLOCK takes no parameter block and has no side effects; if semihosting
        // is absent the trap is fixed up by the sync handler.
        unsafe { qvq_semihosting_call(SYS_CLOCK, 0) };
        let s = if TRAPPED.load(Ordering::Relaxed) != 0 { ABSENT } else { AVAILABLE };
        STATE.store(s, Ordering::Relaxed);
    }
    available()
}

pub fn available() -> bool {
    STATE.load(Ordering::Relaxed) == AVAILABLE
}

/// Ends the QEMU run with `status`. Returns only if semihosting is unavailable.
pub fn exit(status: u32) {
    if !available() {
        return;
    }
    let block = [ADP_STOPPED_APPLICATION_EXIT, status as u64];
    // SAFETY: `block` is a valid two-word SYS_EXIT parameter block that outlives the call.
    unsafe { qvq_semihosting_call(SYS_EXIT, block.as_ptr() as u64) };
}
