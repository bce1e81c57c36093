//! The kernel's one lock type.
//!
//! QvQ runs on one core (the others are parked at boot), so mutual exclusion only has to
//! keep interrupt handlers out: a lock masks IRQs. It uses no exclusive load/store, which
//! matters on real Raspberry Pi hardware, where those can hang before the MMU and caches
//! are on. Taking a lock that is already held (a handler re-entering, or recursion) is a
//! kernel bug and panics with the lock's name instead of deadlocking.

use crate::arch::cpu::{irq_restore, irq_save, IrqState};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

pub struct IrqLock<T> {
    name: &'static str,
    held: UnsafeCell<bool>,
    /// Where the current holder took it (for the re-entry panic message).
    taken_at: UnsafeCell<Option<&'static core::panic::Location<'static>>>,
    value: UnsafeCell<T>,
}

// SAFETY: on a single core with IRQs masked, at most one context is inside the lock at a
// time (`held` catches re-entry), so sharing the lock across contexts is sound for Send data.
unsafe impl<T: Send> Sync for IrqLock<T> {}

impl<T> IrqLock<T> {
    pub const fn new(name: &'static str, value: T) -> Self {
        Self {
            name,
            held: UnsafeCell::new(false),
            taken_at: UnsafeCell::new(None),
            value: UnsafeCell::new(value),
        }
    }

    #[track_caller]
    pub fn lock(&self) -> IrqGuard<'_, T> {
        let saved = irq_save();
        // SAFETY: IRQs are masked and the core is the only one running, so nothing else
        // touches `held` concurrently.
        let held = unsafe { &mut *self.held.get() };
        if *held {
            // SAFETY: as above.
            let at = unsafe { *self.taken_at.get() };
            irq_restore(saved);
            match at {
                Some(at) => panic!("lock `{}` taken while already held (taken at {at})", self.name),
                None => panic!("lock `{}` taken while already held", self.name),
            }
        }
        *held = true;
        // SAFETY: as above; we hold the lock now.
        unsafe { *self.taken_at.get() = Some(core::panic::Location::caller()) };
        IrqGuard { lock: self, saved }
    }

    /// `lock` for hot paths of a few instructions: the same exclusion and re-entry check,
    /// without recording where it was taken (a re-entry panic then names no site).
    #[inline(always)]
    pub fn lock_quick(&self) -> IrqGuard<'_, T> {
        let saved = irq_save();
        // SAFETY: as in `lock`.
        let held = unsafe { &mut *self.held.get() };
        if *held {
            irq_restore(saved);
            panic!("lock `{}` taken while already held", self.name);
        }
        *held = true;
        // SAFETY: as above; we hold the lock now.
        unsafe { *self.taken_at.get() = None };
        IrqGuard { lock: self, saved }
    }

    /// Like `lock`, but `None` instead of a panic when the lock is held (for fault paths).
    pub fn try_lock(&self) -> Option<IrqGuard<'_, T>> {
        let saved = irq_save();
        // SAFETY: as in `lock`.
        let held = unsafe { &mut *self.held.get() };
        if *held {
            irq_restore(saved);
            return None;
        }
        *held = true;
        Some(IrqGuard { lock: self, saved })
    }

    /// Marks the lock free. Only for the fatal-fault path, which never returns to the holder.
    pub fn force_unlock(&self) {
        // SAFETY: called with IRQs masked on the way to power-off; the holder never resumes.
        unsafe { *self.held.get() = false };
    }
}

pub struct IrqGuard<'a, T> {
    lock: &'a IrqLock<T>,
    saved: IrqState,
}

impl<T> Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access (see `IrqLock`).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive access (see `IrqLock`).
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: as in `IrqLock::lock`; we still hold it with IRQs masked.
        unsafe { *self.lock.held.get() = false };
        irq_restore(self.saved);
    }
}
