//! Validation and relocation of domain ELFs.
//!
//! Accepted: little-endian ELF64, AArch64, `ET_DYN` (static PIE). `PT_LOAD` segments lie in
//! the file, are page-congruent, in ascending order and do not share pages; none is both
//! writable and executable; the entry point is in an executable segment; no `PT_INTERP`,
//! no `DT_NEEDED`, no PLT/REL/RELR relocations; every dynamic relocation is
//! `R_AARCH64_RELATIVE` (or `NONE`) and writes 8 aligned bytes inside a loaded segment.
//!
//! This is a small parser of QvQ's own rather than a general ELF crate: it reads only what
//! the checks need, and every read is bounds-checked so that malformed input yields an
//! [`ElfError`], never a panic.

use alloc::vec::Vec;
use core::fmt;

pub const PAGE_SIZE: u64 = 4096;
/// Largest memory image a domain may have.
pub const MAX_IMAGE_SIZE: u64 = 64 << 20;
/// Most `PT_LOAD` segments accepted.
pub const MAX_SEGMENTS: usize = 8;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const RELA_SIZE: u64 = 24;
const ET_DYN: u16 = 3;
const EM_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_PLTRELSZ: u64 = 2;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const DT_RELAENT: u64 = 9;
const DT_REL: u64 = 17;
const DT_RELSZ: u64 = 18;
const DT_JMPREL: u64 = 23;
const DT_RELRSZ: u64 = 35;
const DT_RELR: u64 = 36;
pub const R_AARCH64_NONE: u32 = 0;
pub const R_AARCH64_RELATIVE: u32 = 1027;

/// Memory permission of a loaded segment. Never writable and executable at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    R,
    RW,
    RX,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::R => "R",
            Permission::RW => "RW",
            Permission::RX => "RX",
        })
    }
}

/// Why an ELF was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    TooShort,
    NotElf,
    Not64Bit,
    NotLittleEndian,
    BadVersion,
    NotPie {
        e_type: u16,
    },
    WrongMachine {
        e_machine: u16,
    },
    BadHeaderSize,
    ProgramHeadersOutOfFile,
    TooManySegments,
    NoLoadableSegment,
    SegmentOutOfFile {
        index: usize,
    },
    FileSizeExceedsMemSize {
        index: usize,
    },
    BadAlignment {
        index: usize,
    },
    SegmentsOverlap {
        index: usize,
    },
    WritableAndExecutable {
        index: usize,
    },
    ImageTooLarge {
        size: u64,
    },
    EntryNotExecutable {
        entry: u64,
    },
    HasInterpreter,
    NeedsLibrary,
    DynamicOutOfFile,
    /// A second `PT_DYNAMIC`: tools disagree on which one counts (readelf and goblin read
    /// the first), so what a reviewer sees need not be what would be loaded.
    MultipleDynamic,
    /// `DT_RELASZ` > 0 without `DT_RELA`: a table of unknown place (goblin reads it at file
    /// offset 0; the loader would have applied nothing).
    RelaSizeWithoutTable,
    UnsupportedRelocationTable(&'static str),
    BadRelaEntrySize(u64),
    RelocationsOutOfFile,
    UnsupportedRelocation {
        index: u64,
        r_type: u32,
    },
    RelocationWithSymbol {
        index: u64,
    },
    RelocationOutOfImage {
        index: u64,
        offset: u64,
    },
    RelocationMisaligned {
        index: u64,
        offset: u64,
    },
    AddendOutOfImage {
        index: u64,
        addend: i64,
    },
    /// `load_into`: destination smaller than `layout().size`.
    DestinationTooSmall {
        need: u64,
        have: u64,
    },
    /// `load_into`: base not page aligned, or base + size overflows.
    BadBase(u64),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ElfError::*;
        match self {
            TooShort => write!(f, "ELF: shorter than an ELF64 header"),
            NotElf => write!(f, "ELF: bad magic (not an ELF file)"),
            Not64Bit => write!(f, "ELF: not ELF64"),
            NotLittleEndian => write!(f, "ELF: not little-endian"),
            BadVersion => write!(f, "ELF: unknown ELF version"),
            NotPie { e_type } => write!(f, "ELF: type {e_type} is not ET_DYN (link as a static PIE)"),
            WrongMachine { e_machine } => write!(f, "ELF: machine {e_machine} is not AArch64 (183)"),
            BadHeaderSize => write!(f, "ELF: unexpected header or program header size"),
            ProgramHeadersOutOfFile => write!(f, "ELF: program headers lie outside the file"),
            TooManySegments => write!(f, "ELF: more than {MAX_SEGMENTS} loadable segments"),
            NoLoadableSegment => write!(f, "ELF: no PT_LOAD segment"),
            SegmentOutOfFile { index } => write!(f, "ELF: segment {index} lies outside the file"),
            FileSizeExceedsMemSize { index } => write!(f, "ELF: segment {index} has p_filesz > p_memsz"),
            BadAlignment { index } => write!(f, "ELF: segment {index} is not page aligned/congruent"),
            SegmentsOverlap { index } => write!(f, "ELF: segment {index} overlaps or shares a page with the previous one"),
            WritableAndExecutable { index } => write!(f, "ELF: segment {index} is both writable and executable (W^X)"),
            ImageTooLarge { size } => write!(f, "ELF: memory image of {size} bytes exceeds the {MAX_IMAGE_SIZE}-byte limit"),
            EntryNotExecutable { entry } => write!(f, "ELF: entry point {entry:#x} is not in an executable segment"),
            HasInterpreter => write!(f, "ELF: has PT_INTERP (domains are static)"),
            NeedsLibrary => write!(f, "ELF: has DT_NEEDED (domains link no shared libraries)"),
            DynamicOutOfFile => write!(f, "ELF: dynamic section lies outside the file or its segments"),
            MultipleDynamic => write!(f, "ELF: more than one PT_DYNAMIC"),
            RelaSizeWithoutTable => write!(f, "ELF: DT_RELASZ without DT_RELA"),
            UnsupportedRelocationTable(t) => write!(f, "ELF: unsupported relocation table {t} (only DT_RELA)"),
            BadRelaEntrySize(s) => write!(f, "ELF: DT_RELAENT is {s}, expected 24"),
            RelocationsOutOfFile => write!(f, "ELF: relocation table lies outside the file"),
            UnsupportedRelocation { index, r_type } => write!(f, "ELF: relocation {index} has type {r_type}; only R_AARCH64_RELATIVE is accepted"),
            RelocationWithSymbol { index } => write!(f, "ELF: relocation {index} refers to a symbol"),
            RelocationOutOfImage { index, offset } => write!(f, "ELF: relocation {index} writes at {offset:#x}, outside every loaded segment"),
            RelocationMisaligned { index, offset } => write!(f, "ELF: relocation {index} at {offset:#x} is not 8-byte aligned"),
            AddendOutOfImage { index, addend } => write!(f, "ELF: relocation {index} addend {addend:#x} points outside the image"),
            DestinationTooSmall { need, have } => write!(f, "load: destination has {have} bytes, the image needs {need}"),
            BadBase(b) => write!(f, "load: base {b:#x} is not page aligned or overflows"),
        }
    }
}

