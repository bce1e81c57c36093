//! `RRef<T>`: a value on the shared exchange heap, owned by exactly one domain at a time.
//! The kernel's heap registry records each block's owner; a proxy call moves ownership to
//! the callee (and a returned `RRef` back to the caller); when a domain dies, the registry
//! frees what it owned. Only owner-free types (no references, no pointers) may go inside:
//! those marked [`RRefable`], which only this trusted crate can declare.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// Types that may live on the shared heap.
///
/// # Safety
/// The type must contain no references, raw pointers or other handles to memory that
/// belongs to a domain, and must be plain data (`Copy`, no destructor).
pub unsafe trait RRefable: Copy + Send + 'static {}

macro_rules! rrefable {
    ($($t:ty),*) => { $(
        // SAFETY: primitive plain data.
        unsafe impl RRefable for $t {}
    )* };
}
rrefable!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char);
// SAFETY: arrays of plain data are plain data.
unsafe impl<T: RRefable, const N: usize> RRefable for [T; N] {}

/// Plain data for which all-zero bytes are a valid value (integers, arrays of them, and
/// structures of those), so it can be made in place on the shared heap.
///
/// # Safety
/// Every field, recursively, must accept the all-zero bit pattern.
pub unsafe trait Zeroable: RRefable {}

macro_rules! zeroable {
    ($($t:ty),*) => { $(
        // SAFETY: zero is a valid value of every primitive integer, bool and char.
        unsafe impl Zeroable for $t {}
    )* };
}
zeroable!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char);
// SAFETY: an array of zero-valid elements is zero-valid.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

#[repr(transparent)]
pub struct RRef<T: RRefable> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: an RRef is a unique owner of plain `Send` data.
unsafe impl<T: RRefable> Send for RRef<T> {}
// SAFETY: shared access only reads plain data.
unsafe impl<T: RRefable> Sync for RRef<T> {}

impl<T: RRefable> RRef<T> {
    /// Moves `value` onto the shared heap, owned by the calling domain.
    ///
    /// Panics (the domain crashes) when the domain's shared-heap quota is used up; use
    /// [`RRef::try_new`] to handle that.
    pub fn new(value: T) -> RRef<T> {
        match Self::try_new(value) {
            Ok(r) => r,
            Err(_) => panic!("shared heap exhausted (this domain's quota or the kernel's heap)"),
        }
    }

    /// Moves `value` onto the shared heap, or gives it back if the domain's quota (or the
    /// kernel's heap) has no room.
    pub fn try_new(value: T) -> Result<RRef<T>, T> {
        let size = core::mem::size_of::<T>().max(1);
        // SAFETY: plain values; the kernel returns null or a fresh block of `size` bytes
        // aligned to `align`, owned by this domain.
        let p = unsafe { (crate::services().rref_alloc)(size, core::mem::align_of::<T>()) } as *mut T;
        let Some(ptr) = NonNull::new(p) else { return Err(value) };
        // SAFETY: the kernel returned a fresh block of the right size and alignment.
        unsafe { ptr.as_ptr().write(value) };
        Ok(RRef { ptr, _owns: PhantomData })
    }

    /// A zero-filled `T` on the shared heap, built in place (a large batch never passes
    /// through the stack), or `None` if the quota has no room.
    pub fn try_new_zeroed() -> Option<RRef<T>>
    where
        T: Zeroable,
    {
        let size = core::mem::size_of::<T>().max(1);
        // SAFETY: as in `try_new`.
        let p = unsafe { (crate::services().rref_alloc)(size, core::mem::align_of::<T>()) } as *mut T;
        let ptr = NonNull::new(p)?;
        // SAFETY: a fresh block of `size` bytes; all-zero bytes are a valid `T` (`Zeroable`).
        unsafe { core::ptr::write_bytes(ptr.as_ptr() as *mut u8, 0, size) };
        Some(RRef { ptr, _owns: PhantomData })
    }

