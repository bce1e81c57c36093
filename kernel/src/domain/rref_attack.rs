//! The shared heap under forged addresses (selftest `rref-forgery`): the kernel calls the
//! `rref_*` services and the moving trampoline of two domains *as those domains*, with the
//! addresses a hostile domain could make up (a safe domain cannot pass a raw address; a
//! domain whose trusted crates were subverted could): an address inside a block, the
//! neighbouring slot that another domain owns, a slot never handed out, a misaligned one,
//! another domain's block, a block already freed (double free, use after free), a slot
//! freed and reused by another domain, one block passed twice in one call, and a block on
//! its way back to another caller. Each must get nothing: what every domain owns is
//! checked after each step.

use super::continuation::{call_into, EntryKind};
use super::registry::registry;
use super::{proxy, rref, slab, DomainId};
use alloc::format;
use alloc::string::String;
use interfaces::hello;
use interfaces::{KernelServices, RpcError};

type Step<'a> = &'a mut dyn FnMut(&KernelServices);

unsafe extern "C" fn invoke_step(data: *mut u8, _: *const (), _: *const ()) {
    // SAFETY: `data` is the `(services, step)` pair of `as_domain`, live for this call.
    let (services, step) = unsafe { &mut *(data as *mut (*const KernelServices, Step)) };
    // SAFETY: the domain's own services table, owned by its instance while it runs.
    step(unsafe { &**services });
}

/// Runs `step` as domain `d`, with its own services table. False if `d` has no instance
/// or the step crashed it.
fn as_domain(d: DomainId, mut step: impl FnMut(&KernelServices)) -> bool {
    let Some(services) = registry().get(d).and_then(|x| x.instance()).map(|i| i.services()) else {
        return false;
    };
    let mut pair: (*const KernelServices, Step) = (services, &mut step);
    let code = call_into(
        d,
        EntryKind::Kernel,
        invoke_step,
        &mut pair as *mut (*const KernelServices, Step) as *mut u8,
        core::ptr::null(),
        core::ptr::null(),
    );
    code == 0 && !super::registry::is_dead(d)
}

fn alloc_as(d: DomainId, size: usize) -> Result<usize, String> {
    let mut p = 0;
    // SAFETY: plain values.
    let ran = as_domain(d, |s| p = unsafe { (s.rref_alloc)(size, 8) } as usize);
    if !ran || p == 0 {
        return Err(format!("domain {d} could not allocate {size} bytes"));
    }
    Ok(p)
}

fn free_as(d: DomainId, p: usize) -> Result<(), String> {
    // SAFETY: a deliberately forged address is what this test passes; the kernel checks it.
    if as_domain(d, |s| unsafe { (s.rref_free)(p as *mut u8) }) {
        Ok(())
    } else {
        Err(format!("domain {d} crashed freeing {p:#x}"))
    }
}

fn claim_as(d: DomainId, p: usize) -> Result<i32, String> {
    let mut r = 0;
    // SAFETY: as in `free_as`.
    let ran = as_domain(d, |s| r = unsafe { (s.rref_claim)(p as *mut u8) });
    ran.then_some(r).ok_or(format!("domain {d} crashed claiming {p:#x}"))
}

/// Calls Hello's `method` (its index in the exported table: `hello::method`), one that
/// takes `RRef`s, through `d`'s slot `slot` into hello, as `d`, with `x1` and `x2` as its
/// first two arguments: the moving trampoline, as a generated proxy calls it. Returns the
/// proxy status the call left (0: hello ran it, and had the blocks).
fn call_moving_as(d: DomainId, slot: u32, method: usize, x1: usize, x2: usize) -> Result<u32, String> {
    let word = u64::from(proxy::tag_of(&hello::HASH) << 16 | slot << 8 | method as u32) | interfaces::abi::MOVING_CALL;
    let mut status = u32::MAX;
    let ran = as_domain(d, |s| {
        // SAFETY: the kernel's moving trampoline, with the generated proxies' convention;
        // the methods this test calls (`take`, `pair`) return at most 16 bytes, in
        // registers, which are not read. The status word is this thread's own.
        unsafe {
            let f: extern "C" fn(u64, usize, usize) = core::mem::transmute(s.proxy_call_moving);
            f(word, x1, x2);
            status = core::ptr::read_volatile(s.proxy_status);
            core::ptr::write_volatile(s.proxy_status as *mut u32, 0);
        }
    });
    ran.then_some(status).ok_or(format!("domain {d} crashed calling with {x1:#x}, {x2:#x}"))
}

