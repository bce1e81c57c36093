//! The device registers the kernel's own drivers use (the interrupt controller, the host
//! link, the PCI host bridge), recorded as each is set up, so that no device grant reaches
//! them whatever the device tree calls the device (`domain::grants`).

use crate::memory::Region;
use crate::sync::IrqLock;
use alloc::vec::Vec;

static KEPT: IrqLock<Vec<(Region, &'static str)>> = IrqLock::new("kernel-kept devices", Vec::new());

/// The kernel drives `r` itself, as `what` ("the interrupt controller").
pub fn keep(r: Region, what: &'static str) {
    if r.size > 0 {
        KEPT.lock().push((r, what));
    }
}

/// What the kernel keeps that overlaps `r`, if anything.
pub fn overlapping(r: &Region) -> Option<&'static str> {
    KEPT.lock().iter().find(|(k, _)| k.overlaps(r)).map(|(_, what)| *what)
}
