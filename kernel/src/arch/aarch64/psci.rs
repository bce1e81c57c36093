//! PSCI (Arm DEN 0022): system power-off through the firmware or hypervisor.

/// How PSCI calls reach the firmware, from the device tree's `/psci` `method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

const SYSTEM_OFF: u64 = 0x8400_0008;

/// Asks the firmware to power the system off. Returns only if the call failed.
pub fn system_off(conduit: Conduit) {
    // SAFETY: SYSTEM_OFF takes no arguments and does not return on success; the conduit
    // comes from the device tree, which says the firmware implements PSCI through it.
    unsafe {
        match conduit {
            Conduit::Hvc => core::arch::asm!("hvc #0", inout("x0") SYSTEM_OFF => _, options(nostack)),
            Conduit::Smc => core::arch::asm!("smc #0", inout("x0") SYSTEM_OFF => _, options(nostack)),
        }
    }
}