fn rd<const N: usize>(b: &[u8], at: u64) -> Option<[u8; N]> {
    let at = usize::try_from(at).ok()?;
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn u16_at(b: &[u8], at: u64) -> Option<u16> {
    rd::<2>(b, at).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: u64) -> Option<u32> {
    rd::<4>(b, at).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: u64) -> Option<u64> {
    rd::<8>(b, at).map(u64::from_le_bytes)
}

/// One loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub permission: Permission,
}

impl Segment {
    fn page_start(&self) -> u64 {
        self.vaddr & !(PAGE_SIZE - 1)
    }
    fn page_end(&self) -> Option<u64> {
        Some(self.vaddr.checked_add(self.memsz)?.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
    }
}

/// Where a loaded segment ended up, page-rounded, for the kernel to map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedSegment {
    /// Offset from the load base.
    pub offset: u64,
    pub size: u64,
    pub permission: Permission,
}

/// Memory a domain image needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub size: u64,
    pub align: u64,
}

/// A fully validated domain ELF.
#[derive(Clone, Debug)]
pub struct ElfImage<'a> {
    bytes: &'a [u8],
    segments: Vec<Segment>,
    entry: u64,
    rela_offset: u64,
    rela_count: u64,
    span: u64,
}

fn file_offset_of(segments: &[Segment], vaddr: u64, len: u64) -> Option<u64> {
    segments.iter().find_map(|s| {
        let end = vaddr.checked_add(len)?;
        (vaddr >= s.vaddr && end <= s.vaddr.checked_add(s.filesz)?).then(|| s.offset + (vaddr - s.vaddr))
    })
}