fn slot_into(caller: DomainId, callee: DomainId) -> Result<u32, String> {
    (0..proxy::MAX_SLOTS as u32)
        .find(|i| proxy::callee_of(caller, *i) == Some(callee))
        .ok_or(format!("domain {caller} has no slot into domain {callee}"))
}

const NOT_ALLOWED: u32 = RpcError::NotAllowed as u32;

/// Attacks through `attacker`'s services and its slot into `victim` (relay into hello) on
/// its own and `victim`'s blocks. Returns the number of forged requests refused, or what
/// went wrong.
pub fn forged_rrefs(attacker: DomainId, victim: DomainId) -> Result<u32, String> {
    let slot = slot_into(attacker, victim)?;
    let (take, pair) = (hello::method::take, hello::method::pair);
    let owned = |d| rref::owned_by(d);
    let (a0, v0) = (owned(attacker), owned(victim));
    let a = alloc_as(attacker, 64)?;
    let v = alloc_as(victim, 64)?;
    let big = alloc_as(attacker, 32 * 1024)?;
    let (region, size) = slab::region();
    if a.wrapping_sub(region) >= size || v.wrapping_sub(region) >= size {
        return Err(format!("64-byte blocks outside the slab region: {a:#x} {v:#x}"));
    }
    let (a1, v1) = (owned(attacker), owned(victim));
    let mut refused = 0;
    // Addresses that are no block's start, another domain's block, and a slot never
    // handed out (the region's last); passed alone (the trampoline's fast path, or its
    // slow path for addresses outside the region) and beside the attacker's own block.
    let forged = [a + 8, a + 1, a + 63, v, v + 8, v + 64, region + size - 64, big + 64, big - 64, 0, usize::MAX];
    for p in forged {
        if rref::owner_of(p) == Some(attacker) {
            continue; // its own block (a neighbour it happened to get): not a forgery
        }
        let got = (
            claim_as(attacker, p)?,
            call_moving_as(attacker, slot, take, p, 0)?,
            call_moving_as(attacker, slot, pair, a, p)?,
        );
        free_as(attacker, p)?;
        if got != (-1, NOT_ALLOWED, NOT_ALLOWED) || (owned(attacker), owned(victim)) != (a1, v1) {
            return Err(format!("forged address {p:#x} took effect ({got:?})"));
        }
        refused += 4;
    }
    // One block passed twice in one call: the callee would hold two owners of it.
    let got = call_moving_as(attacker, slot, pair, a, a)?;
    if got != NOT_ALLOWED || (owned(attacker), owned(victim)) != (a1, v1) {
        return Err(format!("one block passed twice in one call was taken ({got})"));
    }
    refused += 1;
    // Double free, then use after free.
    free_as(attacker, a)?;
    let a2 = owned(attacker);
    if a2.0 + 1 != a1.0 {
        return Err("its own free did not take".into());
    }
    free_as(attacker, a)?;
    let got = (claim_as(attacker, a)?, call_moving_as(attacker, slot, take, a, 0)?);
    if owned(attacker) != a2 || got != (-1, NOT_ALLOWED) {
        return Err(format!("double free or use after free took effect ({got:?})"));
    }
    refused += 3;
    // The freed slot reused by the victim: the attacker's old address now names the
    // victim's block, and gets nothing.
    let reused = alloc_as(victim, 64)?;
    if reused != a {
        return Err(format!("the freed slot {a:#x} was not the next one handed out ({reused:#x})"));
    }
    let before = (owned(attacker), owned(victim));
    let got = (claim_as(attacker, a)?, call_moving_as(attacker, slot, take, a, 0)?);
    free_as(attacker, a)?;
    if got != (-1, NOT_ALLOWED) || (owned(attacker), owned(victim)) != before {
        return Err(format!("a freed slot reused by another domain was taken ({got:?})"));
    }
    refused += 3;
    // On its way back to the attacker (the result of a call it made): the kernel, naming
    // it, gets nothing, and neither does a third domain; the attacker gets it.
    let n = alloc_as(victim, 64)?;
    if !rref::give_back(victim, n as *mut u8, attacker) {
        return Err("the victim could not give its own block back".into());
    }
    if rref::claim(super::KERNEL, n as *mut u8) {
        return Err("the kernel claimed a block on its way to another domain".into());
    }
    refused += 1;
    if claim_as(attacker, n)? != 0 {
        return Err("the caller could not claim a block given back to it".into());
    }
    // Its own blocks, moved by real calls: the fast path (`take`: hello drops it) and the
    // slow path (a kernel-heap block; and two blocks at once).
    let got = call_moving_as(attacker, slot, take, n, 0)?;
    if got != 0 {
        return Err(format!("the attacker's own block was refused ({got})"));
    }
    let got = call_moving_as(attacker, slot, take, big, 0)?;
    if got != 0 {
        return Err(format!("the attacker's own kernel-heap block was refused ({got})"));
    }
    let (one, two) = (alloc_as(attacker, 64)?, alloc_as(attacker, 64)?);
    let got = call_moving_as(attacker, slot, pair, one, two)?;
    if got != 0 {
        return Err(format!("two of the attacker's own blocks in one call were refused ({got})"));
    }
    // Everything the calls moved, hello dropped; the victim's own go back.
    free_as(victim, v)?;
    free_as(victim, reused)?;
    if (owned(attacker), owned(victim)) != (a0, v0) {
        return Err(format!(
            "after cleaning up: attacker {:?} (was {a0:?}), victim {:?} (was {v0:?})",
            owned(attacker),
            owned(victim)
        ));
    }
    Ok(refused)
}

