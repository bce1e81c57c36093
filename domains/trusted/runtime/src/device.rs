//! Device grants: bounds-checked register access to the MMIO range, and interrupt
//! delivery, of a device the domain's signed manifest names. Only the kernel can grant
//! one; a domain cannot make an `Mmio` for an address of its choosing.

use interfaces::{services, DeviceGrant};

/// Register access to one granted MMIO range. Every access is checked against it, and a
/// write to a register that gives the device a DMA address is refused (see
/// [`kept_for_the_runtime`]): only the runtime's queue code writes those.
pub struct Mmio {
    base: usize,
    size: usize,
    kind: u32,
}

/// Registers of a virtio-mmio transport (virtio 1.2, 4.2.2) that decide where the device
/// reads and writes memory: the legacy GuestPageSize, QueueNum, QueueAlign and QueuePFN,
/// and the modern QueueReady and queue address registers; and QueueSel and Status, which
/// another thread could otherwise change in the middle of `VirtQueue::new`'s sequence
/// (a red-team finding: the ring the device uses would then disagree with the one the
/// runtime manages). Drivers use `virtqueue::set_status` and `virtqueue::queue_max`.
const VIRTIO_KEPT: &[usize] = &[0x028, 0x030, 0x038, 0x03c, 0x040, 0x044, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0a4];

/// The fw-cfg DMA address register (high and low words; QEMU docs/specs/fw_cfg.txt):
/// writing its low word starts a copy to any address, which nothing here may allow.
const FW_CFG_KEPT: &[usize] = &[0x10, 0x14];

/// True if a driver may not write register `offset` of a device of `kind` itself.
pub fn kept_for_the_runtime(kind: u32, offset: usize) -> bool {
    match kind {
        interfaces::abi::DEVICE_VIRTIO_MMIO => VIRTIO_KEPT.contains(&offset),
        interfaces::abi::DEVICE_FW_CFG => FW_CFG_KEPT.contains(&offset),
        _ => false,
    }
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

    /// Writes a register. Panics (the domain crashes) on a register the runtime keeps.
    pub fn write32(&self, offset: usize, value: u32) {
        assert!(
            !kept_for_the_runtime(self.kind, offset),
            "register {offset:#x} of this device gives it a memory address to read or write: {}",
            if self.kind == interfaces::abi::DEVICE_VIRTIO_MMIO {
                "only the runtime's VirtQueue writes it"
            } else {
                "no domain may write it"
            }
        );
        self.write32_kept(offset, value)
    }

    /// Any register, the kept ones included: for the runtime's queue code only.
    pub(crate) fn write32_kept(&self, offset: usize, value: u32) {
        let a = self.check(offset);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(a as *mut u32, value) }
    }

    /// The same registers, for the runtime's queue code (which outlives a `&Device`).
    pub(crate) fn duplicate(&self) -> Mmio {
        Mmio {
            base: self.base,
            size: self.size,
            kind: self.kind,
        }
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
                kind: g.kind,
            },
            index,
            has_irq: g.has_irq != 0,
        })
    }

    pub fn has_irq(&self) -> bool {
        self.has_irq
    }

    /// Waits for the device's interrupt. The line stays masked from when it fires until
    /// `irq_done`; the kernel unmasks it then if a thread waits, otherwise on the next wait.
    pub fn wait_irq(&self) -> bool {
        // SAFETY: a plain grant index.
        unsafe { (services().irq_wait)(self.index) == 0 }
    }

    pub fn irq_done(&self) {
        // SAFETY: a plain grant index.
        unsafe { (services().irq_done)(self.index) }
    }
}