impl<'a> ElfImage<'a> {
    /// Checks everything the loader relies on. One pass over headers and relocations.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        use ElfError::*;
        if bytes.len() < EHDR_SIZE {
            return Err(TooShort);
        }
        if bytes[..4] != *b"\x7fELF" {
            return Err(NotElf);
        }
        if bytes[4] != 2 {
            return Err(Not64Bit);
        }
        if bytes[5] != 1 {
            return Err(NotLittleEndian);
        }
        if bytes[6] != 1 || u32_at(bytes, 20) != Some(1) {
            return Err(BadVersion);
        }
        let e_type = u16_at(bytes, 16).ok_or(TooShort)?;
        if e_type != ET_DYN {
            return Err(NotPie { e_type });
        }
        let e_machine = u16_at(bytes, 18).ok_or(TooShort)?;
        if e_machine != EM_AARCH64 {
            return Err(WrongMachine { e_machine });
        }
        let entry = u64_at(bytes, 24).ok_or(TooShort)?;
        let phoff = u64_at(bytes, 32).ok_or(TooShort)?;
        if u16_at(bytes, 52) != Some(EHDR_SIZE as u16) || u16_at(bytes, 54) != Some(PHDR_SIZE as u16) {
            return Err(BadHeaderSize);
        }
        let phnum = u16_at(bytes, 56).ok_or(TooShort)? as u64;
        let ph_end = phnum
            .checked_mul(PHDR_SIZE as u64)
            .and_then(|n| n.checked_add(phoff))
            .ok_or(ProgramHeadersOutOfFile)?;
        if ph_end > bytes.len() as u64 {
            return Err(ProgramHeadersOutOfFile);
        }

        let mut segments: Vec<Segment> = Vec::new();
        let mut dynamic = None;
        for i in 0..phnum {
            let ph = phoff + i * PHDR_SIZE as u64;
            let field = |o| u64_at(bytes, ph + o).ok_or(ProgramHeadersOutOfFile);
            let p_type = u32_at(bytes, ph).ok_or(ProgramHeadersOutOfFile)?;
            let p_flags = u32_at(bytes, ph + 4).ok_or(ProgramHeadersOutOfFile)?;
            let (offset, vaddr, filesz, memsz, align) = (field(8)?, field(16)?, field(32)?, field(40)?, field(48)?);
            match p_type {
                PT_INTERP => return Err(HasInterpreter),
                PT_DYNAMIC if dynamic.is_some() => return Err(MultipleDynamic),
                PT_DYNAMIC => dynamic = Some((offset, filesz)),
                PT_LOAD => {
                    let index = segments.len();
                    if index == MAX_SEGMENTS {
                        return Err(TooManySegments);
                    }
                    if offset.checked_add(filesz).is_none_or(|end| end > bytes.len() as u64) {
                        return Err(SegmentOutOfFile { index });
                    }
                    if filesz > memsz {
                        return Err(FileSizeExceedsMemSize { index });
                    }
                    if !align.is_power_of_two() || align < PAGE_SIZE || offset % PAGE_SIZE != vaddr % PAGE_SIZE {
                        return Err(BadAlignment { index });
                    }
                    let permission = match (p_flags & PF_W != 0, p_flags & PF_X != 0) {
                        (true, true) => return Err(WritableAndExecutable { index }),
                        (true, false) => Permission::RW,
                        (false, true) => Permission::RX,
                        (false, false) => Permission::R,
                    };
                    let seg = Segment {
                        vaddr,
                        memsz,
                        offset,
                        filesz,
                        permission,
                    };
                    let end = seg.page_end().ok_or(ImageTooLarge { size: u64::MAX })?;
                    if end > MAX_IMAGE_SIZE {
                        return Err(ImageTooLarge { size: end });
                    }
                    if let Some(prev) = segments.last() {
                        if seg.page_start() < prev.page_end().unwrap_or(u64::MAX) {
                            return Err(SegmentsOverlap { index });
                        }
                    }
                    segments.push(seg);
                }
                _ => {}
            }
        }
        let span = segments.last().ok_or(NoLoadableSegment)?.page_end().ok_or(ImageTooLarge { size: u64::MAX })?;
        if !segments
            .iter()
            .any(|s| s.permission == Permission::RX && entry >= s.vaddr && entry - s.vaddr < s.memsz)
        {
            return Err(EntryNotExecutable { entry });
        }