/// Slab pinning (red team 3): `attacker` gives every slab of the region a size class no one
/// else uses (it allocates large blocks until the region has no slab left, in steps its
/// quota allows, and frees them all again), then `victim` allocates small blocks. Slabs
/// that are entirely free must serve them: a domain must not be able to push everyone
/// else onto the kernel heap for good by what it allocated and gave back. Returns how
/// many of the victim's blocks came from the region.
pub fn slab_pinning(attacker: DomainId, victim: DomainId) -> Result<usize, String> {
    let (region, size) = slab::region();
    let in_region = |p: usize| p.wrapping_sub(region) < size;
    let owned = |d| rref::owned_by(d);
    let (a0, v0) = (owned(attacker), owned(victim));
    let mut full = false;
    // The largest classes first: each slab costs the attacker about 16 KiB while held.
    for block in [16 * 1024, 8 * 1024, 4 * 1024, 2 * 1024, 1024] {
        let mut held = alloc::vec::Vec::new();
        loop {
            let mut p = 0;
            // SAFETY: plain values.
            if !as_domain(attacker, |s| p = unsafe { (s.rref_alloc)(block, 8) } as usize) {
                return Err("the attacker crashed allocating".into());
            }
            if p == 0 {
                break; // its quota
            }
            held.push(p);
            if !in_region(p) {
                full = true; // no slab left: every one has a class now
                break;
            }
        }
        for p in held {
            free_as(attacker, p)?;
        }
        if full {
            break;
        }
    }
    // (`full`: some block of the attacker's came from the kernel heap, every slab having a
    // class by then; with empty slabs going to whichever class needs one, it may not.)
    crate::info!("rref-slab-pinning: the attacker filled the region: {full}");
    if owned(attacker) != a0 {
        return Err(format!("the attacker's blocks did not all go back (owns {:?}, was {a0:?})", owned(attacker)));
    }
    // Everything the attacker held is free again; the victim's small blocks must still come
    // from the region.
    let mut got = alloc::vec::Vec::new();
    for _ in 0..1200 {
        got.push(alloc_as(victim, 64)?);
    }
    let slab_blocks = got.iter().filter(|p| in_region(**p)).count();
    for p in got {
        free_as(victim, p)?;
    }
    if owned(victim) != v0 {
        return Err("the victim's blocks did not all go back".into());
    }
    if slab_blocks != 1200 {
        return Err(format!(
            "after the attacker freed everything, {} of the victim's 1200 64-byte blocks came from the kernel heap: the region's free slabs stay pinned to the attacker's classes",
            1200 - slab_blocks
        ));
    }
    Ok(slab_blocks)
}

