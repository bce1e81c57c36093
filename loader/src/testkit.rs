//! A builder for small synthetic domain ELFs, shaped like what `ld.lld -pie` makes for
//! a QvQ domain: an RX segment with headers and code, an RW segment with `.dynamic`, the
//! RELA table, relocated words and BSS. Used by unit tests and benchmarks (not shipped).

pub const PAGE: usize = 4096;
pub const R_AARCH64_RELATIVE: u64 = 1027;

pub struct TestElf {
    pub bytes: Vec<u8>,
    /// File offsets of interesting parts, for targeted corruption.
    pub phdr_at: usize,
    pub dynamic_at: usize,
    pub rela_at: usize,
    pub words_at: usize,
    pub data_vaddr: usize,
    pub relocs: usize,
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// `text` bytes of code (at least a page), `relocs` relocated words, `bss` bytes of BSS.
pub fn build(text: usize, relocs: usize, bss: usize) -> TestElf {
    let text = text.max(PAGE).div_ceil(PAGE) * PAGE;
    let data_vaddr = text;
    let dynamic_at = data_vaddr;
    let rela_at = dynamic_at + 4 * 16;
    let words_at = (rela_at + relocs * 24).div_ceil(8) * 8;
    let file_len = words_at + relocs * 8;
    let mut b = vec![0u8; file_len];
    // ELF header
    put(&mut b, 0, b"\x7fELF\x02\x01\x01");
    put(&mut b, 16, &3u16.to_le_bytes()); // ET_DYN
    put(&mut b, 18, &183u16.to_le_bytes()); // AArch64
    put(&mut b, 20, &1u32.to_le_bytes());
    put(&mut b, 24, &256u64.to_le_bytes()); // entry
    put(&mut b, 32, &64u64.to_le_bytes()); // phoff
    put(&mut b, 52, &64u16.to_le_bytes());
    put(&mut b, 54, &56u16.to_le_bytes());
    put(&mut b, 56, &3u16.to_le_bytes());
    // Code: `nop`s.
    for at in (256..text).step_by(4) {
        put(&mut b, at, &0xd503_201fu32.to_le_bytes());
    }
    let phdr = |b: &mut Vec<u8>, i: usize, ty: u32, flags: u32, off: usize, filesz: usize, memsz: usize, align: usize| {
        let at = 64 + i * 56;
        put(b, at, &ty.to_le_bytes());
        put(b, at + 4, &flags.to_le_bytes());
        for (o, v) in [(8, off), (16, off), (24, off), (32, filesz), (40, memsz), (48, align)] {
            put(b, at + o, &(v as u64).to_le_bytes());
        }
    };
    phdr(&mut b, 0, 1, 5, 0, text, text, 0x10000); // PT_LOAD R+X
    phdr(&mut b, 1, 1, 6, data_vaddr, file_len - data_vaddr, file_len - data_vaddr + bss, 0x10000); // PT_LOAD R+W
    phdr(&mut b, 2, 2, 6, dynamic_at, 64, 64, 8); // PT_DYNAMIC
    for (i, (tag, val)) in [(7u64, rela_at as u64), (8, (relocs * 24) as u64), (9, 24), (0, 0)].into_iter().enumerate() {
        put(&mut b, dynamic_at + i * 16, &tag.to_le_bytes());
        put(&mut b, dynamic_at + i * 16 + 8, &val.to_le_bytes());
    }
    for r in 0..relocs {
        let at = rela_at + r * 24;
        put(&mut b, at, &((words_at + r * 8) as u64).to_le_bytes());
        put(&mut b, at + 8, &R_AARCH64_RELATIVE.to_le_bytes());
        put(&mut b, at + 16, &((256 + (r * 4) % (text - 256)) as u64).to_le_bytes());
    }
    TestElf {
        bytes: b,
        phdr_at: 64,
        dynamic_at,
        rela_at,
        words_at,
        data_vaddr,
        relocs,
    }
}
