//! Device grants: bounds-checked register access to the MMIO range, and interrupt
//! delivery, of a device the domain's signed manifest names. Only the kernel can grant
//! one; a domain cannot make an `Mmio` for an address of its choosing.

use interfaces::{services, DeviceGrant};

/// Register access to one granted MMIO range. Every access is checked against it.
pub struct Mmio {
    base: usize,
    size: usize,
}

impl Mmio {
    fn check(&self, offset: usize) -> usize {
        assert!(
            offset.is_multiple_of(4) && offset.checked_add(4).is_some_and(|e| e <= self.size),
            "MMIO offset {offset:#x} outside the granted {:#x} bytes",
            self.size
        );
        self.base + offset
    }

    pub fn read32(&self, offset: usize) -> u32 {
        let a = self.check(offset);
        // SAFETY: `a` is 4-byte aligned inside the range the kernel mapped as device memory
        // for this domain's grant.
        unsafe { core::ptr::read_volatile(a as *const u32) }
    }

    pub fn write32(&self, offset: usize, value: u32) {
        let a = self.check(offset);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(a as *mut u32, value) }
    }

    pub fn size(&self) -> usize {
        self.size
    }
}

/// A granted device: its registers and, if it has one, its interrupt.
pub struct Device {
    pub mmio: Mmio,
    index: u32,
    has_irq: bool,
}

impl Device {
    /// The `index`-th device of the manifest's grants, if the kernel granted it.
    pub fn claim(index: u32) -> Option<Device> {
        let mut g = DeviceGrant::default();
        // SAFETY: `g` is a live `DeviceGrant` the kernel fills.
        if unsafe { (services().device)(index, &mut g) } != 0 {
            return None;
        }
        Some(Device {
            mmio: Mmio {
                base: g.mmio_base,
                size: g.mmio_size,
            },
            index,
            has_irq: g.has_irq != 0,
        })
    }

    pub fn has_irq(&self) -> bool {
        self.has_irq
    }

    /// Waits for the device's interrupt. The line stays masked until `irq_done`.
    pub fn wait_irq(&self) -> bool {
        // SAFETY: a plain grant index.
        unsafe { (services().irq_wait)(self.index) == 0 }
    }

    pub fn irq_done(&self) {
        // SAFETY: a plain grant index.
        unsafe { (services().irq_done)(self.index) }
    }
}