/// Alignment the quota does not see (red team 3): once the slab region is full (here the
/// kernel fills it), small blocks come from the kernel heap; `attacker` asks for 1-byte
/// blocks aligned to 4 KiB. Each takes a 4 KiB stride of the kernel heap (first fit puts
/// each at the next page boundary, and the holes between fit only small objects), so what
/// it may hold of the kernel heap's span must be bounded by its quota. Returns how many it got.
pub fn aligned_blocks(attacker: DomainId) -> Result<usize, String> {
    let (region, size) = slab::region();
    let in_region = |p: usize| p.wrapping_sub(region) < size;
    let a0 = rref::owned_by(attacker);
    // Fill the region as the kernel (16 KiB blocks: one slab each).
    let mut filler = alloc::vec::Vec::new();
    loop {
        let p = rref::alloc(super::KERNEL, slab::SLAB, 8) as usize;
        if p == 0 {
            break;
        }
        filler.push(p);
        if !in_region(p) || filler.len() > 64 {
            break;
        }
    }
    let mut got = alloc::vec::Vec::new();
    loop {
        let mut p = 0;
        // SAFETY: plain values.
        if !as_domain(attacker, |s| p = unsafe { (s.rref_alloc)(1, 4096) } as usize) {
            return Err("the attacker crashed allocating".into());
        }
        if p == 0 || got.len() >= 100_000 {
            break;
        }
        got.push(p);
    }
    let n = got.len();
    let outside = got.iter().filter(|p| !in_region(**p)).count();
    for p in got {
        free_as(attacker, p)?;
    }
    for p in filler {
        rref::free(super::KERNEL, p as *mut u8);
    }
    if rref::owned_by(attacker) != a0 {
        return Err("the attacker's blocks did not all go back".into());
    }
    let quota = super::quota::shared_heap(attacker);
    if outside * 4096 > quota {
        return Err(format!(
            "{outside} kernel-heap blocks of 1 byte aligned to 4 KiB for a {quota}-byte quota: {} KiB of the kernel heap's span, charged far less",
            outside * 4
        ));
    }
    Ok(n)
}

/// Quota laundering (red team 3): `caller` passes blocks through its slot into `callee`,
/// which keeps them (a hoarding callee, or one whose calls all block holding their
/// arguments). If each move gave the caller's quota back and charged the callee past its
/// own, the two together would hold more than both quotas, up to all domains' limits.
/// Here the callee's quota is filled first (it allocates until refused), then the caller
/// passes a 64-byte block (the trampoline's fast path) and a kernel-heap block (its slow
/// path): both calls must be refused as `NoRoom` before the callee runs, each block
/// staying the caller's; with room made again, the same calls go through. Returns how many
/// blocks filled the callee's quota.
pub fn quota_laundering(caller: DomainId, callee: DomainId) -> Result<usize, String> {
    let slot = slot_into(caller, callee)?;
    let (c0, v0) = (rref::owned_by(caller), rref::owned_by(callee));
    let small = alloc_as(caller, 64)?;
    let big = alloc_as(caller, 32 * 1024)?;
    let mut held = alloc::vec::Vec::new();
    loop {
        let mut p = 0;
        // SAFETY: plain values.
        if !as_domain(callee, |s| p = unsafe { (s.rref_alloc)(64, 8) } as usize) {
            return Err("the callee crashed allocating".into());
        }
        if p == 0 || held.len() > 1 << 20 {
            break;
        }
        held.push(p);
    }
    let no_room = RpcError::NoRoom as u32;
    for (what, p) in [("a 64-byte block", small), ("a kernel-heap block", big)] {
        let got = call_moving_as(caller, slot, hello::method::take, p, 0)?;
        if got != no_room || rref::owner_of(p) != Some(caller) {
            return Err(format!(
                "{what} passed to a callee with no room left: status {got}, owner now {:?} (the caller is {caller})",
                rref::owner_of(p)
            ));
        }
    }
    let n = held.len();
    for p in held {
        free_as(callee, p)?;
    }
    for (what, p) in [("a 64-byte block", small), ("a kernel-heap block", big)] {
        let got = call_moving_as(caller, slot, hello::method::take, p, 0)?;
        if got != 0 {
            return Err(format!("{what} passed to a callee with room again: status {got}"));
        }
    }
    if (rref::owned_by(caller), rref::owned_by(callee)) != (c0, v0) {
        return Err("the blocks did not all go back".into());
    }
    Ok(n)
}

