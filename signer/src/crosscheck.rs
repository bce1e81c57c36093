//! A second, independent view of a domain ELF, from `goblin`, compared with the loader's.
//!
//! The kernel trusts exactly what `loader::elf::ElfImage` reads. A reviewer (or a tool
//! such as `readelf`) reads the same file with another parser; if the two read different
//! segments, entry points or relocations from one file, what was reviewed is not what
//! runs. `qvq-sign sign` therefore refuses an ELF unless both parsers accept it and agree.
//!
//! What is compared, for an ELF the loader accepts:
//! * the entry point (`e_entry`);
//! * every `PT_LOAD` segment, in order: virtual address, file offset, file size, memory
//!   size, and whether it is writable and whether it is executable (the loader maps every
//!   segment readable, so `PF_R` is not compared);
//! * every dynamic relocation, in order: offset, type, symbol index and addend. goblin's
//!   REL and PLT tables are included, so a table the loader ignores shows up as extra
//!   relocations.

use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_LOAD};
use goblin::elf::reloc::r_to_str;
use loader::elf::{ElfError, ElfImage, Permission};
use std::fmt;

/// One loadable segment, as either parser reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentView {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
    /// `PF_R | PF_W | PF_X` bits (goblin: as in the file; loader: from its permission).
    pub flags: u32,
}

impl SegmentView {
    /// The bits both parsers act on: writable, executable.
    fn access(&self) -> u32 {
        self.flags & (PF_W | PF_X)
    }
}

/// `PF_*` flags as `RWX` letters (`-` for a missing one).
pub fn flags_str(flags: u32) -> String {
    [(PF_R, 'R'), (PF_W, 'W'), (PF_X, 'X')]
        .iter()
        .map(|&(bit, c)| if flags & bit != 0 { c } else { '-' })
        .collect()
}

impl fmt::Display for SegmentView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vaddr {:#x} offset {:#x} filesz {:#x} memsz {:#x} {}",
            self.vaddr,
            self.offset,
            self.filesz,
            self.memsz,
            flags_str(self.flags)
        )
    }
}

/// One dynamic relocation, as either parser reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelocationView {
    pub offset: u64,
    pub r_type: u32,
    pub symbol: u64,
    /// `None` for a REL entry (no addend field).
    pub addend: Option<i64>,
}

impl fmt::Display for RelocationView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {:#x}, symbol {}", relocation_name(self.r_type), self.offset, self.symbol)?;
        match self.addend {
            Some(a) => write!(f, ", addend {a:#x}"),
            None => write!(f, ", no addend"),
        }
    }
}

/// An AArch64 relocation type's name (`R_AARCH64_RELATIVE`), or its number if unknown.
pub fn relocation_name(r_type: u32) -> String {
    match r_to_str(r_type, goblin::elf::header::EM_AARCH64) {
        "UNKNOWN_RELOC" => format!("type {r_type}"),
        name => format!("R_{name}"),
    }
}

/// What one parser reads from an ELF: the parts the loader acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfView {
    pub entry: u64,
    pub segments: Vec<SegmentView>,
    pub relocations: Vec<RelocationView>,
}

impl ElfView {
    /// `(name, count)` of each relocation type present, in order of first appearance.
    pub fn relocation_kinds(&self) -> Vec<(String, usize)> {
        let mut kinds: Vec<(u32, usize)> = Vec::new();
        for r in &self.relocations {
            match kinds.iter_mut().find(|(t, _)| *t == r.r_type) {
                Some((_, n)) => *n += 1,
                None => kinds.push((r.r_type, 1)),
            }
        }
        kinds.into_iter().map(|(t, n)| (relocation_name(t), n)).collect()
    }
}

/// The loader's view of an image it accepted.
pub fn loader_view(image: &ElfImage<'_>) -> ElfView {
    ElfView {
        entry: image.entry(),
        segments: image
            .segments()
            .iter()
            .map(|s| SegmentView {
                vaddr: s.vaddr,
                offset: s.offset,
                filesz: s.filesz,
                memsz: s.memsz,
                flags: match s.permission {
                    Permission::R => PF_R,
                    Permission::RW => PF_R | PF_W,
                    Permission::RX => PF_R | PF_X,
                },
            })
            .collect(),
        relocations: image
            .relocations()
            .map(|(offset, info, addend)| RelocationView {
                offset,
                r_type: info as u32,
                symbol: info >> 32,
                addend: Some(addend),
            })
            .collect(),
    }
}

