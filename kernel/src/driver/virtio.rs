//! What the kernel itself does to a virtio-mmio transport a domain is granted: read which
//! device sits behind it (to pick the transport a `virtio,mmio:ID` grant asks for), and
//! reset it when the domain goes (so the device stops using DMA memory about to be freed).
//! The driver itself is the domain; see the virtio 1.2 spec, section 4.2.2.

use crate::memory::Region;

/// "virt" in little-endian: the MagicValue register of every virtio-mmio transport.
const MAGIC: u32 = 0x7472_6976;
const REG_MAGIC: usize = 0x000;
const REG_DEVICE_ID: usize = 0x008;
const REG_STATUS: usize = 0x070;

fn read(r: Region, offset: usize) -> Option<u32> {
    if offset + 4 > r.size {
        return None;
    }
    // SAFETY: `r` is a virtio-mmio register block the kernel mapped as device memory
    // (`memory::map_device`, done before this is called); the offset is inside it and
    // 4-byte aligned; reading these registers has no side effect.
    Some(unsafe { core::ptr::read_volatile((r.base + offset) as *const u32) })
}

/// The device ID behind transport `r` (0 for none), or `None` if it is no virtio-mmio
/// transport.
pub fn device_id(r: Region) -> Option<u32> {
    (read(r, REG_MAGIC)? == MAGIC).then(|| read(r, REG_DEVICE_ID)).flatten()
}

/// Resets the device behind transport `r`: it stops processing its queues.
pub fn reset(r: Region) {
    if device_id(r).is_some() && REG_STATUS + 4 <= r.size {
        // SAFETY: as in `read`; writing 0 to Status is the spec's device reset, after which
        // the device uses no queue memory until a driver sets one up again.
        unsafe { core::ptr::write_volatile((r.base + REG_STATUS) as *mut u32, 0) };
    }
}
