//! Memory: the boot map, the physical frame allocator, the kernel's page tables
//! (text RX, rodata R, everything else RW+XN, devices nGnRE, guard pages unmapped), the
//! kernel heap, and kernel stacks with guard pages.

pub mod frame;
pub mod heap;
mod region;

use crate::arch::mmu::{self, AddressSpace, Attributes, MapError, Table, TableSource};
pub use crate::arch::mmu::{Access, MemType, PAGE_SIZE};
use crate::sync::IrqLock;
use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};
use frame::FrameAllocator;
pub use region::Region;

// ---------------------------------------------------------------------------------------
// Boot map: built from the board's fixed list before the device tree is read, so that the
// kernel runs with caches on (and may make unaligned accesses) from its first Rust lines.

const EARLY_TABLES: usize = 8;
struct EarlyPool(UnsafeCell<[Table; EARLY_TABLES]>);
// SAFETY: used only by `early_init`, on one core, before interrupts or threads exist.
unsafe impl Sync for EarlyPool {}
static EARLY_POOL: EarlyPool = EarlyPool(UnsafeCell::new([const { Table::empty() }; EARLY_TABLES]));
static EARLY_NEXT: AtomicUsize = AtomicUsize::new(0);

struct EarlyTables;
impl TableSource for EarlyTables {
    fn new_table(&mut self) -> Option<*mut Table> {
        let n = EARLY_NEXT.load(Ordering::Relaxed);
        if n >= EARLY_TABLES {
            return None;
        }
        EARLY_NEXT.store(n + 1, Ordering::Relaxed);
        // SAFETY: each index is handed out once; the pool is zeroed BSS.
        Some(unsafe { (EARLY_POOL.0.get() as *mut Table).add(n) })
    }
}

/// Turns the MMU on with the board's boot map. First thing after the vectors.
pub fn early_init(boot_map: &[(Region, MemType)]) {
    let mut tables = EarlyTables;
    let mut space = AddressSpace::new(&mut tables).expect("boot map: no table");
    for &(region, mem) in boot_map {
        let access = if mem == MemType::Normal {
            Access::BootReadWriteExecute
        } else {
            Access::ReadWrite
        };
        space
            .map(region.base, region.base, region.size, Attributes { mem, access }, &mut tables)
            .expect("boot map does not fit");
    }
    mmu::enable(&space);
}

// ---------------------------------------------------------------------------------------

static FRAMES: IrqLock<Option<FrameAllocator>> = IrqLock::new("frames", None);
static KERNEL_SPACE: IrqLock<Option<AddressSpace>> = IrqLock::new("kernel page tables", None);

/// Page tables from the frame allocator, zeroed.
struct FrameTables;
impl TableSource for FrameTables {
    fn new_table(&mut self) -> Option<*mut Table> {
        let pa = alloc_frames(1)?;
        // SAFETY: a fresh frame, identity mapped RW, owned by nobody else.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0, PAGE_SIZE) };
        Some(pa as *mut Table)
    }
}

fn page_floor(a: usize) -> usize {
    a & !(PAGE_SIZE - 1)
}
fn page_ceil(a: usize) -> usize {
    a.div_ceil(PAGE_SIZE) * PAGE_SIZE
}
fn page_region(r: Region) -> Region {
    let base = page_floor(r.base);
    Region {
        base,
        size: page_ceil(r.end()) - base,
    }
}

/// The kernel image's own layout, from linker symbols.
pub struct KernelLayout {
    pub image: Region,
    pub text: Region,
    pub rodata: Region,
    pub boot_stack_guard: usize,
    pub emergency_stack_guard: usize,
}

pub fn kernel_layout() -> KernelLayout {
    let start = crate::linker_symbol!(__kernel_start);
    let text_end = crate::linker_symbol!(__text_end);
    let rodata_end = crate::linker_symbol!(__rodata_end);
    let end = crate::linker_symbol!(__kernel_end);
    KernelLayout {
        image: Region {
            base: start,
            size: end - start,
        },
        text: Region {
            base: start,
            size: text_end - start,
        },
        rodata: Region {
            base: text_end,
            size: rodata_end - text_end,
        },
        boot_stack_guard: crate::linker_symbol!(__boot_stack_guard),
        emergency_stack_guard: crate::linker_symbol!(__emergency_stack_guard),
    }
}

/// Finds `size` page-aligned bytes of `ram` that overlap none of `avoid`.
fn find_free(ram: &[Region], avoid: &[Region], size: usize) -> Option<usize> {
    for r in ram {
        let mut candidate = page_ceil(r.base.max(PAGE_SIZE));
        'retry: loop {
            let want = Region { base: candidate, size };
            if want.end() > r.end() {
                break;
            }
            for a in avoid {
                if a.overlaps(&want) {
                    candidate = page_ceil(a.end());
                    continue 'retry;
                }
            }
            return Some(candidate);
        }
    }
    None
}

/// What `init` set up, for the boot log.
pub struct MemoryReport {
    pub ram_bytes: usize,
    pub free_frames: usize,
    pub heap_bytes: usize,
}

