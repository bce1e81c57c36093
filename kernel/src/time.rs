//! Time: a monotonic clock from the generic counter, and the periodic tick.

use crate::arch::timer;
use crate::sync::IrqLock;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Scheduler ticks per second.
pub const TICK_HZ: u64 = 100;

// Plain loads and stores only (no atomic read-modify-write): updated from the tick
// interrupt with IRQs masked on the only running core.
static PERIOD: AtomicU64 = AtomicU64::new(0);
static NEXT: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);
static TICKING: AtomicBool = AtomicBool::new(false);

/// Sets the counter frequency (Hz). Until then timestamps read 0.
pub fn init(frequency: u64) {
    timer::set_frequency(frequency);
    PERIOD.store(frequency / TICK_HZ, Ordering::Relaxed);
}

pub fn frequency() -> u64 {
    timer::frequency()
}

/// Nanoseconds since the counter started (power-on or QEMU start).
pub fn uptime_ns() -> u64 {
    timer::uptime_ns()
}

/// Counter ticks for a duration in milliseconds.
/// Counter ticks for a duration in milliseconds (saturating: a domain may ask for any `ms`).
pub fn ms_to_counter(ms: u64) -> u64 {
    ((frequency() as u128 * ms as u128) / 1000).min(u64::MAX as u128) as u64
}

/// Scheduler ticks so far.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// True once the tick interrupt runs; otherwise the idle thread polls [`poll`].
pub fn ticking() -> bool {
    TICKING.load(Ordering::Relaxed)
}

/// What runs on every tick, in order (set once at boot by `on_tick`): the layers above
/// (the scheduler, the domains' watchdog) hook in here, so time never names them.
static TICK_HOOKS: IrqLock<&'static [fn()]> = IrqLock::new("tick hooks", &[]);

/// Makes `hooks` run, in order, on every tick.
pub fn on_tick(hooks: &'static [fn()]) {
    *TICK_HOOKS.lock() = hooks;
}

fn advance() {
    TICKS.store(TICKS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    let hooks = *TICK_HOOKS.lock();
    for hook in hooks {
        hook();
    }
}

fn on_timer_interrupt(_irq: crate::irq::IrqNumber, _ctx: usize) {
    let period = PERIOD.load(Ordering::Relaxed);
    let now = timer::counter();
    let mut next = NEXT.load(Ordering::Relaxed) + period;
    if next <= now {
        next = now + period; // we fell behind (e.g. a debugger stop): don't replay ticks
    }
    NEXT.store(next, Ordering::Relaxed);
    timer::arm_at(next);
    advance();
}

/// Starts the periodic tick on timer interrupt `irq`.
pub fn start_tick(irq: crate::irq::IrqNumber) -> Result<(), crate::irq::IrqError> {
    let next = timer::counter() + PERIOD.load(Ordering::Relaxed);
    NEXT.store(next, Ordering::Relaxed);
    crate::irq::register(
        irq,
        crate::irq::Handler {
            name: "timer",
            func: on_timer_interrupt,
            context: 0,
            owner: 0,
            handover: false,
        },
    )?;
    timer::arm_at(next);
    TICKING.store(true, Ordering::Relaxed);
    Ok(())
}

/// Without a tick interrupt: advance the tick from the counter (called by the idle thread
/// with IRQs masked).
pub fn poll() {
    let period = PERIOD.load(Ordering::Relaxed);
    if period == 0 {
        return;
    }
    let now = timer::counter();
    if NEXT.load(Ordering::Relaxed) == 0 {
        NEXT.store(now + period, Ordering::Relaxed);
    }
    while NEXT.load(Ordering::Relaxed) <= now {
        NEXT.store(NEXT.load(Ordering::Relaxed) + period, Ordering::Relaxed);
        advance();
    }
}