/// A result outliving its callee: `callee` (relay) returns a block to the kernel, then dies
/// before the kernel claims it. The reclaim must leave the block to the kernel, whose claim
/// then succeeds (it freed the block once, and the kernel's claim panicked it). Returns the
/// block's size.
pub fn result_outlives_callee(callee: DomainId) -> Result<usize, String> {
    let p = alloc_as(callee, 64)?;
    if !rref::give_back(callee, p as *mut u8, super::KERNEL) {
        return Err("the callee could not return its own block".into());
    }
    super::recovery::crashed(callee, "crash injected by the test: it returned a block and died");
    // The reclaim runs on the restarter's thread: wait until the callee owns nothing.
    for _ in 0..200 {
        if rref::owned_by(callee).0 == 0 {
            break;
        }
        crate::sched::sleep_ms(10);
    }
    match rref::owner_of(p) {
        Some(super::KERNEL) => {}
        other => return Err(format!("after the callee's reclaim its returned block is owned by {other:?}, not the kernel")),
    }
    if !rref::claim(super::KERNEL, p as *mut u8) || !rref::free(super::KERNEL, p as *mut u8) {
        return Err("the kernel could not claim and free the block returned to it".into());
    }
    Ok(64)
}

/// Red team 4, `rref-claim-of-an-unreturned-block`: a callee's forged result. The proxy
/// claims whatever address the callee's table entry returned; here the callee "returns"
/// the address of a block its caller owns and still holds an `RRef` to (a hostile callee
/// learns such addresses easily: a block the caller passed it earlier and it freed is the
/// caller's next allocation of that class, the free lists being LIFO). No call returned
/// that block, so the claim must be refused; if it is taken, the caller holds two `RRef`s
/// to one block: when one is dropped the slot goes to the next allocation (here the
/// callee's) while the other still reads and writes it.
pub fn claim_of_an_unreturned_block(caller: DomainId, callee: DomainId) -> Result<(), String> {
    let p = alloc_as(caller, 64)?;
    let got = claim_as(caller, p)?;
    if got != 0 {
        free_as(caller, p)?;
        return Ok(());
    }
    // The caller's second `RRef` (the call's "result") is dropped: the block is freed, and
    // the next 64-byte block is the callee's, in the same slot.
    free_as(caller, p)?;
    let q = alloc_as(callee, 64)?;
    let aliased = q == p && rref::owner_of(q) == Some(callee);
    free_as(callee, q)?;
    Err(format!(
        "domain {caller} claimed its own block {p:#x}, which no call returned to it (rref_claim accepts a block its claimer owns and was never sent): its proxy now holds two RRefs to one block; {}",
        if aliased {
            format!("once one was dropped, the slot became domain {callee}'s block while the caller's other RRef still names it")
        } else {
            String::from("dropping one leaves the other dangling")
        }
    ))
}