/// Why memory could not be set up (fatal: the kernel cannot go on without it).
#[derive(Debug)]
pub enum MemoryError {
    NoRam,
    NoRoomForBitmap,
    Map(MapError),
    NoRoomForHeap,
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryError::NoRam => write!(f, "no usable RAM"),
            MemoryError::NoRoomForBitmap => write!(f, "no free RAM for the frame bitmap"),
            MemoryError::Map(e) => write!(f, "building the kernel page tables failed: {e:?}"),
            MemoryError::NoRoomForHeap => write!(f, "no free RAM for the kernel heap"),
        }
    }
}

/// At most this much physical span is tracked (4 GiB; a Pi 3 has 1 GiB).
const MAX_FRAMES: usize = 1 << 20;

/// Sets up frames, the final page tables and the heap. `reserved` are ranges inside RAM
/// that must not be handed out (device tree, initrd, firmware); `devices` are MMIO ranges
/// to map for the kernel's own drivers.
pub fn init(ram: &[Region], reserved: &[Region], devices: &[Region]) -> Result<MemoryReport, MemoryError> {
    let layout = kernel_layout();
    let lowest = ram.iter().map(|r| r.base).min().ok_or(MemoryError::NoRam)?;
    let highest = ram.iter().map(|r| r.end()).max().ok_or(MemoryError::NoRam)?;
    let base = page_floor(lowest);
    let frames = ((highest - base) / PAGE_SIZE).min(MAX_FRAMES);
    if frames < MAX_FRAMES && (highest - base) / PAGE_SIZE > MAX_FRAMES {
        crate::warn!("memory: only the first 4 GiB of RAM are used");
    }

    let words = frames.div_ceil(64);
    let bitmap_bytes = page_ceil(words * 8);
    let mut avoid = [Region::default(); 24];
    avoid[0] = layout.image;
    avoid[1] = Region { base: 0, size: PAGE_SIZE };
    let n = reserved.len().min(avoid.len() - 3);
    avoid[2..2 + n].copy_from_slice(&reserved[..n]);
    let avoid = &avoid[..2 + n];
    let bitmap_at = find_free(ram, avoid, bitmap_bytes).ok_or(MemoryError::NoRoomForBitmap)?;
    // SAFETY: the range is RAM (inside a memory region), mapped RW by the boot map, and
    // overlaps no other user (kernel, device tree, initrd, reservations).
    let bitmap = unsafe { core::slice::from_raw_parts_mut(bitmap_at as *mut u64, words) };
    let mut fa = FrameAllocator::new(base, frames, bitmap);
    for r in ram {
        fa.add_free(*r);
    }
    for r in avoid {
        fa.reserve(*r);
    }
    fa.reserve(Region {
        base: bitmap_at,
        size: bitmap_bytes,
    });
    *FRAMES.lock() = Some(fa);

    let mut tables = FrameTables;
    let mut space = AddressSpace::new(&mut tables).map_err(MemoryError::Map)?;
    let normal = |access| Attributes { mem: MemType::Normal, access };
    let map = |space: &mut AddressSpace, r: Region, a: Attributes, t: &mut FrameTables| {
        let r = page_region(r);
        space.map(r.base, r.base, r.size, a, t)
    };
    for r in ram {
        map(&mut space, *r, normal(Access::ReadWrite), &mut tables).map_err(MemoryError::Map)?;
    }
    // Kernel image: it may lie outside the reported RAM on odd device trees; map it anyway.
    map(&mut space, layout.image, normal(Access::ReadWrite), &mut tables).map_err(MemoryError::Map)?;
    map(&mut space, layout.text, normal(Access::ReadExecute), &mut tables).map_err(MemoryError::Map)?;
    map(&mut space, layout.rodata, normal(Access::ReadOnly), &mut tables).map_err(MemoryError::Map)?;
    for guard in [layout.boot_stack_guard, layout.emergency_stack_guard, 0] {
        space.unmap(guard, PAGE_SIZE, &mut tables).map_err(MemoryError::Map)?;
    }
    for d in devices {
        map(
            &mut space,
            *d,
            Attributes {
                mem: MemType::Device,
                access: Access::ReadWrite,
            },
            &mut tables,
        )
        .map_err(MemoryError::Map)?;
    }
    space.activate();
    *KERNEL_SPACE.lock() = Some(space);

    let free = free_frames();
    let heap_bytes = page_floor(((free * PAGE_SIZE) / 16).clamp(1 << 20, 16 << 20));
    let heap = alloc_frames(heap_bytes / PAGE_SIZE).ok_or(MemoryError::NoRoomForHeap)?;
    // SAFETY: freshly allocated frames, mapped RW, handed to the heap for good.
    unsafe { heap::init(heap, heap_bytes) };
    Ok(MemoryReport {
        ram_bytes: ram.iter().map(|r| r.size).sum(),
        free_frames: free_frames(),
        heap_bytes,
    })
}

/// `count` contiguous physical frames (owners outside this module hold a [`FrameRange`]).
fn alloc_frames(count: usize) -> Option<usize> {
    FRAMES.lock().as_mut()?.alloc(count)
}

