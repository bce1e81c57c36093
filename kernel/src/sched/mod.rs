//! Kernel threads and the scheduler: preemptive, priority round-robin on the timer tick.
//!
//! Every thread's state is a `TrapFrame`. A switch happens only on the way out of an
//! exception: the running thread's frame is saved into its `Thread` and the next thread's
//! frame is copied onto the exception stack before `eret`. Threads give up the CPU with
//! `svc` (yield, block, sleep, exit) or are preempted by the tick.

pub mod call_context;
#[cfg(feature = "selftest")]
mod device_wait;
#[cfg(feature = "selftest")]
mod settle;
mod waitqueue;
pub use call_context::SavedContext;
#[cfg(feature = "selftest")]
pub use device_wait::{count_device_wait, device_wait_cycles};
#[cfg(feature = "selftest")]
pub use settle::settled;
pub use waitqueue::WaitQueue;

use crate::arch::exception::{TrapFrame, SPSR_EL1T_IRQS_ON};
use crate::memory::Stack;
use crate::sync::IrqLock;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A thread's identity: slot index plus a generation, so a stale id never names a new thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ThreadId {
    index: u16,
    generation: u16,
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index, self.generation)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Priority {
    Idle = 0,
    #[cfg_attr(not(feature = "selftest"), allow(dead_code))] // used by the selftests
    Low = 1,
    Normal = 2,
    High = 3,
}
const LEVELS: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Ready,
    Running,
    Blocked,
    Sleeping,
    Dead,
}

struct Thread {
    id: ThreadId,
    name: String,
    priority: Priority,
    state: State,
    context: TrapFrame,
    stack: Stack,
    /// Counter value a sleeping thread waits for.
    wake_at: u64,
    /// Its call context while switched out (`call_context`).
    domain: SavedContext,
    /// Cycles it waited for a device's interrupt, less idle ones (`device_wait`).
    #[cfg(feature = "selftest")]
    device_wait: u64,
}

struct Slot {
    generation: u16,
    thread: Option<Box<Thread>>,
}

/// Threads each ready queue holds before it has to grow.
const READY_QUEUE_ROOM: usize = 64;

/// Ticks a thread runs before others of its priority get a turn.
const SLICE_TICKS: u32 = 2;
/// Usable stack pages per kernel thread (one more is the guard).
pub const STACK_PAGES: usize = 4;

struct Scheduler {
    slots: Vec<Slot>,
    ready: [VecDeque<u16>; LEVELS],
    current: u16,
    slice_left: u32,
    need_resched: bool,
    switches: u64,
    preemptions: u64,
}

static SCHED: IrqLock<Option<Scheduler>> = IrqLock::new("scheduler", None);

const SYS_RESCHEDULE: u64 = 0;
const SYS_EXIT: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    NotInitialised,
    NoMemory,
    TooManyThreads,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpawnError::NotInitialised => "scheduler not initialised",
            SpawnError::NoMemory => "no memory for the thread's stack",
            SpawnError::TooManyThreads => "thread table full",
        })
    }
}

impl Scheduler {
    fn thread(&mut self, index: u16) -> Option<&mut Thread> {
        self.slots.get_mut(index as usize)?.thread.as_deref_mut()
    }

    fn make_ready(&mut self, index: u16) {
        if let Some(t) = self.thread(index) {
            t.state = State::Ready;
            let (p, cur_p) = (t.priority, self.current_priority());
            self.ready[p as usize].push_back(index);
            if p > cur_p {
                self.need_resched = true;
            }
        }
    }

    fn current_priority(&self) -> Priority {
        self.slots
            .get(self.current as usize)
            .and_then(|s| s.thread.as_ref())
            .map_or(Priority::Idle, |t| t.priority)
    }