        let (mut rela, mut relasz, mut relaent) = (None, 0u64, RELA_SIZE);
        if let Some((offset, filesz)) = dynamic {
            if offset.checked_add(filesz).is_none_or(|e| e > bytes.len() as u64) {
                return Err(DynamicOutOfFile);
            }
            let mut at = offset;
            while at + 16 <= offset + filesz {
                let (tag, val) = (u64_at(bytes, at).ok_or(DynamicOutOfFile)?, u64_at(bytes, at + 8).ok_or(DynamicOutOfFile)?);
                match tag {
                    DT_NULL => break,
                    DT_NEEDED => return Err(NeedsLibrary),
                    DT_RELA => rela = Some(val),
                    DT_RELASZ => relasz = val,
                    DT_RELAENT => relaent = val,
                    DT_REL | DT_RELSZ if val != 0 => return Err(UnsupportedRelocationTable("DT_REL")),
                    DT_JMPREL | DT_PLTRELSZ if val != 0 => return Err(UnsupportedRelocationTable("DT_JMPREL (PLT)")),
                    DT_RELR | DT_RELRSZ if val != 0 => return Err(UnsupportedRelocationTable("DT_RELR")),
                    _ => {}
                }
                at += 16;
            }
        }
        if relaent != RELA_SIZE {
            return Err(BadRelaEntrySize(relaent));
        }
        let (rela_offset, rela_count) = match rela {
            Some(vaddr) if relasz > 0 => (file_offset_of(&segments, vaddr, relasz).ok_or(RelocationsOutOfFile)?, relasz / RELA_SIZE),
            None if relasz > 0 => return Err(RelaSizeWithoutTable),
            _ => (0, 0),
        };
        if relasz % RELA_SIZE != 0 {
            return Err(BadRelaEntrySize(relasz));
        }
        let image = ElfImage {
            bytes,
            segments,
            entry,
            rela_offset,
            rela_count,
            span,
        };
        image.check_relocations()?;
        Ok(image)
    }

    fn relocation(&self, index: u64) -> (u64, u64, i64) {
        let at = self.rela_offset + index * RELA_SIZE;
        // In bounds: `parse` checked the whole table lies in the file.
        let get = |o| u64_at(self.bytes, at + o).unwrap_or(0);
        (get(0), get(8), get(16) as i64)
    }

    fn check_relocations(&self) -> Result<(), ElfError> {
        for index in 0..self.rela_count {
            let (offset, info, addend) = self.relocation(index);
            let r_type = info as u32;
            match r_type {
                R_AARCH64_NONE => continue,
                R_AARCH64_RELATIVE => {}
                _ => return Err(ElfError::UnsupportedRelocation { index, r_type }),
            }
            if info >> 32 != 0 {
                return Err(ElfError::RelocationWithSymbol { index });
            }
            if offset % 8 != 0 {
                return Err(ElfError::RelocationMisaligned { index, offset });
            }
            let inside = self
                .segments
                .iter()
                .any(|s| offset >= s.vaddr && offset.checked_add(8).is_some_and(|e| e <= s.vaddr.saturating_add(s.memsz)));
            if !inside {
                return Err(ElfError::RelocationOutOfImage { index, offset });
            }
            if addend < 0 || addend as u64 > self.span {
                return Err(ElfError::AddendOutOfImage { index, addend });
            }
        }
        Ok(())
    }

    /// Memory needed to load the image.
    pub fn layout(&self) -> Layout {
        Layout {
            size: self.span,
            align: PAGE_SIZE,
        }
    }

    /// The ELF file this image was parsed from.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Entry point as an offset from the load base.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    pub fn relocation_count(&self) -> u64 {
        self.rela_count
    }

    /// The RELA table as stored in the file: `(r_offset, r_info, r_addend)` for each entry,
    /// in order (R_AARCH64_NONE entries included). For tools that compare this view with
    /// another ELF parser's.
    pub fn relocations(&self) -> impl Iterator<Item = (u64, u64, i64)> + '_ {
        (0..self.rela_count).map(|index| self.relocation(index))
    }

    /// Copies the segments into `dest` (which will live at address `base`), zeroes BSS
    /// and gaps, applies the relocations, and returns the permission of every segment.
    pub fn load_into(&self, dest: &mut [u8], base: u64) -> Result<Vec<LoadedSegment>, ElfError> {
        if (dest.len() as u64) < self.span {
            return Err(ElfError::DestinationTooSmall {
                need: self.span,
                have: dest.len() as u64,
            });
        }
        if !base.is_multiple_of(PAGE_SIZE) || base.checked_add(self.span).is_none() {
            return Err(ElfError::BadBase(base));
        }
        let dest = &mut dest[..self.span as usize];
        dest.fill(0);
        let mut loaded = Vec::with_capacity(self.segments.len());
        for s in &self.segments {
            // All in bounds: checked by `parse` (file range) and by `span` (memory range).
            let src = &self.bytes[s.offset as usize..(s.offset + s.filesz) as usize];
            dest[s.vaddr as usize..(s.vaddr + s.filesz) as usize].copy_from_slice(src);
            let start = s.page_start();
            loaded.push(LoadedSegment {
                offset: start,
                size: s.page_end().unwrap_or(start) - start,
                permission: s.permission,
            });
        }
        for index in 0..self.rela_count {
            let (offset, info, addend) = self.relocation(index);
            if info as u32 == R_AARCH64_RELATIVE {
                let value = base + addend as u64;
                dest[offset as usize..offset as usize + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        Ok(loaded)
    }
}
