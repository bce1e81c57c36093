//! The domain's private heap: the region the kernel reserved for it (the signed
//! manifest's `heap_limit`), managed by `linked_list_allocator`. When it is used up,
//! allocation reports a crash to the kernel, which unwinds the call and reclaims the heap.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use linked_list_allocator::Heap;

struct DomainHeap(UnsafeCell<Heap>);

// SAFETY: every access happens inside `without_interrupts` on the only core.
unsafe impl Sync for DomainHeap {}

#[cfg_attr(not(test), global_allocator)]
static HEAP: DomainHeap = DomainHeap(UnsafeCell::new(Heap::empty()));

pub(crate) fn init(base: usize, size: usize) {
    crate::without_interrupts(|| {
        // SAFETY: the kernel gave this domain `[base, base+size)`, mapped RW and unused;
        // `init` runs once, before any allocation.
        unsafe { (*HEAP.0.get()).init(base as *mut u8, size) }
    });
}

// SAFETY: blocks come from the one `Heap`, accessed with interrupts masked.
unsafe impl GlobalAlloc for DomainHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = crate::without_interrupts(|| {
            // SAFETY: exclusive access (interrupts masked, one core).
            let heap = unsafe { &mut *self.0.get() };
            heap.allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr())
        });
        if p.is_null() {
            // The manifest's limit is reached: that is a crash of this domain.
            let mut b = crate::log::LineBuf::new();
            let _ = core::fmt::write(&mut b, format_args!("private heap exhausted: a {}-byte allocation failed", layout.size()));
            let msg = b.as_bytes();
            // SAFETY: a live buffer of this length.
            unsafe { (interfaces::services().panic)(msg.as_ptr(), msg.len()) };
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        crate::without_interrupts(|| {
            if let Some(p) = NonNull::new(ptr) {
                // SAFETY: exclusive access; `ptr` came from `alloc` with `layout`.
                unsafe { (*self.0.get()).deallocate(p, layout) }
            }
        })
    }
}