/// goblin's view of `elf` (strict parsing), or why goblin cannot parse it.
pub fn goblin_view(elf: &[u8]) -> Result<ElfView, String> {
    let parsed = goblin::elf::Elf::parse(elf).map_err(|e| e.to_string())?;
    let segments = parsed
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .map(|p| SegmentView {
            vaddr: p.p_vaddr,
            offset: p.p_offset,
            filesz: p.p_filesz,
            memsz: p.p_memsz,
            flags: p.p_flags & (PF_R | PF_W | PF_X),
        })
        .collect();
    let relocations = parsed
        .dynrelas
        .iter()
        .chain(parsed.dynrels.iter())
        .chain(parsed.pltrelocs.iter())
        .map(|r| RelocationView {
            offset: r.r_offset,
            r_type: r.r_type,
            symbol: r.r_sym as u64,
            addend: r.r_addend,
        })
        .collect();
    Ok(ElfView {
        entry: parsed.entry,
        segments,
        relocations,
    })
}

/// Where two views of one ELF differ (the first difference found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disagreement {
    Entry {
        loader: u64,
        goblin: u64,
    },
    SegmentCount {
        loader: usize,
        goblin: usize,
    },
    Segment {
        index: usize,
        loader: SegmentView,
        goblin: SegmentView,
    },
    RelocationCount {
        loader: usize,
        goblin: usize,
    },
    Relocation {
        index: usize,
        loader: RelocationView,
        goblin: RelocationView,
    },
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Disagreement::*;
        match self {
            Entry { loader, goblin } => write!(f, "the entry point: loader {loader:#x}, goblin {goblin:#x}"),
            SegmentCount { loader, goblin } => write!(f, "the number of PT_LOAD segments: loader {loader}, goblin {goblin}"),
            Segment { index, loader, goblin } => write!(f, "PT_LOAD segment {index}: loader {loader}; goblin {goblin}"),
            RelocationCount { loader, goblin } => write!(f, "the number of dynamic relocations: loader {loader}, goblin {goblin}"),
            Relocation { index, loader, goblin } => write!(f, "dynamic relocation {index}: loader {loader}; goblin {goblin}"),
        }
    }
}

/// The first difference between the loader's view and goblin's, if any.
pub fn compare(loader: &ElfView, goblin: &ElfView) -> Result<(), Disagreement> {
    if loader.entry != goblin.entry {
        return Err(Disagreement::Entry {
            loader: loader.entry,
            goblin: goblin.entry,
        });
    }
    if loader.segments.len() != goblin.segments.len() {
        return Err(Disagreement::SegmentCount {
            loader: loader.segments.len(),
            goblin: goblin.segments.len(),
        });
    }
    for (index, (l, g)) in loader.segments.iter().zip(&goblin.segments).enumerate() {
        let same = (l.vaddr, l.offset, l.filesz, l.memsz, l.access()) == (g.vaddr, g.offset, g.filesz, g.memsz, g.access());
        if !same {
            return Err(Disagreement::Segment { index, loader: *l, goblin: *g });
        }
    }
    if loader.relocations.len() != goblin.relocations.len() {
        return Err(Disagreement::RelocationCount {
            loader: loader.relocations.len(),
            goblin: goblin.relocations.len(),
        });
    }
    for (index, (l, g)) in loader.relocations.iter().zip(&goblin.relocations).enumerate() {
        if l != g {
            return Err(Disagreement::Relocation { index, loader: *l, goblin: *g });
        }
    }
    Ok(())
}

/// Why [`crosscheck`] did not pass an ELF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrossCheckError {
    /// The loader (and so the kernel) rejects the ELF.
    Loader(ElfError),
    /// The loader accepts the ELF but goblin cannot parse it.
    Goblin(String),
    /// Both parse it and read it differently.
    Disagree(Disagreement),
}

impl fmt::Display for CrossCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrossCheckError::Loader(e) => write!(f, "the kernel would reject this ELF: {e}"),
            CrossCheckError::Goblin(e) => write!(
                f,
                "the loader accepts this ELF but goblin cannot parse it ({e}); refusing an ELF other tools cannot read"
            ),
            CrossCheckError::Disagree(d) => write!(f, "goblin and the loader disagree on {d}"),
        }
    }
}

