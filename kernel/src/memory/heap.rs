//! The kernel heap for kernel objects (`linked_list_allocator` behind the kernel's lock).

use crate::sync::IrqLock;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;

pub struct KernelHeap(IrqLock<Heap>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqLock::new("kernel heap", Heap::empty()));

/// Hands `[base, base+size)` to the heap. Called once.
///
/// # Safety
/// The range must be mapped RW, unused by anything else, and stay so forever.
pub unsafe fn init(base: usize, size: usize) {
    // SAFETY: forwarded to the caller.
    unsafe { HEAP.0.lock().init(base as *mut u8, size) };
}

/// (used, total) bytes.
pub fn usage() -> (usize, usize) {
    let h = HEAP.0.lock();
    (h.used(), h.size())
}

// SAFETY: allocation and deallocation go through the locked `Heap`, which hands out
// disjoint blocks of the region given in `init`.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.lock().allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this `layout` (GlobalAlloc contract).
            unsafe { self.0.lock().deallocate(p, layout) };
        }
    }
}
