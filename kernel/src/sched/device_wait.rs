//! Per thread, the cycles it waited for a device's interrupt (`domain::grants::irq_wait`),
//! for the block benchmark, which leaves them out of what it counts (`bench_block`).

use super::SCHED;

/// Adds `cycles` to the calling thread's time waiting for a device: those of one
/// `irq_wait` (from its start to its return), less the idle cycles among them, which
/// `idle_cycles` counts already.
pub fn count_device_wait(cycles: u64) {
    if let Some(s) = SCHED.lock().as_mut() {
        let cur = s.current;
        if let Some(t) = s.thread(cur) {
            t.device_wait += cycles;
        }
    }
}

/// The calling thread's cycles waiting for a device's interrupt other than idle ones
/// (`count_device_wait`): the block benchmark subtracts them, with `idle_cycles`, from
/// what it measures.
pub fn device_wait_cycles() -> u64 {
    let mut guard = SCHED.lock();
    let Some(s) = guard.as_mut() else { return 0 };
    let cur = s.current;
    s.thread(cur).map_or(0, |t| t.device_wait)
}
