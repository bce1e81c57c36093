//! CRC-32 (IEEE 802.3, reflected: zlib's, the initrd's) with the ARMv8 CRC32 instructions,
//! for validating the initrd at boot. Only where the CPU says it has them
//! (ID_AA64ISAR0_EL1.CRC32, read once; optional in ARMv8.0, and QEMU's and the Raspberry
//! Pi 3's Cortex-A53 have them); without them [`crc32`] returns `None` and the caller uses
//! the portable table code (`initrd::crc32`). General-purpose registers only.

/// True if this CPU implements the CRC32 instructions (ID_AA64ISAR0_EL1 bits 19:16).
pub fn available() -> bool {
    super::cpu::isar0_field(16) >= 1
}

/// CRC-32 of `bytes` by the CPU's instructions, or `None` if it has none.
pub fn crc32(bytes: &[u8]) -> Option<u32> {
    if !available() {
        return None;
    }
    let mut c: u32 = !0;
    let byte = |c: &mut u32, b: u8| {
        // SAFETY: a register-only instruction the CPU has (`available`).
        unsafe {
            core::arch::asm!(".arch_extension crc", "crc32b {c:w}, {c:w}, {b:w}", c = inout(reg) *c, b = in(reg) b as u32, options(pure, nomem, nostack, preserves_flags))
        };
    };
    // Bytes up to an 8-byte boundary, then whole aligned words by `ldr` (the target is
    // built for strict alignment, so Rust would assemble each word from 8 byte loads),
    // then the rest.
    let head = bytes.as_ptr().align_offset(8).min(bytes.len());
    let words = (bytes.len() - head) / 8;
    for &b in &bytes[..head] {
        byte(&mut c, b);
    }
    if words > 0 {
        // SAFETY: reads `words` 8-byte words from `bytes[head..]`, which is 8-byte aligned
        // and holds at least that many; the CPU has the instruction (`available`).
        unsafe {
            core::arch::asm!(
                ".arch_extension crc",
                "2:",
                "ldr {v}, [{p}], #8",
                "crc32x {c:w}, {c:w}, {v}",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                c = inout(reg) c,
                p = inout(reg) bytes.as_ptr().add(head) => _,
                n = inout(reg) words => _,
                v = out(reg) _,
                options(readonly, nostack)
            )
        };
    }
    for &b in &bytes[head + words * 8..] {
        byte(&mut c, b);
    }
    Some(!c)
}