    /// Re-wraps a block that an `RRef<T>` was made from and then forgotten (the hot-swap
    /// state hand-over moves it between domains this way).
    ///
    /// # Safety
    /// `block` must come from `RRef::<T>::new` and be owned by the calling domain, and no
    /// other `RRef` may own it.
    #[doc(hidden)]
    pub unsafe fn from_raw(block: *mut u8) -> RRef<T> {
        RRef {
            ptr: NonNull::new(block as *mut T).expect("a state block"),
            _owns: PhantomData,
        }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr() as *mut u8
    }
}

impl<T: RRefable> Deref for RRef<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the block is live and uniquely owned by this RRef.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: RRefable> DerefMut for RRef<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: RRefable> Drop for RRef<T> {
    fn drop(&mut self) {
        // SAFETY: the block this `RRef` owns; nothing uses it after this. An `RRef` exists
        // only once the services are set (`try_new` used the checked `services()`).
        unsafe { (crate::abi::services_unchecked().rref_free)(self.as_ptr()) };
    }
}

/// The marker traits below are implemented here only: a domain cannot declare its own
/// types cross-domain or replayable.
mod sealed {
    pub trait Sealed {}
}

/// Arguments a shadow proxy can pass again after the callee restarted: plain values can,
/// an `RRef` cannot (it went to the crashed callee and was reclaimed with it).
pub trait Replayable: Sized + sealed::Sealed {
    fn replay(&self) -> Option<Self>;
}

macro_rules! plain_replayable {
    ($($t:ty),*) => { $( impl Replayable for $t { fn replay(&self) -> Option<Self> { Some(*self) } } )* };
}
plain_replayable!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, bool, char);

impl<T: RRefable> Replayable for RRef<T> {
    fn replay(&self) -> Option<Self> {
        None
    }
}

/// Values that may be passed to or returned from a cross-domain call. Sealed: only the
/// plain values and `RRef`s listed here.
///
/// An `RRef` argument moves in the kernel's trampoline (`proxy_call_moving`): as the call
/// enters the callee, the kernel checks that the caller owns the block and records the
/// callee as its owner, in one step; the proxies never touch it. A returned `RRef` takes two
/// steps the kernel records: the callee *gives it back* (to the caller of the call it
/// serves), then the caller *claims* it. The kernel lets a domain claim only a block given
/// back to it, so no domain can take a block by naming its address.
///
/// Only the IDL's generated code may take the two steps: each takes a [`Moving`], which
/// only this crate can make. A domain that could give a block back by hand would keep its
/// `RRef` while the kernel records the block as on its way to the caller; the caller's
/// claim would then leave two owners of one block.
pub trait CrossDomain: sealed::Sealed {
    /// True for an `RRef`: the trampoline moves it (`abi::moves`).
    const MOVES: bool = false;
    #[doc(hidden)]
    fn give_back(&self, _: Moving) {}
    #[doc(hidden)]
    fn claim(&self, _: Moving) {}
}

/// The permission to move a value through a call: made only inside this crate (the
/// generated proxies and adapters), so no domain can call `CrossDomain`'s methods.
#[doc(hidden)]
pub struct Moving(());

impl Moving {
    #[inline(always)]
    pub(crate) const fn new() -> Moving {
        Moving(())
    }
}

macro_rules! plain_cross_domain {
    ($($t:ty),*) => { $(
        impl sealed::Sealed for $t {}
        impl CrossDomain for $t {}
    )* };
}
plain_cross_domain!((), u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, bool, char);

impl<T: RRefable> sealed::Sealed for RRef<T> {}

impl<T: RRefable> CrossDomain for RRef<T> {
    const MOVES: bool = true;

    fn give_back(&self, _: Moving) {
        // SAFETY: the block this `RRef` owns; the kernel checks it. The services are set
        // (this `RRef` exists: see `Drop`).
        let r = unsafe { (crate::abi::services_unchecked().rref_return)(self.as_ptr()) };
        assert!(r == 0, "the kernel refused to return a shared-heap block this domain owns");
    }

    fn claim(&self, _: Moving) {
        // SAFETY: the block the call returned; the kernel checks it was given back to us.
        // The services are set (the call went through them).
        let r = unsafe { (crate::abi::services_unchecked().rref_claim)(self.as_ptr()) };
        // Never touch a block the kernel did not give this domain.
        assert!(r == 0, "received a shared-heap block that was not sent to this domain");
    }
}
