//! Typed access to a device's register block.

use core::marker::PhantomData;
use core::ops::Deref;

/// A register block of type `R` (a `tock-registers` struct) at a mapped MMIO address.
pub struct Mmio<R> {
    base: usize,
    _regs: PhantomData<fn() -> R>,
}

impl<R> Mmio<R> {
    /// # Safety
    /// `base` must be the address of a mapped Device-memory region at least
    /// `size_of::<R>()` bytes long holding registers laid out as `R`, and the caller must
    /// make sure no other code drives the same device concurrently.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base, _regs: PhantomData }
    }
}

impl<R> Deref for Mmio<R> {
    type Target = R;
    fn deref(&self) -> &R {
        // SAFETY: guaranteed by the contract of `Mmio::new`; registers are accessed only by
        // volatile reads/writes through `tock-registers`.
        unsafe { &*(self.base as *const R) }
    }
}