    fn pick(&mut self) -> Option<u16> {
        for level in (0..LEVELS).rev() {
            while let Some(i) = self.ready[level].pop_front() {
                if self.thread(i).is_some_and(|t| t.state == State::Ready) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Saves `frame` into the current thread and loads the next thread's frame into it.
    fn switch(&mut self, frame: &mut TrapFrame) {
        let cur = self.current;
        let mut reap = false;
        if let Some(t) = self.thread(cur) {
            t.context = *frame;
            t.domain = call_context::save();
            match t.state {
                State::Running => {
                    t.state = State::Ready;
                    let p = t.priority as usize;
                    self.ready[p].push_back(cur);
                }
                State::Dead => reap = true,
                _ => {}
            }
        }
        if reap {
            // We are on the exception stack, so the dead thread's stack can go now.
            self.slots[cur as usize].thread = None;
        }
        let next = self.pick().expect("no runnable thread: the idle thread is missing");
        let t = self.thread(next).expect("picked thread exists");
        t.state = State::Running;
        *frame = t.context;
        call_context::restore(t.domain);
        if next != cur {
            self.switches += 1;
        }
        self.current = next;
        self.slice_left = SLICE_TICKS;
        self.need_resched = false;
    }
}

/// Creates the scheduler and its idle thread.
pub fn init() {
    *SCHED.lock() = Some(Scheduler {
        slots: Vec::new(),
        // Room for many threads up front: the queues then never grow while the system
        // runs, so memory accounting (the crash-loop test) sees no late growth.
        ready: core::array::from_fn(|_| VecDeque::with_capacity(READY_QUEUE_ROOM)),
        current: u16::MAX,
        slice_left: SLICE_TICKS,
        need_resched: false,
        switches: 0,
        preemptions: 0,
    });
    spawn("idle", Priority::Idle, idle).expect("cannot create the idle thread");
}

/// Cycles the idle thread spent waiting for an interrupt (under `-icount`, the virtual
/// time QEMU skipped): the benchmarks subtract it from what they measure.
static IDLE_CYCLES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

#[cfg_attr(not(feature = "selftest"), allow(dead_code))] // read by the benchmarks
pub fn idle_cycles() -> u64 {
    IDLE_CYCLES.load(core::sync::atomic::Ordering::Relaxed)
}

fn idle() {
    loop {
        if crate::time::ticking() {
            // Masked, so the wake-up's handler runs after the count, not inside it (a
            // pending interrupt still ends the wait).
            let s = crate::arch::cpu::irq_save();
            let t0 = crate::arch::pmu::cycles();
            crate::arch::cpu::wait_for_interrupt();
            IDLE_CYCLES.fetch_add(crate::arch::pmu::cycles() - t0, core::sync::atomic::Ordering::Relaxed);
            crate::arch::cpu::irq_restore(s);
        } else {
            let s = crate::arch::cpu::irq_save();
            crate::time::poll();
            crate::arch::cpu::irq_restore(s);
            reschedule();
        }
    }
}

extern "C" fn thread_start(arg: usize) -> ! {
    // SAFETY: `arg` is the pointer `spawn` made with `Box::into_raw` for this thread alone.
    let f = unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>) };
    f();
    exit()
}

/// Starts a kernel thread running `f`.
pub fn spawn<F: FnOnce() + Send + 'static>(name: &str, priority: Priority, f: F) -> Result<ThreadId, SpawnError> {
    spawn_with_stack(name, priority, STACK_PAGES, f)
}

/// Starts a kernel thread running `f` on a stack of `stack_pages` pages (a thread whose
/// calls nest through domains: each callee is guaranteed `abi::CALL_STACK` of it).
pub fn spawn_with_stack<F: FnOnce() + Send + 'static>(name: &str, priority: Priority, stack_pages: usize, f: F) -> Result<ThreadId, SpawnError> {
    let stack = Stack::new(stack_pages).ok_or(SpawnError::NoMemory)?;
    let stack_guard_end = stack.guard().end();
    let entry: Box<Box<dyn FnOnce() + Send>> = Box::new(Box::new(f));
    let mut context = TrapFrame::default();
    context.x[0] = Box::into_raw(entry) as u64;
    context.elr = thread_start as *const () as u64;
    context.sp = stack.top() as u64;
    context.spsr = SPSR_EL1T_IRQS_ON;

    let mut guard = SCHED.lock();
    let s = guard.as_mut().ok_or(SpawnError::NotInitialised)?;
    let index = match s.slots.iter().position(|slot| slot.thread.is_none()) {
        Some(i) => i,
        None if s.slots.len() < u16::MAX as usize => {
            s.slots.push(Slot { generation: 0, thread: None });
            s.slots.len() - 1
        }
        None => return Err(SpawnError::TooManyThreads),
    };
    let slot = &mut s.slots[index];
    slot.generation = slot.generation.wrapping_add(1);
    let id = ThreadId {
        index: index as u16,
        generation: slot.generation,
    };
    slot.thread = Some(Box::new(Thread {
        id,
        name: String::from(name),
        priority,
        state: State::Blocked,
        context,
        stack,
        wake_at: 0,
        domain: SavedContext {
            stack_limit: stack_guard_end,
            ..SavedContext::default()
        },
        #[cfg(feature = "selftest")]
        device_wait: 0,
    }));
    s.make_ready(index as u16);
    Ok(id)
}