/// Parses `elf` with the loader and, if it accepts, with goblin, and compares the two
/// views. `Ok` means both accept it and agree on entry point, loadable segments and
/// relocations.
pub fn crosscheck(elf: &[u8]) -> Result<(), CrossCheckError> {
    let image = ElfImage::parse(elf).map_err(CrossCheckError::Loader)?;
    let goblin = goblin_view(elf).map_err(CrossCheckError::Goblin)?;
    compare(&loader_view(&image), &goblin).map_err(CrossCheckError::Disagree)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real sample domain (`cargo xtask test` builds it and passes its path).
    fn sample_elf() -> Vec<u8> {
        let path = std::env::var("QVQ_SAMPLE_DOMAIN_ELF")
            .expect("QVQ_SAMPLE_DOMAIN_ELF is not set: run these tests with `cargo xtask test`, which builds domains/sample first");
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    }

    fn put_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put_u64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// File offset of the first program header of type `p_type`.
    fn phdr_of(b: &[u8], p_type: u32) -> usize {
        let (phoff, phnum) = (u64_at(b, 32) as usize, u16::from_le_bytes([b[56], b[57]]) as usize);
        (0..phnum)
            .map(|i| phoff + i * 56)
            .find(|&at| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) == p_type)
            .unwrap_or_else(|| panic!("no program header of type {p_type:#x}"))
    }

    #[test]
    fn the_real_sample_domain_agrees() {
        let elf = sample_elf();
        assert_eq!(crosscheck(&elf), Ok(()));
        let view = goblin_view(&elf).unwrap();
        assert_eq!(view, loader_view(&ElfImage::parse(&elf).unwrap()));
        assert!(view.segments.iter().any(|s| s.flags == PF_R | PF_X), "{view:?}");
        assert!(!view.relocations.is_empty());
        assert_eq!(view.relocation_kinds(), vec![("R_AARCH64_RELATIVE".to_string(), view.relocations.len())]);
    }

    #[test]
    fn each_kind_of_difference_is_named() {
        let elf = sample_elf();
        let loader = loader_view(&ElfImage::parse(&elf).unwrap());
        let changed = |f: &dyn Fn(&mut ElfView)| {
            let mut g = loader.clone();
            f(&mut g);
            compare(&loader, &g).unwrap_err().to_string()
        };
        assert!(changed(&|g| g.entry += 4).starts_with("the entry point: loader 0x"));
        assert!(changed(&|g| {
            g.segments.pop();
        })
        .starts_with("the number of PT_LOAD segments"));
        assert!(changed(&|g| g.segments[1].memsz += 0x1000).starts_with("PT_LOAD segment 1: loader vaddr"));
        assert!(changed(&|g| g.segments[0].flags |= PF_W).contains("goblin vaddr 0x0 offset 0x0"));
        assert!(changed(&|g| g.relocations.push(g.relocations[0])).starts_with("the number of dynamic relocations"));
        assert!(changed(&|g| g.relocations[2].addend = Some(-8)).starts_with("dynamic relocation 2: loader R_AARCH64_RELATIVE at"));
        assert!(changed(&|g| g.relocations[0].symbol = 1).contains("symbol 1"));
        // PF_R alone is not compared: the loader maps every segment readable.
        let mut g = loader.clone();
        g.segments[1].flags &= !PF_R;
        assert_eq!(compare(&loader, &g), Ok(()));
    }

    #[test]
    fn a_second_pt_dynamic_is_refused_by_the_loader() {
        // The loader used to read the last PT_DYNAMIC, goblin (like readelf) reads the
        // first: with PT_GNU_STACK (after the real one) turned into an empty PT_DYNAMIC the
        // kernel applied no relocations while every other tool showed four. The
        // elf_differential fuzz target found it; the loader now refuses a second one.
        let mut elf = sample_elf();
        let at = phdr_of(&elf, 0x6474_e551);
        assert!(at > phdr_of(&elf, 2));
        put_u32(&mut elf, at, 2);
        put_u64(&mut elf, at + 8, 0);
        put_u64(&mut elf, at + 32, 0);
        assert!(!goblin_view(&elf).unwrap().relocations.is_empty());
        assert_eq!(crosscheck(&elf), Err(CrossCheckError::Loader(ElfError::MultipleDynamic)));
    }

    #[test]
    fn a_rela_size_without_a_table_is_refused_by_the_loader() {
        // Found by the elf_differential fuzz target: with DT_RELA gone and DT_RELASZ kept,
        // goblin read relocations at file offset 0 while the loader applied none.
        let mut elf = sample_elf();
        let dynamic = u64_at(&elf, phdr_of(&elf, 2) + 8) as usize;
        let at = (0..15).map(|i| dynamic + 16 * i).find(|&at| u64_at(&elf, at) == 7).unwrap();
        put_u64(&mut elf, at, 21); // DT_RELA -> DT_DEBUG
        assert_eq!(crosscheck(&elf), Err(CrossCheckError::Loader(ElfError::RelaSizeWithoutTable)));
    }

    #[test]
    fn an_elf_goblin_cannot_parse_is_refused() {
        // Section headers past the end of the file: the loader never reads them, goblin does.
        let mut elf = sample_elf();
        put_u64(&mut elf, 40, 1 << 40);
        let e = crosscheck(&elf).unwrap_err();
        assert!(matches!(e, CrossCheckError::Goblin(_)), "{e:?}");
        assert!(e.to_string().starts_with("the loader accepts this ELF but goblin cannot parse it ("), "{e}");
    }

    #[test]
    fn one_sided_rejections_are_not_disagreements() {
        let mut elf = sample_elf();
        elf[16] = 2; // ET_EXEC: the loader refuses, goblin would read it.
        assert!(matches!(crosscheck(&elf), Err(CrossCheckError::Loader(ElfError::NotPie { e_type: 2 }))));
        assert!(goblin_view(&elf).is_ok());
    }
}
