//! A restart without a reload. A domain's image stays where it was loaded when the domain
//! crashes: its code (RX) and read-only data (R) were never writable after relocation, so
//! they are as they were loaded; its writable segments are copied back from a pristine copy
//! taken right after loading and relocating, before any of its code ran. The copy lives in
//! frames of the kernel's, mapped read-only; no domain can reach them (SECURITY.md,
//! "Restart").
//!
//! A crashed or held domain's image waits here (`keep`) until the restarter takes it back
//! (`take`), or until its record is retired for good (`forget`). Meanwhile its code is
//! mapped read-only, not executable: a thread still on its way out of the dead instance
//! (returning into it from a call it made) faults at its first instruction and is unwound,
//! as it did when a crashed domain's image was freed at once; it never runs the dead
//! instance's code on data the restart is about to reset.

use super::image::{LoadFailure, LoadedImage};
use super::DomainId;
use crate::memory::{Access, FrameRange};
use crate::sync::IrqLock;
use alloc::vec::Vec;
use loader::Permission;

/// The writable segments of an image as they were before its domain first ran.
pub struct Pristine {
    /// Their bytes, one after the other, mapped read-only.
    frames: FrameRange,
    /// (address in the image, bytes) of each writable segment, in the order of `frames`.
    parts: Vec<(usize, usize)>,
}

impl Pristine {
    /// Copies the writable segments of `image`, just loaded and relocated (none of its
    /// code has run), into frames it then maps read-only. `None` if no frames are free.
    pub fn capture(image: &LoadedImage) -> Option<Pristine> {
        let parts: Vec<(usize, usize)> = image.segments.iter().filter(|s| s.2 == Permission::RW).map(|s| (s.0, s.1)).collect();
        let total: usize = parts.iter().map(|p| p.1).sum();
        let mut frames = FrameRange::alloc(total.div_ceil(crate::memory::PAGE_SIZE))?;
        let copy = frames.as_mut_slice();
        let mut at = 0;
        for &(address, size) in &parts {
            // SAFETY: `(address, size)` is a writable segment of `image`, inside the frames
            // it owns (page-rounded by the loader, within the image's size) and mapped
            // read-write; `image` is borrowed, so nothing frees it meanwhile, and no code
            // of the domain runs yet to write it.
            let segment = unsafe { core::slice::from_raw_parts(address as *const u8, size) };
            copy[at..at + size].copy_from_slice(segment);
            at += size;
        }
        // Read-only from now on: only a change of the kernel's page tables could alter it.
        frames.protect(0, frames.bytes(), Access::ReadOnly).ok()?;
        Some(Pristine { frames, parts })
    }

    /// Makes the writable segments of `image` (the one this copy was taken of) what they
    /// were before its domain first ran. Its other segments never changed: they are mapped
    /// read-only or read-execute since they were relocated.
    pub fn restore(&self, image: &mut LoadedImage) {
        let mut from = self.frames.base();
        for &(address, size) in &self.parts {
            debug_assert!(image.segments.iter().any(|s| s.0 == address && s.1 == size && s.2 == Permission::RW));
            // SAFETY: `(address, size)` is a writable segment of `image` (the image this
            // copy was captured from; its segments never move), mapped read-write and owned
            // by `image`, which is borrowed mutably: no instance uses it (its domain is
            // dead and the restarter waited until no thread was inside it). The source is
            // `size` bytes of this copy's own frames; the two never overlap.
            unsafe { core::ptr::copy_nonoverlapping(from as *const u8, address as *mut u8, size) };
            from += size;
        }
    }
}

/// A crashed or held domain's image (its code not executable) and its pristine data, kept
/// for its restart.
pub struct Kept {
    image: LoadedImage,
    pristine: Pristine,
}

impl Kept {
    /// Keeps `image` for a restart, its code made non-executable first. `None` if its
    /// mapping could not be changed: then the image is freed (a restart loads it again).
    pub fn park(mut image: LoadedImage, pristine: Pristine) -> Option<Kept> {
        image.set_code_executable(false).ok()?;
        Some(Kept { image, pristine })
    }

    /// The image again as it was loaded, before its domain first ran: its writable
    /// segments copied back from the pristine copy, its code executable again.
    pub fn unpark(mut self) -> Result<(LoadedImage, Pristine), LoadFailure> {
        self.pristine.restore(&mut self.image);
        self.image.set_code_executable(true).map_err(LoadFailure::Map)?;
        Ok((self.image, self.pristine))
    }
}

static KEPT: IrqLock<Vec<(DomainId, Kept)>> = IrqLock::new("kept images", Vec::new());

/// Keeps `kept` for `d`'s restart (replacing any older one).
pub fn keep(d: DomainId, kept: Kept) {
    let older = {
        let mut all = KEPT.lock();
        let older = take_locked(&mut all, d);
        all.push((d, kept));
        older
    };
    drop(older); // outside the lock: freeing frames changes page tables
}

/// The image kept for `d`'s restart, if there is one.
pub fn take(d: DomainId) -> Option<Kept> {
    take_locked(&mut KEPT.lock(), d)
}

/// `d` will not be restarted (its record was retired or rejected): frees its kept image.
pub fn forget(d: DomainId) {
    drop(take(d));
}

fn take_locked(all: &mut Vec<(DomainId, Kept)>, d: DomainId) -> Option<Kept> {
    let i = all.iter().position(|(x, _)| *x == d)?;
    Some(all.swap_remove(i).1)
}
