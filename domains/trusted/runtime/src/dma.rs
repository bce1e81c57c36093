//! DMA buffers: memory a device may read and write, owned by the domain like any value.
//! The kernel allocates it (zeroed, physically contiguous, charged to the domain's
//! shared-heap quota) and frees it when the buffer is dropped or the domain dies. The CPU
//! reaches it only through the bounds-checked copies below; the device learns its address
//! only from the runtime's `VirtQueue`, which holds the buffer for as long as the device
//! may use it. So a driver in safe Rust can neither read nor write outside its buffers,
//! nor make a device do so.

use core::sync::atomic::{fence, Ordering};
use interfaces::{services, DmaGrant};

/// Why a DMA buffer could not be made, or an access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// The kernel refused: zero bytes, more than 256 KiB, too many buffers, or the
    /// shared-heap quota (which DMA buffers count against) has no room.
    Refused,
    /// An access past the buffer's end.
    OutOfRange,
}

impl core::fmt::Display for DmaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DmaError::Refused => "the kernel refused the DMA buffer (size, count or quota)",
            DmaError::OutOfRange => "an access past the end of the DMA buffer",
        })
    }
}

/// A DMA buffer (whole pages).
pub struct DmaBuffer {
    grant: DmaGrant,
}

impl DmaBuffer {
    /// A zeroed buffer of at least `bytes` bytes.
    pub fn new(bytes: usize) -> Result<DmaBuffer, DmaError> {
        let mut grant = DmaGrant::default();
        // SAFETY: `grant` is a live `DmaGrant` the kernel fills.
        if unsafe { (services().dma_alloc)(bytes, &mut grant) } != 0 || grant.size < bytes {
            return Err(DmaError::Refused);
        }
        Ok(DmaBuffer { grant })
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.grant.size
    }

    pub fn is_empty(&self) -> bool {
        self.grant.size == 0
    }

    /// The address the device is given; only the runtime's queue code uses it.
    pub(crate) fn device_address(&self) -> u64 {
        self.grant.device_address
    }

    fn range(&self, offset: usize, len: usize) -> Result<usize, DmaError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.grant.size => Ok(self.grant.addr + offset),
            _ => Err(DmaError::OutOfRange),
        }
    }

    /// Copies `out.len()` bytes from `offset` out of the buffer.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DmaError> {
        let at = self.range(offset, out.len())?;
        // What the device wrote before it said so (its interrupt, the used ring) is seen.
        fence(Ordering::SeqCst);
        // SAFETY: `at..at + out.len()` lies inside this buffer, memory the kernel gave this
        // domain until the buffer is dropped; no Rust reference to it exists (the device
        // may write it), so it is only copied through raw pointers.
        unsafe { core::ptr::copy_nonoverlapping(at as *const u8, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `data` into the buffer at `offset`.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), DmaError> {
        let at = self.range(offset, data.len())?;
        // SAFETY: as in `read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u8, data.len()) };
        // Written before the device is told about it.
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Fills `len` bytes from `offset` with `byte`.
    pub fn fill(&mut self, offset: usize, len: usize, byte: u8) -> Result<(), DmaError> {
        let at = self.range(offset, len)?;
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_bytes(at as *mut u8, byte, len) };
        fence(Ordering::SeqCst);
        Ok(())
    }

    pub fn read_u16(&self, offset: usize) -> Result<u16, DmaError> {
        let mut b = [0; 2];
        self.read(offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    pub fn read_u32(&self, offset: usize) -> Result<u32, DmaError> {
        let mut b = [0; 4];
        self.read(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn read_u64(&self, offset: usize) -> Result<u64, DmaError> {
        let mut b = [0; 8];
        self.read(offset, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn write_u16(&mut self, offset: usize, v: u16) -> Result<(), DmaError> {
        self.write(offset, &v.to_le_bytes())
    }

    pub fn write_u32(&mut self, offset: usize, v: u32) -> Result<(), DmaError> {
        self.write(offset, &v.to_le_bytes())
    }

    pub fn write_u64(&mut self, offset: usize, v: u64) -> Result<(), DmaError> {
        self.write(offset, &v.to_le_bytes())
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // SAFETY: a handle the kernel gave this domain; the kernel ignores any other.
        unsafe { (services().dma_free)(self.grant.handle) };
    }
}

impl core::fmt::Debug for DmaBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DmaBuffer({} bytes)", self.grant.size)
    }
}