/// Red team 4, `rref-sent-block-freed-or-passed-on`: a block on its way back to a caller
/// (its owner returned it, `rref_return`, and the caller has not claimed it yet) is the
/// caller's result: its sender must not free it or pass it to someone else meanwhile (it
/// gave up its `RRef`). `sender` (relay) returns blocks to `receiver` (hello, as if hello
/// had called it), then frees one and passes the other as an argument into `receiver`'s
/// `take`: both must be refused and the receiver's claim then taken. Otherwise the caller's
/// claim is refused, and its proxy crashes it; and if its own allocation meanwhile got the
/// freed slot, the claim is taken (`claim_of_an_unreturned_block`) and it holds two
/// `RRef`s to one block.
pub fn sent_block_freed_or_passed_on(sender: DomainId, receiver: DomainId) -> Result<(), String> {
    let slot = slot_into(sender, receiver)?;
    let mut wrong = alloc::vec::Vec::new();
    // Freed by its sender after it was returned.
    let a = alloc_as(sender, 64)?;
    if !rref::give_back(sender, a as *mut u8, receiver) {
        return Err("the sender could not return its own block".into());
    }
    free_as(sender, a)?;
    if rref::owner_of(a) != Some(sender) {
        wrong.push(format!("its sender freed block {a:#x} on its way back to domain {receiver}"));
    }
    if claim_as(receiver, a)? != 0 {
        wrong.push(format!("domain {receiver}'s claim of its result {a:#x} was refused (its proxy would crash it)"));
    } else {
        free_as(receiver, a)?;
    }
    // Passed by its sender as an argument (the moving trampoline's fast path) after it was
    // returned.
    let b = alloc_as(sender, 64)?;
    if !rref::give_back(sender, b as *mut u8, receiver) {
        return Err("the sender could not return its own block".into());
    }
    let got = call_moving_as(sender, slot, hello::method::take, b, 0)?;
    if got == 0 {
        wrong.push(format!(
            "its sender passed block {b:#x}, on its way back to domain {receiver}, into a call (status 0)"
        ));
    }
    if claim_as(receiver, b)? != 0 {
        wrong.push(format!("domain {receiver}'s claim of its result {b:#x} was refused (its proxy would crash it)"));
    } else {
        free_as(receiver, b)?;
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Red team 4, `rref-result-for-a-dead-caller-is-stranded`: `caller` dies while `callee`
/// serves its call (a safe domain does this at will: one of its threads panics while the
/// others are in calls); the callee carries on and returns its result, which its adapter
/// gives back (`rref_return`: sent to the call's caller, the dead domain; the thread then
/// returns into the dead instance and is unwound). The dead instance's reclaim ran before,
/// so nothing frees that block: it stays the callee's, charged to its quota, until the
/// caller dies once more (never, if it is held or stays up). After the caller restarted,
/// the callee must own what it owned before.
pub fn result_for_a_dead_caller(caller: DomainId, callee: DomainId) -> Result<(), String> {
    let life = |d: DomainId| registry().get(d).map(|x| (x.state() == super::registry::State::Running, x.generation()));
    let Some((true, generation)) = life(caller) else {
        return Err(format!("domain {caller} is not running"));
    };
    let before = rref::owned_by(callee);
    // The callee's result, made while it serves the call.
    let n = alloc_as(callee, 64)?;
    super::recovery::crashed(caller, "crash injected by selftest rref-result-for-a-dead-caller-is-stranded");
    // The callee returns it: what `rref_return` does as the callee, in the call the dead
    // caller made (its caller is the one recorded in the continuation: `caller`).
    if !rref::give_back(callee, n as *mut u8, caller) {
        return Err("the callee could not return its own block".into());
    }
    let mut restarted = false;
    for _ in 0..300 {
        if life(caller).is_some_and(|(running, g)| running && g > generation) {
            restarted = true;
            break;
        }
        crate::sched::sleep_ms(10);
    }
    if !restarted {
        return Err(format!("domain {caller} did not restart"));
    }
    let after = crate::sched::settled(|| rref::owned_by(callee));
    if after != before {
        let owner = rref::owner_of(n);
        // Clean up, so that the run can carry on.
        if owner == Some(callee) {
            free_as(callee, n)?;
        }
        return Err(format!(
            "domain {callee} owned {before:?} (blocks, bytes) before the call and {after:?} after its caller {caller} died and restarted: the result {n:#x} it returned to the dead caller is stranded (owner {owner:?}), charged to the callee's quota until the caller dies again"
        ));
    }
    Ok(())
}
