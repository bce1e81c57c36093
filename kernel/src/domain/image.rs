//! Domain images: a verified envelope becomes code and data in the one address space,
//! relocated and mapped with the permissions the loader reports (W^X by the MMU).

use crate::memory::{Access, FrameRange, PAGE_SIZE};
use loader::elf::Permission;
use loader::ElfImage;

/// A domain image in memory. Its frames are freed (made writable RAM again first) when it
/// is dropped; nothing may run the image by then.
pub struct LoadedImage {
    /// Owned for its `Drop`: the frames the image lives in.
    _frames: FrameRange,
    pub base: usize,
    pub size: usize,
    pub entry: usize,
    /// (address, size, permission) of each mapped segment.
    pub segments: alloc::vec::Vec<(usize, usize, Permission)>,
}

#[derive(Debug)]
pub enum LoadFailure {
    NoMemory(usize),
    Relocation(loader::ElfError),
    Map(crate::arch::mmu::MapError),
}

impl core::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadFailure::NoMemory(n) => write!(f, "no {n} contiguous bytes for the image"),
            LoadFailure::Relocation(e) => write!(f, "{e}"),
            LoadFailure::Map(e) => write!(f, "mapping failed: {e:?}"),
        }
    }
}

impl LoadedImage {
    /// Maps the image's code read-execute (`true`) or read-only (`false`): a crashed
    /// domain's image, kept for its restart, is not executable until then (pristine.rs).
    pub fn set_code_executable(&mut self, executable: bool) -> Result<(), crate::arch::mmu::MapError> {
        let access = if executable { Access::ReadExecute } else { Access::ReadOnly };
        for &(address, size, permission) in &self.segments {
            if permission == Permission::RX {
                self._frames.protect(address - self.base, size, access)?;
            }
        }
        Ok(())
    }
}

/// "R RX RW": the permission of each segment, in order.
pub fn describe_segments(elf: &ElfImage) -> alloc::string::String {
    let names: alloc::vec::Vec<&str> = elf
        .segments()
        .iter()
        .map(|s| match s.permission {
            Permission::R => "R",
            Permission::RW => "RW",
            Permission::RX => "RX",
        })
        .collect();
    names.join(" ")
}

/// Copies, relocates and maps a verified domain. Relocations are applied while the pages
/// are still writable; permissions are set afterwards.
pub fn load(elf: &ElfImage) -> Result<LoadedImage, LoadFailure> {
    let size = elf.layout().size as usize;
    let mut frames = FrameRange::alloc(size.div_ceil(PAGE_SIZE)).ok_or(LoadFailure::NoMemory(size))?;
    let base = frames.base();
    let segments = elf
        .load_into(&mut frames.as_mut_slice()[..size], base as u64)
        .map_err(LoadFailure::Relocation)?;
    crate::arch::cpu::sync_icache(base, size);
    for s in &segments {
        let access = match s.permission {
            Permission::R => Access::ReadOnly,
            Permission::RW => Access::ReadWrite,
            Permission::RX => Access::ReadExecute,
        };
        frames.protect(s.offset as usize, s.size as usize, access).map_err(LoadFailure::Map)?;
    }
    let segments = segments.iter().map(|s| (base + s.offset as usize, s.size as usize, s.permission)).collect();
    Ok(LoadedImage {
        _frames: frames,
        base,
        size,
        entry: base + elf.entry() as usize,
        segments,
    })
}