/// Returns frames from [`alloc_frames`].
fn free_frames_at(addr: usize, count: usize) {
    if let Some(fa) = FRAMES.lock().as_mut() {
        fa.free(addr, count);
    }
}

/// Contiguous frames with one owner, identity-mapped in the kernel's address space. Dropping
/// it maps the frames read-write again (if `protect` changed them) and frees them: no error
/// path has to remember to.
pub struct FrameRange {
    base: usize,
    pages: usize,
    /// Some page's permission is no longer plain read-write.
    protected: bool,
}

impl FrameRange {
    /// `pages` fresh contiguous frames (at least one), or `None` when there are none.
    pub fn alloc(pages: usize) -> Option<FrameRange> {
        let pages = pages.max(1);
        let base = alloc_frames(pages)?;
        Some(FrameRange { base, pages, protected: false })
    }

    pub fn base(&self) -> usize {
        self.base
    }

    pub fn bytes(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// The frames' contents, to fill them. Only before `protect` (the pages are still
    /// read-write).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(!self.protected, "writing frames after changing their permissions");
        // SAFETY: the frames are identity-mapped read-write RAM (not yet protected), owned
        // by `self` alone, and the slice covers exactly them for as long as `self` is
        // borrowed mutably.
        unsafe { core::slice::from_raw_parts_mut(self.base as *mut u8, self.bytes()) }
    }

    /// Sets the permission of `[base + offset, + size)`, which must lie inside the range.
    pub fn protect(&mut self, offset: usize, size: usize, access: Access) -> Result<(), MapError> {
        let end = offset.checked_add(size).filter(|e| *e <= self.bytes()).ok_or(MapError::OutOfRange)?;
        self.protected = true;
        protect(self.base + offset, end - offset, access)
    }
}

impl Drop for FrameRange {
    fn drop(&mut self) {
        // The frames go back to the pool as ordinary RAM: make them read-write first. If
        // that fails they stay allocated (a leak, never a writable-code alias).
        if self.protected && protect(self.base, self.bytes(), Access::ReadWrite).is_err() {
            return;
        }
        free_frames_at(self.base, self.pages);
    }
}

pub fn free_frames() -> usize {
    FRAMES.lock().as_ref().map_or(0, |f| f.free_frames())
}

/// Changes the permission of `[base, base+size)` (page aligned, kernel RAM).
fn protect(base: usize, size: usize, access: Access) -> Result<(), MapError> {
    let mut space = KERNEL_SPACE.lock();
    let space = space.as_mut().ok_or(MapError::NoTableMemory)?;
    space.map(base, base, size, Attributes { mem: MemType::Normal, access }, &mut FrameTables)?;
    mmu::flush_tlb();
    Ok(())
}

/// Maps an MMIO range (identity, Device-nGnRE, RW, never executable); returns its page base.
pub fn map_device(r: Region) -> Result<usize, MapError> {
    let r = page_region(r);
    let mut space = KERNEL_SPACE.lock();
    let space = space.as_mut().ok_or(MapError::NoTableMemory)?;
    space.map(
        r.base,
        r.base,
        r.size,
        Attributes {
            mem: MemType::Device,
            access: Access::ReadWrite,
        },
        &mut FrameTables,
    )?;
    mmu::flush_tlb();
    Ok(r.base)
}

fn set_page(va: usize, mapped: bool) -> Result<(), MapError> {
    let mut space = KERNEL_SPACE.lock();
    let space = space.as_mut().ok_or(MapError::NoTableMemory)?;
    if mapped {
        space.map(
            va,
            va,
            PAGE_SIZE,
            Attributes {
                mem: MemType::Normal,
                access: Access::ReadWrite,
            },
            &mut FrameTables,
        )?;
    } else {
        space.unmap(va, PAGE_SIZE, &mut FrameTables)?;
    }
    mmu::flush_tlb();
    Ok(())
}

/// A kernel stack: `pages` usable pages above one unmapped guard page.
pub struct Stack {
    base: usize,
    pages: usize,
}

impl Stack {
    pub fn new(pages: usize) -> Option<Stack> {
        let base = alloc_frames(pages + 1)?;
        if set_page(base, false).is_err() {
            free_frames_at(base, pages + 1);
            return None;
        }
        Some(Stack { base, pages })
    }
    pub fn top(&self) -> usize {
        self.base + (self.pages + 1) * PAGE_SIZE
    }
    pub fn guard(&self) -> Region {
        Region {
            base: self.base,
            size: PAGE_SIZE,
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The guard frame goes back to the pool as ordinary RAM, so map it again first.
        if set_page(self.base, true).is_ok() {
            free_frames_at(self.base, self.pages + 1);
        }
    }
}

/// Which of the kernel's own stacks (not a thread's) has its guard page at `addr`.
pub fn kernel_stack_guard_owner(addr: usize) -> Option<&'static str> {
    let l = kernel_layout();
    let page = page_floor(addr);
    if page == l.boot_stack_guard {
        return Some("the boot/exception stack");
    }
    if page == l.emergency_stack_guard {
        return Some("the emergency stack");
    }
    None
}
