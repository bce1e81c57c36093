//! Stage-1 translation for EL1: 4 KiB granule, 39-bit addresses, three levels, one identity
//! mapped address space (QvQ isolates by language, not by page tables). Page tables give
//! permissions (W^X) and guard pages, and decide Normal versus Device memory.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ReadWriteable, Readable, Writeable, ID_AA64MMFR0_EL1, MAIR_EL1, SCTLR_EL1, TCR_EL1, TTBR0_EL1};

pub const PAGE_SIZE: usize = 4096;
const ENTRIES: usize = 512;
/// Top of the translated range: 2^39 bytes.
pub const VA_LIMIT: usize = 1 << 39;

/// How a range may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only, never executed.
    ReadOnly,
    /// Read and write, never executed.
    ReadWrite,
    /// Read and execute, never written.
    ReadExecute,
    /// The boot map only, before the kernel knows its own layout.
    BootReadWriteExecute,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// Write-back cacheable RAM.
    Normal,
    /// Device-nGnRE: MMIO registers.
    Device,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub mem: MemType,
    pub access: Access,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Start, end or physical address not page aligned.
    Misaligned,
    /// Beyond the 39-bit address space.
    OutOfRange,
    /// No memory for a page table.
    NoTableMemory,
}

// MAIR_EL1 slots.
const MAIR_DEVICE_NGNRE: u64 = 0;
const MAIR_NORMAL_WB: u64 = 1;
const MAIR_VALUE: u64 = 0x04 | (0xff << 8);

const DESC_VALID: u64 = 1 << 0;
const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

fn attribute_bits(a: Attributes) -> u64 {
    let mem = match a.mem {
        MemType::Normal => (MAIR_NORMAL_WB << 2) | SH_INNER,
        MemType::Device => MAIR_DEVICE_NGNRE << 2,
    };
    let access = match (a.mem, a.access) {
        (MemType::Device, _) => PXN | UXN,
        (_, Access::ReadOnly) => AP_READ_ONLY | PXN | UXN,
        (_, Access::ReadWrite) => PXN | UXN,
        (_, Access::ReadExecute) => AP_READ_ONLY | UXN,
        (_, Access::BootReadWriteExecute) => UXN,
    };
    mem | access | AF
}

/// One 4 KiB translation table.
#[repr(C, align(4096))]
pub struct Table(pub [u64; ENTRIES]);

impl Table {
    pub const fn empty() -> Self {
        Table([0; ENTRIES])
    }
}

/// Where new tables come from. Must return zeroed, page-aligned, identity-mapped memory
/// that nothing else uses.
pub trait TableSource {
    fn new_table(&mut self) -> Option<*mut Table>;
}

/// The kernel's page tables.
pub struct AddressSpace {
    root: *mut Table,
}

// SAFETY: the tables are reached only through `&mut AddressSpace`, which the memory module
// keeps behind a lock; the raw pointer is never shared elsewhere.
unsafe impl Send for AddressSpace {}

fn level_shift(level: u32) -> u32 {
    12 + 9 * (3 - level)
}

impl AddressSpace {
    /// A new, empty space whose root comes from `tables`.
    pub fn new(tables: &mut dyn TableSource) -> Result<Self, MapError> {
        Ok(Self {
            root: tables.new_table().ok_or(MapError::NoTableMemory)?,
        })
    }

    /// Physical address of the root table, for TTBR0.
    pub fn root_address(&self) -> u64 {
        self.root as u64
    }

    /// Maps `[va, va+size)` to `[pa, pa+size)`, replacing whatever was there.
    pub fn map(&mut self, va: usize, pa: usize, size: usize, attrs: Attributes, tables: &mut dyn TableSource) -> Result<(), MapError> {
        self.update(va, size, Some((pa, attribute_bits(attrs))), tables)
    }

    /// Removes `[va, va+size)`; later accesses fault.
    pub fn unmap(&mut self, va: usize, size: usize, tables: &mut dyn TableSource) -> Result<(), MapError> {
        self.update(va, size, None, tables)
    }

