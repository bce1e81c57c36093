//! The trusted domain runtime. Every domain depends on it; domain crates themselves are
//! `#![forbid(unsafe_code)]`, so everything unsafe a domain needs is here, small and
//! audited: the entry point (`entry!`), the private heap (`#[global_allocator]`), the
//! panic handler (which reports to the kernel, which unwinds the call), and safe wrappers
//! around the kernel services and the device grants of the domain's signed manifest.
// Host unit tests (`cargo test -p qvq-runtime`) run against a fake kernel (`host_kernel`).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub use interfaces;

pub mod block_bench;
mod device;
pub mod dma;
mod heap;
pub mod log;
pub mod swap;
pub mod virtqueue;

pub use device::{kept_for_the_runtime, Device, Mmio};

use alloc::boxed::Box;
use interfaces::{services, KernelServices};

/// Declares the domain's initialisation function (`fn() -> Result<(), &'static str>`).
/// The kernel calls it once; it exports the domain's interfaces and starts its threads.
#[macro_export]
macro_rules! entry {
    ($init:path) => {
        #[no_mangle]
        pub extern "C" fn _start(services: &'static $crate::interfaces::KernelServices) -> i32 {
            $crate::start(services, $init)
        }
    };
}

/// Called by the code `entry!` generates. Not for domains to call.
#[doc(hidden)]
pub fn start(s: &'static KernelServices, init: fn() -> Result<(), &'static str>) -> i32 {
    // Refused unless this is the first call, the kernel's: no code can install a table of
    // its own once the domain runs.
    if s.abi_version != interfaces::ABI_VERSION || !interfaces::set_services(s) {
        return -1;
    }
    heap::init(s.heap_base, s.heap_size);
    match init() {
        Ok(()) => 0,
        Err(why) => {
            log::write_str(why);
            -2
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut buf = log::LineBuf::new();
    let _ = core::fmt::write(&mut buf, format_args!("{info}"));
    let text = buf.as_bytes();
    // SAFETY: the text is a live buffer of this length.
    unsafe { (services().panic)(text.as_ptr(), text.len()) }
}

/// Deliberate faults in trusted code, for crash-recovery tests: what a bug in a trusted
/// crate would do. Safe Rust in a domain cannot fault by itself.
pub mod fault_injection {
    /// Reads an address no page table maps: a data abort while this domain runs.
    #[allow(clippy::manual_dangling_ptr)] // not a dangling pointer: a fixed unmapped address
    pub fn read_unmapped() -> u64 {
        // SAFETY: deliberately unsound — the test wants the MMU to fault here.
        unsafe { core::ptr::read_volatile(0x8 as *const u64) }
    }
}

/// Starts a thread of this domain running `f`.
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), i32> {
    extern "C" fn trampoline(arg: usize) {
        // SAFETY: `arg` is the pointer made by `Box::into_raw` below, used once.
        let f = unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>) };
        f();
    }
    let boxed: Box<Box<dyn FnOnce() + Send>> = Box::new(Box::new(f));
    let arg = Box::into_raw(boxed) as usize;
    // SAFETY: `trampoline` takes exactly this `arg`; the name is a live string.
    let r = unsafe { (services().spawn)(trampoline, arg, name.as_ptr(), name.len()) };
    if r < 0 {
        // SAFETY: the kernel did not take it; reclaim it.
        drop(unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>) });
        return Err(r);
    }
    Ok(())
}

pub fn sleep_ms(ms: u64) {
    // SAFETY: a plain value.
    unsafe { (services().sleep_ms)(ms) }
}

pub fn yield_now() {
    // SAFETY: no arguments.
    unsafe { (services().yield_now)() }
}

/// This domain's version, from its signed manifest: (major, minor, patch).
pub fn version() -> (u32, u32, u32) {
    let v = services().version;
    (v[0], v[1], v[2])
}

