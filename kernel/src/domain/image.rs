//! Domain images: a verified envelope becomes code and data in the one address space,
//! relocated and mapped with the permissions the loader reports (W^X by the MMU).

use crate::memory::{self, Access, PAGE_SIZE};
use loader::elf::Permission;
use loader::ElfImage;

/// A domain image in memory.
pub struct LoadedImage {
    pub base: usize,
    pub size: usize,
    pub entry: usize,
    /// (address, permission) of each mapped segment.
    pub segments: alloc::vec::Vec<(usize, Permission)>,
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
    let base = memory::alloc_frames(size / PAGE_SIZE).ok_or(LoadFailure::NoMemory(size))?;
    // SAFETY: freshly allocated frames, identity mapped RW, owned by this image alone.
    let dest = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, size) };
    let segments = match elf.load_into(dest, base as u64) {
        Ok(s) => s,
        Err(e) => {
            memory::free_frames_at(base, size / PAGE_SIZE);
            return Err(LoadFailure::Relocation(e));
        }
    };
    crate::arch::cpu::sync_icache(base, size);
    for s in &segments {
        let access = match s.permission {
            Permission::R => Access::ReadOnly,
            Permission::RW => Access::ReadWrite,
            Permission::RX => Access::ReadExecute,
        };
        memory::protect(base + s.offset as usize, s.size as usize, access).map_err(LoadFailure::Map)?;
    }
    let segments = segments.iter().map(|s| (base + s.offset as usize, s.permission)).collect();
    Ok(LoadedImage {
        base,
        size,
        entry: base + elf.entry() as usize,
        segments,
    })
}

impl LoadedImage {
    /// Gives the image's frames back (made writable again first: they return to the pool
    /// as ordinary RAM). Nothing may run the image any more.
    pub fn free(self) {
        let _ = memory::protect(self.base, self.size, Access::ReadWrite);
        memory::free_frames_at(self.base, self.size / PAGE_SIZE);
    }
}