/// Leaves boot code and runs the highest-priority thread. Interrupts come on with it.
pub fn start() -> ! {
    let frame = {
        let mut guard = SCHED.lock();
        let s = guard.as_mut().expect("scheduler not initialised");
        let next = s.pick().expect("no thread to start");
        s.current = next;
        let t = s.thread(next).expect("picked thread exists");
        t.state = State::Running;
        call_context::restore(t.domain);
        Box::new(t.context)
    };
    crate::arch::exception::enter_first_thread(&frame)
}

fn svc(op: u64) {
    // SAFETY: `svc` enters the kernel's own sync handler (`syscall`), which saves and later
    // restores every register of this thread; memory may change meanwhile (not `nomem`).
    unsafe { core::arch::asm!("svc #0", inout("x0") op => _, options(nostack)) };
}

/// Lets other ready threads of the same or higher priority run.
pub fn reschedule() {
    svc(SYS_RESCHEDULE);
}

pub fn yield_now() {
    reschedule();
}

/// Ends the calling thread.
pub fn exit() -> ! {
    svc(SYS_EXIT);
    unreachable!("a dead thread was resumed")
}

/// Marks the calling thread blocked; it stops running at its next `reschedule`.
pub fn block_current() {
    if let Some(s) = SCHED.lock().as_mut() {
        let cur = s.current;
        if let Some(t) = s.thread(cur) {
            t.state = State::Blocked;
        }
    }
    call_context::thread_waits();
}

/// Sleeps for at least `ms` milliseconds; wakes on the first tick after that.
pub fn sleep_ms(ms: u64) {
    let deadline = crate::arch::timer::counter().saturating_add(crate::time::ms_to_counter(ms));
    if let Some(s) = SCHED.lock().as_mut() {
        let cur = s.current;
        if let Some(t) = s.thread(cur) {
            t.state = State::Sleeping;
            call_context::thread_waits();
            t.wake_at = deadline;
        }
    }
    reschedule();
}

/// Changes the calling thread's priority (and lets a now-higher thread run).
pub fn set_priority(p: Priority) {
    if let Some(s) = SCHED.lock().as_mut() {
        let cur = s.current;
        if let Some(t) = s.thread(cur) {
            t.priority = p;
        }
        s.need_resched = true;
    }
    reschedule();
}

/// Makes a blocked or sleeping thread ready. False if it is gone or was not waiting.
pub fn wake(id: ThreadId) -> bool {
    let mut guard = SCHED.lock();
    let Some(s) = guard.as_mut() else { return false };
    let Some(t) = s.thread(id.index) else { return false };
    if t.id != id || !matches!(t.state, State::Blocked | State::Sleeping) {
        return false;
    }
    s.make_ready(id.index);
    true
}

/// The calling thread.
pub fn current() -> Option<ThreadId> {
    let mut guard = SCHED.lock();
    let s = guard.as_mut()?;
    let cur = s.current;
    s.thread(cur).map(|t| t.id)
}

/// The running thread's stack, below its guard page to its top (where its locals live).
pub fn current_stack() -> Option<crate::memory::Region> {
    let mut guard = SCHED.lock();
    let s = guard.as_mut()?;
    let cur = s.current;
    let t = s.thread(cur)?;
    let low = t.stack.guard().end();
    Some(crate::memory::Region {
        base: low,
        size: t.stack.top() - low,
    })
}

