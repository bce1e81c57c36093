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
    pub fn new(value: T) -> RRef<T> {
        let size = core::mem::size_of::<T>().max(1);
        let p = (crate::services().rref_alloc)(size, core::mem::align_of::<T>()) as *mut T;
        let ptr = NonNull::new(p).expect("shared heap exhausted");
        // SAFETY: the kernel returned a fresh block of the right size and alignment.
        unsafe { ptr.as_ptr().write(value) };
        RRef { ptr, _owns: PhantomData }
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
        (crate::services().rref_free)(self.as_ptr());
    }
}

/// Arguments a shadow proxy can pass again after the callee restarted: plain values can,
/// an `RRef` cannot (it went to the crashed callee and was reclaimed with it).
pub trait Replayable: Sized {
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

/// Values that may be passed to or returned from a cross-domain call. `claim` runs in the
/// receiving domain and records it as the new owner of anything on the shared heap.
pub trait CrossDomain {
    fn claim(&self) {}
}

macro_rules! plain_cross_domain {
    ($($t:ty),*) => { $( impl CrossDomain for $t {} )* };
}
plain_cross_domain!((), u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, bool, char);

impl<T: RRefable> CrossDomain for RRef<T> {
    fn claim(&self) {
        (crate::services().rref_claim)(self.as_ptr());
    }
}