    fn update(&mut self, va: usize, size: usize, target: Option<(usize, u64)>, tables: &mut dyn TableSource) -> Result<(), MapError> {
        let end = va.checked_add(size).ok_or(MapError::OutOfRange)?;
        if !va.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) || target.is_some_and(|(pa, _)| pa % PAGE_SIZE != 0) {
            return Err(MapError::Misaligned);
        }
        if end > VA_LIMIT {
            return Err(MapError::OutOfRange);
        }
        update_level(self.root, 1, va, end, target, tables)
    }

    /// Makes this the active translation (MMU already on) and drops stale TLB entries.
    pub fn activate(&self) {
        barrier::dsb(barrier::ISHST);
        TTBR0_EL1.set(self.root_address());
        barrier::isb(barrier::SY);
        flush_tlb();
    }
}

/// Fills `[va, end)` at `level` of `table`, descending (and splitting blocks) where a whole
/// aligned block cannot be used.
fn update_level(
    table: *mut Table,
    level: u32,
    mut va: usize,
    end: usize,
    mut target: Option<(usize, u64)>,
    tables: &mut dyn TableSource,
) -> Result<(), MapError> {
    let block = 1usize << level_shift(level);
    while va < end {
        let idx = (va >> level_shift(level)) % ENTRIES;
        let next = ((va & !(block - 1)) + block).min(end);
        // SAFETY: `table` is a live table of this address space (see `AddressSpace`), and
        // `idx < 512`.
        let entry = unsafe { &mut (*table).0[idx] };
        let whole_block = va.is_multiple_of(block) && next - va == block && target.is_none_or(|(pa, _)| pa % block == 0);
        if whole_block {
            *entry = match target {
                Some((pa, bits)) => {
                    let kind = if level == 3 { DESC_VALID | DESC_TABLE_OR_PAGE } else { DESC_VALID };
                    (pa as u64 & ADDR_MASK) | bits | kind
                }
                None => 0,
            };
        } else {
            let sub = if *entry & (DESC_VALID | DESC_TABLE_OR_PAGE) == DESC_VALID | DESC_TABLE_OR_PAGE {
                (*entry & ADDR_MASK) as *mut Table
            } else {
                let sub = tables.new_table().ok_or(MapError::NoTableMemory)?;
                if *entry & DESC_VALID != 0 {
                    split_block(*entry, level, sub);
                }
                *entry = sub as u64 | DESC_VALID | DESC_TABLE_OR_PAGE;
                sub
            };
            update_level(sub, level + 1, va, next, target, tables)?;
        }
        if let Some((pa, _)) = target.as_mut() {
            *pa += next - va;
        }
        va = next;
    }
    Ok(())
}

/// Fills the fresh table `sub` with entries equivalent to the block descriptor `entry`.
fn split_block(entry: u64, level: u32, sub: *mut Table) {
    let child = 1u64 << level_shift(level + 1);
    let bits = entry & !ADDR_MASK & !(DESC_VALID | DESC_TABLE_OR_PAGE);
    let kind = if level + 1 == 3 { DESC_VALID | DESC_TABLE_OR_PAGE } else { DESC_VALID };
    let base = entry & ADDR_MASK;
    for i in 0..ENTRIES {
        // SAFETY: `sub` is a fresh table from the TableSource, owned by this space.
        unsafe { (*sub).0[i] = (base + i as u64 * child) | bits | kind };
    }
}

/// Invalidates every EL1 TLB entry on this core.
pub fn flush_tlb() {
    barrier::dsb(barrier::ISHST);
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe { core::arch::asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}

/// Turns on the MMU and caches with `space` as the translation. Called once, at boot.
pub fn enable(space: &AddressSpace) {
    MAIR_EL1.set(MAIR_VALUE);
    let pa_range = ID_AA64MMFR0_EL1.get() & 0xf;
    TCR_EL1.write(
        TCR_EL1::T0SZ.val((64 - 39) as u64)
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::SH0::Inner
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::EPD1::DisableTTBR1Walks
            + TCR_EL1::IPS.val(pa_range.min(5)),
    );
    TTBR0_EL1.set(space.root_address());
    flush_tlb();
    SCTLR_EL1.modify(SCTLR_EL1::M::Enable + SCTLR_EL1::C::Cacheable + SCTLR_EL1::I::Cacheable);
    barrier::isb(barrier::SY);
}