/// From the tick interrupt: wakes sleepers, ends time slices.
pub fn tick() {
    let now = crate::arch::timer::counter();
    let mut guard = SCHED.lock();
    let Some(s) = guard.as_mut() else { return };
    for i in 0..s.slots.len() as u16 {
        if s.thread(i).is_some_and(|t| t.state == State::Sleeping && t.wake_at <= now) {
            s.make_ready(i);
        }
    }
    s.slice_left = s.slice_left.saturating_sub(1);
    if s.slice_left == 0 {
        s.need_resched = true;
    }
}

/// On the way out of an exception taken from a thread: switch if the tick or a wake-up
/// asked for it.
pub fn preempt_if_needed(frame: &mut TrapFrame) {
    let mut guard = SCHED.lock();
    let Some(s) = guard.as_mut() else { return };
    if s.need_resched {
        let cur = s.current;
        let was_running = s.thread(cur).is_some_and(|t| t.state == State::Running);
        s.switch(frame);
        if was_running && s.current != cur {
            s.preemptions += 1;
        }
    }
}

/// The `svc` handler.
pub fn syscall(frame: &mut TrapFrame) {
    let mut guard = SCHED.lock();
    let Some(s) = guard.as_mut() else { return };
    match frame.x[0] {
        SYS_RESCHEDULE => s.switch(frame),
        SYS_EXIT => {
            let cur = s.current;
            if let Some(t) = s.thread(cur) {
                t.state = State::Dead;
            }
            s.switch(frame);
        }
        other => {
            drop(guard);
            crate::warn!("sched: unknown kernel call {other}");
            frame.x[0] = u64::MAX;
        }
    }
}

/// Counters for tests and the monitor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub threads: usize,
    pub switches: u64,
    pub preemptions: u64,
}

pub fn stats() -> Stats {
    let guard = SCHED.lock();
    guard.as_ref().map_or(Stats::default(), |s| Stats {
        threads: s.slots.iter().filter(|x| x.thread.is_some()).count(),
        switches: s.switches,
        preemptions: s.preemptions,
    })
}

/// One line per thread: id, priority, state, name.
pub fn for_each_thread(mut f: impl FnMut(ThreadId, Priority, State, &str)) {
    let guard = SCHED.lock();
    if let Some(s) = guard.as_ref() {
        for t in s.slots.iter().filter_map(|x| x.thread.as_deref()) {
            f(t.id, t.priority, t.state, &t.name);
        }
    }
}

/// How many threads other than the caller satisfy `f` on their saved domain context and
/// the PC they resume at.
pub fn count_other_threads(f: impl Fn(&SavedContext, u64) -> bool) -> usize {
    let guard = SCHED.lock();
    let Some(s) = guard.as_ref() else { return 0 };
    s.slots
        .iter()
        .enumerate()
        .filter_map(|(i, x)| x.thread.as_deref().filter(|_| i as u16 != s.current))
        .filter(|t| t.state != State::Dead && f(&t.domain, t.context.elr))
        .count()
}

/// Who is running, for fault reports.
pub enum Description {
    Thread { name: String, id: ThreadId },
    Unknown,
    BootOrHandler,
}

impl Description {
    pub fn boot_or_handler() -> Self {
        Description::BootOrHandler
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Description::Thread { name, id } => write!(f, "thread \"{name}\" ({id})"),
            Description::Unknown => write!(f, "an unknown thread"),
            Description::BootOrHandler => write!(f, "kernel boot code or an exception handler"),
        }
    }
}

/// Describes the running thread without blocking (the lock may be held by the faulting code).
pub fn describe_current() -> Description {
    let Some(mut guard) = SCHED.try_lock() else { return Description::Unknown };
    let Some(s) = guard.as_mut() else { return Description::BootOrHandler };
    let cur = s.current;
    match s.thread(cur) {
        Some(t) => Description::Thread {
            name: t.name.clone(),
            id: t.id,
        },
        None => Description::BootOrHandler,
    }
}

/// The thread whose stack guard page holds `addr`.
pub fn guard_page_owner(addr: usize) -> Option<String> {
    let guard = SCHED.try_lock()?;
    let s = guard.as_ref()?;
    s.slots
        .iter()
        .filter_map(|x| x.thread.as_deref())
        .find(|t| t.stack.guard().contains(&crate::memory::Region { base: addr, size: 1 }))
        .map(|t| alloc::format!("thread \"{}\" ({})", t.name, t.id))
}
