//! The hot swap's window (step 2 of swap.rs), measured in PMU cycles: pause the old
//! version's slots (new calls park at the gate), cancel its calls that wait for input, wait
//! (bounded) for the calls in flight to return, mask its interrupts, hand its state over,
//! route the interrupts to the new version, commit (re-point the slots), resume. No log
//! line and no allocation-heavy work inside. On error the old version serves on as before.

use super::continuation::{call_into, context_in_call_to, EntryKind};
use super::grants::{grant_irqs, route_irq, set_masked};
use super::instance::StateHooks;
use super::registry::{is_dead, registry, State};
use super::swap::set_cancelling;
use super::swap_refusal::DRAIN_LIMIT_MS;
use super::{console, events, proxy, rref, DomainId, SwapRefusal};

pub struct Window {
    pub instructions: u64,
    pub drained: usize,
    pub state_bytes: usize,
}

struct StateCall {
    hooks: StateHooks,
    block: *mut u8,
    result: i32,
}

unsafe extern "C" fn invoke_export(data: *mut u8, _: *const (), _: *const ()) {
    // SAFETY: `data` is the `StateCall` in `hand_over`; the hook was registered by the old
    // version's runtime (`runtime::swap::keep_state`).
    let call = unsafe { &mut *(data as *mut StateCall) };
    call.block = (call.hooks.export)(call.hooks.export_context);
}

unsafe extern "C" fn invoke_import(data: *mut u8, _: *const (), _: *const ()) {
    // SAFETY: as in `invoke_export`, for the new version's hook.
    let call = unsafe { &mut *(data as *mut StateCall) };
    call.result = (call.hooks.import)(call.hooks.import_context, call.block);
}

/// What a swap hands from the old version to the new one, decided before the window.
#[derive(Clone, Copy)]
pub enum Handover {
    /// Neither version keeps state.
    Nothing,
    /// The old version's state, through its hooks, into the new one's (the same type).
    State { old: StateHooks, new: StateHooks },
    /// The operator asked for a fresh start: neither hook is called, whatever they keep.
    Fresh,
}

/// The old version's state, moved into the new one. Returns the state's size.
fn hand_over(old: DomainId, new: DomainId, handover: Handover) -> Result<usize, SwapRefusal> {
    let Handover::State { old: export, new: import } = handover else {
        return Ok(0);
    };
    let mut call = StateCall {
        hooks: export,
        block: core::ptr::null_mut(),
        result: 0,
    };
    if call_into(
        old,
        EntryKind::Kernel,
        invoke_export,
        &mut call as *mut StateCall as *mut u8,
        core::ptr::null(),
        core::ptr::null(),
    ) != 0
    {
        return Err(SwapRefusal::ExportCrashed);
    }
    // Only the old version's own block, of the size its state type has.
    let size = export.size;
    if !rref::hand_over(old, new, call.block, size) {
        return Err(SwapRefusal::StateNotShared);
    }
    call.hooks = import;
    if call_into(
        new,
        EntryKind::Kernel,
        invoke_import,
        &mut call as *mut StateCall as *mut u8,
        core::ptr::null(),
        core::ptr::null(),
    ) != 0
    {
        return Err(SwapRefusal::ImportCrashed);
    }
    if call.result != 0 {
        return Err(SwapRefusal::StateRefused(call.result));
    }
    Ok(size)
}

/// Waits until no call is in flight into `old`; returns the most seen at once, or the
/// refusal at the drain limit.
fn drain(old: DomainId) -> Result<usize, SwapRefusal> {
    let started = crate::time::uptime_ns();
    let (mut drained, mut polls) = (0, 0);
    loop {
        let inside = crate::sched::count_other_threads(|c, _| context_in_call_to(c, old));
        if inside == 0 {
            return Ok(drained);
        }
        drained = drained.max(inside);
        if crate::time::uptime_ns() - started > DRAIN_LIMIT_MS * 1_000_000 {
            return Err(SwapRefusal::DrainTimeout(inside));
        }
        // Let the callers finish: first by yielding (a cancelled caller needs one turn to
        // unwind), then, for a slower call, by sleeping a tick at a time.
        polls += 1;
        if polls < 100 {
            crate::sched::yield_now();
        } else {
            crate::sched::sleep_ms(1);
        }
    }
}

/// Step 2 of a swap from `old` (whose state hooks the preparation found: `old_hooks`) to
/// the prepared `new`.
/// With `hold_callers`, the new version's callers stay paused after the commit: the swap
/// releases them itself once the old version is retired (a device both versions hold).
pub fn run_window(old: DomainId, new: DomainId, old_hooks: Option<StateHooks>, handover: Handover, hold_callers: bool) -> Result<Window, SwapRefusal> {
    let old_irqs = grant_irqs(old);
    let new_irqs = grant_irqs(new);
    let w0 = crate::arch::pmu::cycles();
    proxy::pause_callee(old, crate::sched::current());
    set_cancelling(old, true);
    events::wake_waiters(Some(old));
    let abort = |why: SwapRefusal| {
        set_masked(&old_irqs, false);
        set_cancelling(old, false);
        proxy::resume_callee(old, !is_dead(old));
        Err(why)
    };
    // Drain: every call in flight into the old version returns (or is cancelled and parks).
    // A thread caught between the trampoline's slot check and its dispatch starts its call
    // over when it resumes (`unwind::before_resume`), so it finds the slot paused.
    let drained = match drain(old) {
        Ok(n) => n,
        Err(why) => return abort(why),
    };
    // The old version may have crashed (and restarted, its hooks elsewhere) since the
    // preparation looked at it: hand over only from the instance that serves now.
    let serving_hooks = {
        let r = registry();
        r.get(old)
            .filter(|d| d.state() == State::Running && !is_dead(old))
            .map(|d| d.instance().and_then(|i| i.state_hooks))
    };
    let serving = match serving_hooks {
        Some(h) if h.map(|x| x.hash) == old_hooks.map(|x| x.hash) => h,
        Some(_) => return abort(SwapRefusal::StateTypeChanged),
        None => return abort(SwapRefusal::CrashedMeanwhile),
    };
    // The export goes through the instance that serves now.
    let handover = match (handover, serving) {
        (Handover::State { new, .. }, Some(old)) => Handover::State { old, new },
        (plan, _) => plan,
    };
    set_masked(&old_irqs, true);
    let state_bytes = match hand_over(old, new, handover) {
        Ok(n) => n,
        Err(why) => return abort(why),
    };
    for (index, n) in &new_irqs {
        if let Err(e) = route_irq(new, *index, *n, true) {
            for (k, m) in &old_irqs {
                let _ = route_irq(old, *k, *m, true);
            }
            return abort(SwapRefusal::RouteIrq(*n, e));
        }
    }
    // Commit: from here on the new version serves.
    registry().commit_swap(old, new);
    console::callee_replaced(old, new);
    set_cancelling(old, false);
    if !hold_callers {
        proxy::resume_callee(new, true);
    }
    Ok(Window {
        instructions: crate::arch::pmu::cycles() - w0,
        drained,
        state_bytes,
    })
}