/// The CPU's cycle counter (under QEMU `-icount shift=0`, guest instructions): for a
/// domain's own measurements (the block driver's direct benchmark).
#[inline(always)]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "aarch64")]
    {
        let v: u64;
        // SAFETY: reads the PMU cycle counter, which the kernel enables for EL1; no memory
        // access, no other effect.
        unsafe { core::arch::asm!("isb", "mrs {}, pmccntr_el0", out(reg) v, options(nostack, nomem)) };
        v
    }
    // Host unit tests: no cycle counter.
    #[cfg(not(target_arch = "aarch64"))]
    0
}

pub fn uptime_ns() -> u64 {
    // SAFETY: no arguments.
    unsafe { (services().uptime_ns)() }
}

/// A counter threads can wait on: `wait(seen)` returns once it differs from `seen`.
#[derive(Clone, Copy)]
pub struct Event(u32);

impl Event {
    /// A new event of this domain; `None` when its quota of events is used up.
    pub fn new() -> Option<Event> {
        // SAFETY: no arguments.
        let e = unsafe { (services().event_new)() };
        (e >= 0).then_some(Event(e as u32))
    }
    pub fn wait(&self, seen: u64) -> u64 {
        // SAFETY: plain values (the kernel checks the event is this domain's).
        unsafe { (services().event_wait)(self.0, seen) }
    }
    /// `wait`, for a call that has had no effect yet (nothing changed, nothing held):
    /// a hot swap of this domain may cancel the call here, and the caller's proxy makes
    /// it again on the new version. Use it where a call blocks for input.
    pub fn wait_restartable(&self, seen: u64) -> u64 {
        // SAFETY: as in `wait`.
        unsafe { (services().event_wait_restartable)(self.0, seen) }
    }
    pub fn signal(&self) {
        // SAFETY: as in `wait`.
        unsafe { (services().event_signal)(self.0) }
    }
}

/// Mutual exclusion for a domain's own data, shared between its threads and the calls it
/// serves. Domain code never masks interrupts: a thread that finds the lock taken yields
/// until it is free, so the tick (and with it the CPU-budget watchdog) always runs, and a
/// closure that loops forever inside a call is ended like any other over-long call.
/// Re-entering `with` on the same thread waits forever: don't.
pub struct Mutex<T> {
    held: core::sync::atomic::AtomicBool,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: the value is reached only inside `with`, between a successful acquire of `held`
// and its release, so at most one `&mut T` exists at a time, on one thread.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex {
            held: core::sync::atomic::AtomicBool::new(false),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        use core::sync::atomic::Ordering;
        let mut tries = 0u32;
        while self.held.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            // Yield first (the holder is usually a thread of the same priority); then sleep,
            // so a holder of lower priority gets the CPU too.
            tries += 1;
            if tries < 16 {
                yield_now();
            } else {
                sleep_ms(1);
            }
        }
        // Released even if `f` never returns normally: a panic ends the domain's call (and
        // a crash reclaims the domain), so nothing waits on a lock of a dead instance.
        struct Release<'a>(&'a core::sync::atomic::AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, core::sync::atomic::Ordering::Release);
            }
        }
        let _release = Release(&self.held);
        // SAFETY: see the `Sync` impl: `held` was acquired above.
        f(unsafe { &mut *self.value.get() })
    }
}

/// Masks interrupts around `f`: for the trusted heap only (bounded work, never domain
/// code). The asm is a compiler memory barrier (no `nomem`), so the section's memory
/// accesses stay between the mask and the unmask.
#[cfg(target_arch = "aarch64")]
pub(crate) fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let daif: u64;
    // SAFETY: reading DAIF and masking IRQ/FIQ only affects this core's interrupt mask.
    unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #3", out(reg) daif, options(nostack)) };
    let r = f();
    // SAFETY: restores the mask read above.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) daif, options(nostack)) };
    r
}

/// Host unit tests have no interrupts to mask (and no domain heap: `heap` is not the
/// global allocator there).
#[cfg(not(target_arch = "aarch64"))]
pub(crate) fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod host_kernel;
