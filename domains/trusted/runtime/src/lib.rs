//! The trusted domain runtime. Every domain depends on it; domain crates themselves are
//! `#![forbid(unsafe_code)]`, so everything unsafe a domain needs is here, small and
//! audited: the entry point (`entry!`), the private heap (`#[global_allocator]`), the
//! panic handler (which reports to the kernel, which unwinds the call), and safe wrappers
//! around the kernel services and the device grants of the domain's signed manifest.
#![no_std]

extern crate alloc;

pub use interfaces;

mod device;
mod heap;
pub mod log;
pub mod swap;

pub use device::{Device, Mmio};

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
    if s.abi_version != interfaces::ABI_VERSION {
        return -1;
    }
    interfaces::set_services(s);
    heap::init(s.heap_base, s.heap_size);
    match init() {
        Ok(()) => 0,
        Err(why) => {
            log::write_str(why);
            -2
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut buf = log::LineBuf::new();
    let _ = core::fmt::write(&mut buf, format_args!("{info}"));
    let text = buf.as_bytes();
    (services().panic)(text.as_ptr(), text.len())
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
    let r = (services().spawn)(trampoline, arg, name.as_ptr(), name.len());
    if r < 0 {
        // SAFETY: the kernel did not take it; reclaim it.
        drop(unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>) });
        return Err(r);
    }
    Ok(())
}

pub fn sleep_ms(ms: u64) {
    (services().sleep_ms)(ms)
}

pub fn yield_now() {
    (services().yield_now)()
}

/// This domain's version, from its signed manifest: (major, minor, patch).
pub fn version() -> (u32, u32, u32) {
    let v = services().version;
    (v[0], v[1], v[2])
}

pub fn uptime_ns() -> u64 {
    (services().uptime_ns)()
}

/// A counter threads can wait on: `wait(seen)` returns once it differs from `seen`.
#[derive(Clone, Copy)]
pub struct Event(u32);

impl Event {
    pub fn new() -> Option<Event> {
        let e = (services().event_new)();
        (e >= 0).then_some(Event(e as u32))
    }
    pub fn wait(&self, seen: u64) -> u64 {
        (services().event_wait)(self.0, seen)
    }
    /// `wait`, for a call that has had no effect yet (nothing changed, nothing held):
    /// a hot swap of this domain may cancel the call here, and the caller's proxy makes
    /// it again on the new version. Use it where a call blocks for input.
    pub fn wait_restartable(&self, seen: u64) -> u64 {
        (services().event_wait_restartable)(self.0, seen)
    }
    pub fn signal(&self) {
        (services().event_signal)(self.0)
    }
}

/// Masks interrupts for a short critical section (domains run at EL1 on one core). The
/// asm is a compiler memory barrier (no `nomem`), so the section's memory accesses stay
/// between the mask and the unmask.
pub(crate) fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let daif: u64;
    // SAFETY: reading DAIF and masking IRQ/FIQ only affects this core's interrupt mask.
    unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #3", out(reg) daif, options(nostack)) };
    let r = f();
    // SAFETY: restores the mask read above.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) daif, options(nostack)) };
    r
}

/// Mutual exclusion for a domain's own data, shared between its threads and the calls it
/// serves: the closure runs with interrupts masked, so keep it short and never block in it.
pub struct Mutex<T> {
    held: core::cell::Cell<bool>,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: access happens only inside `with`, with interrupts masked on the only core, and
// `held` rejects re-entry; so at most one `&mut T` exists at a time.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex {
            held: core::cell::Cell::new(false),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        without_interrupts(|| {
            assert!(!self.held.replace(true), "runtime::Mutex re-entered");
            // SAFETY: see the `Sync` impl.
            let r = f(unsafe { &mut *self.value.get() });
            self.held.set(false);
            r
        })
    }
}
