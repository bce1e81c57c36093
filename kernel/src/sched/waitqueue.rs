//! Wait queues: a thread sleeps until a condition holds; others wake it.

use super::{block_current, current, reschedule, wake, ThreadId};
use crate::arch::cpu::{irq_restore, irq_save};
use crate::sync::IrqLock;
use alloc::collections::VecDeque;

/// Waiters a queue has room for after its first wait.
const WAITERS_ROOM: usize = 16;

pub struct WaitQueue {
    waiters: IrqLock<VecDeque<ThreadId>>,
}

impl WaitQueue {
    pub const fn new() -> Self {
        Self {
            waiters: IrqLock::new("wait queue", VecDeque::new()),
        }
    }

    /// Blocks until `ready` returns `Some`. `ready` runs with IRQs masked, so a wake-up
    /// between the check and the block cannot be lost. It must not block itself.
    pub fn wait_until<T>(&self, mut ready: impl FnMut() -> Option<T>) -> T {
        loop {
            let saved = irq_save();
            if let Some(v) = ready() {
                irq_restore(saved);
                return v;
            }
            if let Some(me) = current() {
                let mut waiters = self.waiters.lock();
                // Grow once, to more than is ever waiting, not step by step later.
                if waiters.capacity() < WAITERS_ROOM {
                    waiters.reserve(WAITERS_ROOM);
                }
                waiters.push_back(me);
                drop(waiters);
                block_current();
            }
            reschedule();
            irq_restore(saved);
        }
    }

    /// Wakes the longest waiter; false if none was waiting.
    #[cfg_attr(not(feature = "selftest"), allow(dead_code))] // used by the selftests
    pub fn wake_one(&self) -> bool {
        loop {
            let Some(id) = self.waiters.lock().pop_front() else { return false };
            if wake(id) {
                return true;
            }
        }
    }

    /// Wakes every waiter; returns how many.
    pub fn wake_all(&self) -> usize {
        let mut n = 0;
        while let Some(id) = self.waiters.lock().pop_front() {
            if wake(id) {
                n += 1;
            }
        }
        n
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}
