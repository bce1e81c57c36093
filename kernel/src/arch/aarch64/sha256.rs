//! SHA-256 with the ARMv8 Cryptographic Extension's SHA-256 instructions, for verifying
//! domain envelopes. Only where the CPU says it has them (ID_AA64ISAR0_EL1.SHA2, read once):
//! QEMU's Cortex-A53 model does, the Raspberry Pi 3's BCM2837 does not; without them
//! [`digest`] returns `None` and the caller uses the portable code (`loader::sha256`).
//!
//! The kernel and the domains are built soft-float and keep the FP/SIMD unit trapped
//! (CPACR_EL1.FPEN): nothing else ever holds a value in a vector register. Each call of
//! [`compress`] enables the unit, runs with interrupts masked (no context switch, so no
//! other thread can see or disturb the vector registers), saves and restores every vector
//! register it uses, and traps the unit again before interrupts come back: no SIMD state
//! outlives a call.

/// The round constants (FIPS 180-4, 4.2.2).
static K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
    0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
    0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
    0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
    0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The initial hash value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// Blocks per masked stretch: 64 blocks (4 KiB) take about 3,500 instructions, a short
/// enough time with interrupts masked.
const BLOCKS_PER_CALL: usize = 64;

/// True if this CPU implements the SHA-256 instructions (ID_AA64ISAR0_EL1.SHA2 ≥ 1),
/// read from the register once.
pub fn available() -> bool {
    super::cpu::isar0_field(12) >= 1
}

/// SHA-256 of `bytes` by the CPU's instructions, or `None` if it has none.
pub fn digest(bytes: &[u8]) -> Option<[u8; 32]> {
    if !available() {
        return None;
    }
    let mut state = H0;
    let whole = bytes.len() / 64 * 64;
    for chunk in bytes[..whole].chunks(BLOCKS_PER_CALL * 64) {
        compress(&mut state, chunk);
    }
    // The padding: 0x80, zeros, the length in bits (big endian) in the last 8 bytes; one
    // block, or two if fewer than 9 bytes are left in the first.
    let rest = &bytes[whole..];
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < 56 { 64 } else { 128 };
    tail[len - 8..len].copy_from_slice(&((bytes.len() as u64).wrapping_mul(8)).to_be_bytes());
    compress(&mut state, &tail[..len]);
    let mut out = [0u8; 32];
    for (o, s) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&s.to_be_bytes());
    }
    Some(out)
}

/// Four rounds with message words `$w` (then extends the schedule: `$w` becomes the words
/// 16 later, from `$w`, `$x`, `$y`, `$z`).
macro_rules! quad {
    ($w:ident, $x:ident, $y:ident, $z:ident) => {
        concat!(
            "ld1 {{v16.4s}}, [{k}], #16\n",
            "add v16.4s, v16.4s, ",
            stringify!($w),
            ".4s\n",
            "mov v17.16b, v0.16b\n",
            "sha256h q0, q1, v16.4s\n",
            "sha256h2 q1, q17, v16.4s\n",
            "sha256su0 ",
            stringify!($w),
            ".4s, ",
            stringify!($x),
            ".4s\n",
            "sha256su1 ",
            stringify!($w),
            ".4s, ",
            stringify!($y),
            ".4s, ",
            stringify!($z),
            ".4s"
        )
    };
}

/// Four rounds with message words `$w`, the schedule no longer extended.
macro_rules! last_quad {
    ($w:ident) => {
        concat!(
            "ld1 {{v16.4s}}, [{k}], #16\n",
            "add v16.4s, v16.4s, ",
            stringify!($w),
            ".4s\n",
            "mov v17.16b, v0.16b\n",
            "sha256h q0, q1, v16.4s\n",
            "sha256h2 q1, q17, v16.4s"
        )
    };
}

/// Runs the compression function over `blocks` (a whole number of 64-byte blocks, at
/// most `BLOCKS_PER_CALL`). Only called once [`available`] said yes.
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    let n = blocks.len() / 64;
    if n == 0 {
        return;
    }
    let irq = super::cpu::irq_save();
    let cpacr: u64;
    // SAFETY: enables the FP/SIMD unit at EL1 (CPACR_EL1.FPEN = 0b11) with interrupts
    // masked; the previous value is restored below before they are unmasked.
    unsafe {
        core::arch::asm!(
            "mrs {old}, cpacr_el1",
            "orr {new}, {old}, #(3 << 20)",
            "msr cpacr_el1, {new}",
            "isb",
            old = out(reg) cpacr,
            new = out(reg) _,
            options(nostack, preserves_flags)
        )
    };
    // SAFETY: `state` is 32 writable bytes, `blocks` is `n` × 64 readable bytes and `K` is
    // 256 readable bytes; the instructions exist (`available`) and the FP/SIMD unit is on
    // (above). The vector registers used (v0-v7, v16, v17) are saved on the stack first
    // and restored last, so no Rust code sees them change (none uses them: soft-float);
    // the general registers used are declared. Interrupts are masked: nothing runs between.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            ".arch_extension sha2",
            "sub sp, sp, #160",
            "stp q0, q1, [sp]",
            "stp q2, q3, [sp, #32]",
            "stp q4, q5, [sp, #64]",
            "stp q6, q7, [sp, #96]",
            "stp q16, q17, [sp, #128]",
            "ld1 {{v0.4s, v1.4s}}, [{state}]",
            "2:",
            "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{data}], #64",
            "rev32 v4.16b, v4.16b",
            "rev32 v5.16b, v5.16b",
            "rev32 v6.16b, v6.16b",
            "rev32 v7.16b, v7.16b",
            "mov v2.16b, v0.16b",
            "mov v3.16b, v1.16b",
            "mov {k}, {kbase}",
            // Quad-rounds 0-11: four rounds each, then the schedule's next four words.
            quad!(v4, v5, v6, v7),
            quad!(v5, v6, v7, v4),
            quad!(v6, v7, v4, v5),
            quad!(v7, v4, v5, v6),
            quad!(v4, v5, v6, v7),
            quad!(v5, v6, v7, v4),
            quad!(v6, v7, v4, v5),
            quad!(v7, v4, v5, v6),
            quad!(v4, v5, v6, v7),
            quad!(v5, v6, v7, v4),
            quad!(v6, v7, v4, v5),
            quad!(v7, v4, v5, v6),
            // Quad-rounds 12-15: the schedule is complete.
            last_quad!(v4),
            last_quad!(v5),
            last_quad!(v6),
            last_quad!(v7),
            "add v0.4s, v0.4s, v2.4s",
            "add v1.4s, v1.4s, v3.4s",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "st1 {{v0.4s, v1.4s}}, [{state}]",
            "ldp q0, q1, [sp]",
            "ldp q2, q3, [sp, #32]",
            "ldp q4, q5, [sp, #64]",
            "ldp q6, q7, [sp, #96]",
            "ldp q16, q17, [sp, #128]",
            "add sp, sp, #160",
            state = in(reg) state.as_mut_ptr(),
            data = inout(reg) blocks.as_ptr() => _,
            n = inout(reg) n => _,
            kbase = in(reg) K.as_ptr(),
            k = out(reg) _,
        )
    };
    // SAFETY: restores CPACR_EL1 as it was (the FP/SIMD unit trapped again).
    unsafe { core::arch::asm!("msr cpacr_el1, {}", "isb", in(reg) cpacr, options(nostack, preserves_flags)) };
    super::cpu::irq_restore(irq);
}
