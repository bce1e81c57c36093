//! ELF validation and loading.

use crate::Outcome;
use loader::elf::{ElfError, MAX_IMAGE_SIZE, MAX_SEGMENTS, PAGE_SIZE};
use loader::{ElfImage, Permission};

/// Images up to this size are also loaded (twice) and checked byte by byte; larger ones
/// are only validated, to keep executions fast (the code paths are the same).
pub const LOAD_CHECK_LIMIT: u64 = 1 << 20;
const BASE_A: u64 = 0x4000_0000;
const BASE_B: u64 = 0x7_1234_5000;
/// The highest page-aligned address: no image fits above it.
const TOP_PAGE: u64 = !(PAGE_SIZE - 1);

/// `ElfImage::parse`: an accepted image's layout, segments and entry point are within its
/// bounds; `load_into` then succeeds in a buffer of `layout().size`, refuses a smaller one
/// or a bad base, and writes exactly the file's segment bytes, zeroes elsewhere, and
/// relocated words (the only bytes that depend on the base) pointing inside the image.
pub fn elf(data: &[u8]) -> Outcome {
    let Ok(img) = ElfImage::parse(data) else {
        return Outcome::Refused;
    };
    let size = img.layout().size;
    assert!(size > 0 && size <= MAX_IMAGE_SIZE && size % PAGE_SIZE == 0, "layout size {size:#x}");
    assert_eq!(img.bytes(), data);
    let segments = img.segments();
    assert!(!segments.is_empty() && segments.len() <= MAX_SEGMENTS);
    let mut previous_end = 0;
    for s in segments {
        assert!(s.filesz <= s.memsz && s.offset + s.filesz <= data.len() as u64, "{s:?}");
        assert!(s.vaddr + s.memsz <= size, "{s:?} past the layout size {size:#x}");
        assert!(s.vaddr / PAGE_SIZE * PAGE_SIZE >= previous_end, "{s:?} shares a page with the one before");
        previous_end = (s.vaddr + s.memsz).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    }
    let entry = img.entry();
    assert!(
        segments
            .iter()
            .any(|s| s.permission == Permission::RX && (s.vaddr..s.vaddr + s.memsz).contains(&entry)),
        "entry {entry:#x} outside every executable segment"
    );
    assert!(img.relocation_count().saturating_mul(24) <= data.len() as u64);
    if size <= LOAD_CHECK_LIMIT {
        check_load(&img, data, size);
    }
    Outcome::Accepted
}

fn check_load(img: &ElfImage, data: &[u8], size: u64) {
    let n = size as usize;
    let mut short = vec![0u8; n - 1];
    assert_eq!(
        img.load_into(&mut short, BASE_A).err(),
        Some(ElfError::DestinationTooSmall { need: size, have: size - 1 })
    );
    let mut a = vec![0u8; n];
    assert_eq!(img.load_into(&mut a, BASE_A + 8).err(), Some(ElfError::BadBase(BASE_A + 8)));
    assert_eq!(img.load_into(&mut a, TOP_PAGE).err(), Some(ElfError::BadBase(TOP_PAGE)));
    // Loaded over old contents (0xa5 here): what was there must not show through.
    let mut b = vec![0xa5u8; n + 100];
    let loaded = img.load_into(&mut a, BASE_A).expect("a validated image loads into layout().size bytes");
    img.load_into(&mut b, BASE_B).expect("a validated image loads at any page-aligned base");
    assert!(b[n..].iter().all(|&x| x == 0xa5), "load_into wrote past layout().size");
    assert_eq!(loaded.len(), img.segments().len());
    for (l, s) in loaded.iter().zip(img.segments()) {
        assert_eq!(l.permission, s.permission);
        assert!(l.offset % PAGE_SIZE == 0 && l.size % PAGE_SIZE == 0 && l.offset + l.size <= size, "{l:?}");
        assert!(l.offset <= s.vaddr && s.vaddr + s.memsz <= l.offset + l.size, "{l:?} does not cover {s:?}");
    }
    // What the image is without relocations: the file's segment bytes, zeroes elsewhere.
    let mut plain = vec![0u8; n];
    for s in img.segments() {
        let (v, o, f) = (s.vaddr as usize, s.offset as usize, s.filesz as usize);
        plain[v..v + f].copy_from_slice(&data[o..o + f]);
    }
    for at in (0..n).step_by(8) {
        let word = |m: &[u8]| u64::from_le_bytes(m[at..at + 8].try_into().expect("8 bytes"));
        if a[at..at + 8] == b[at..at + 8] {
            assert_eq!(a[at..at + 8], plain[at..at + 8], "byte {at:#x} is neither the file's, zero, nor relocated");
        } else {
            // A relocated word: base + addend, with the addend inside the image.
            let addend = word(&a).wrapping_sub(BASE_A);
            assert!(addend <= size, "word at {at:#x} points {addend:#x} past the image");
            assert_eq!(word(&b).wrapping_sub(BASE_B), addend, "word at {at:#x} does not move with the base");
        }
    }
}
