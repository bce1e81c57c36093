//! Hot swap support: how a domain hands its state to its next version.
//!
//! A domain that keeps state across swaps calls [`keep_state`] in its initialisation with
//! a state type declared in `interfaces` (a [`SwapState`]) and two functions. When the
//! kernel swaps the domain, it calls `export` in the old version (which must only copy:
//! if the swap is then refused, the old version keeps serving with its state as it was)
//! and `import` in the new version, before the new version serves its first call. Both
//! versions must name the same state type; the kernel refuses the swap otherwise.

use interfaces::abi::{StateExportFn, StateImportFn};
use interfaces::{services, RRef, SwapState, Zeroable};

extern "C" fn export_trampoline<S: SwapState>(context: usize) -> *mut u8 {
    // SAFETY: `context` is the `fn() -> S` that `keep_state::<S>` registered with this
    // trampoline; function pointers round-trip through usize.
    let export: fn() -> S = unsafe { core::mem::transmute::<usize, fn() -> S>(context) };
    let state = RRef::new(export());
    let block = state.as_ptr();
    // The block now belongs to the kernel's hand-over: it moves it to the new version.
    core::mem::forget(state);
    block
}

extern "C" fn import_trampoline<S: SwapState>(context: usize, block: *mut u8) -> i32 {
    // SAFETY: as in `export_trampoline`, for the `fn(S) -> Result` registered with it.
    let import: fn(S) -> Result<(), &'static str> = unsafe { core::mem::transmute::<usize, fn(S) -> Result<(), &'static str>>(context) };
    // SAFETY: the kernel passes the block the old version's `export_trampoline::<S>` made
    // (the state hashes matched, so it holds an `S`), now owned by this domain.
    let state: RRef<S> = unsafe { RRef::from_raw(block) };
    match import(*state) {
        Ok(()) => 0,
        Err(why) => {
            crate::log::write_str(why);
            -1
        }
    }
}

/// Declares that this domain hands its state of type `S` to its next version.
pub fn keep_state<S: SwapState>(export: fn() -> S, import: fn(S) -> Result<(), &'static str>) -> Result<(), i32> {
    let export_trampoline: StateExportFn = export_trampoline::<S>;
    let import_trampoline: StateImportFn = import_trampoline::<S>;
    // SAFETY: the hash is a constant; each trampoline is paired with the function it expects.
    let r = unsafe {
        (services().state_hooks)(
            &S::HASH,
            core::mem::size_of::<S>(),
            export_trampoline,
            export as usize,
            import_trampoline,
            import as usize,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(r)
    }
}

extern "C" fn export_in_place_trampoline<S: SwapState + Zeroable>(context: usize) -> *mut u8 {
    // SAFETY: `context` is the `fn(&mut S)` that `keep_state_in_place::<S>` registered with
    // this trampoline; function pointers round-trip through usize.
    let export: fn(&mut S) = unsafe { core::mem::transmute::<usize, fn(&mut S)>(context) };
    // Made in place: a large state never passes through the (kernel thread's) stack.
    let Some(mut state) = RRef::<S>::try_new_zeroed() else {
        return core::ptr::null_mut();
    };
    export(&mut state);
    let block = state.as_ptr();
    // The block now belongs to the kernel's hand-over: it moves it to the new version.
    core::mem::forget(state);
    block
}

extern "C" fn import_in_place_trampoline<S: SwapState + Zeroable>(context: usize, block: *mut u8) -> i32 {
    // SAFETY: as in `export_in_place_trampoline`, for the `fn(&S) -> Result` registered with it.
    let import: fn(&S) -> Result<(), &'static str> = unsafe { core::mem::transmute::<usize, fn(&S) -> Result<(), &'static str>>(context) };
    // SAFETY: the kernel passes the block the old version's export trampoline made for the
    // same state type (the hashes matched, so it holds an `S`), now owned by this domain.
    let state: RRef<S> = unsafe { RRef::from_raw(block) };
    match import(&state) {
        Ok(()) => 0,
        Err(why) => {
            crate::log::write_str(why);
            -1
        }
    }
}

/// [`keep_state`] for a state too large for a stack: `export` fills a zeroed `S` made in
/// place on the shared heap, `import` reads it there. Both versions must use this form or
/// [`keep_state`] with the same `S` (the hand-over is the same block either way).
pub fn keep_state_in_place<S: SwapState + Zeroable>(export: fn(&mut S), import: fn(&S) -> Result<(), &'static str>) -> Result<(), i32> {
    let export_trampoline: StateExportFn = export_in_place_trampoline::<S>;
    let import_trampoline: StateImportFn = import_in_place_trampoline::<S>;
    // SAFETY: the hash is a constant; each trampoline is paired with the function it expects.
    let r = unsafe {
        (services().state_hooks)(
            &S::HASH,
            core::mem::size_of::<S>(),
            export_trampoline,
            export as usize,
            import_trampoline,
            import as usize,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(r)
    }
}
