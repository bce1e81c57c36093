//! `qvq.test=sha256`: the SHA-256 that verifies domains (the CPU's SHA-256 instructions
//! where it has them, arch/aarch64/sha256.rs) against known answers (FIPS 180-4's examples)
//! and against the portable code (`loader::sha256`) at every length across the block and
//! chunk boundaries; and the same for the CRC-32 that validates the initrd (the CPU's CRC32
//! instructions, arch/aarch64/crc32.rs, against `initrd::crc32`).

use super::{fail, pass};
use crate::domain::inspect;

/// (message, SHA-256) pairs from FIPS 180-4's examples and the empty message.
const KNOWN: &[(&[u8], &str)] = &[
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
];

fn hex(d: &[u8; 32]) -> alloc::string::String {
    d.iter().map(|b| alloc::format!("{b:02x}")).collect()
}

pub fn run(name: &str) -> ! {
    let hardware = crate::arch::sha256::available();
    for (msg, want) in KNOWN {
        let got = hex(&inspect::sha256(msg));
        if got != *want {
            fail(name, format_args!("SHA-256 of {} bytes is {got}, not {want}", msg.len()));
        }
    }
    // A million 'a's (FIPS 180-4's third example): many whole chunks.
    let million = alloc::vec![b'a'; 1_000_000];
    let want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    if hex(&inspect::sha256(&million)) != want {
        fail(name, format_args!("SHA-256 of a million 'a's is not {want}"));
    }
    // Bytes that differ everywhere (a linear congruential sequence), at every length up to
    // three blocks and across the 4 KiB chunks the instructions run in.
    let mut x: u32 = 1;
    let data: alloc::vec::Vec<u8> = (0..9000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    let lengths = (0..=200).chain([255, 256, 257, 4095, 4096, 4097, 4160, 8191, 8192, 8193, 9000]);
    let mut checked = 0;
    for len in lengths {
        for start in [0, 1, 3] {
            let m = &data[start..start + len.min(data.len() - start)];
            let (got, want) = (inspect::sha256(m), loader::sha256(m));
            if got != want {
                fail(
                    name,
                    format_args!("{} bytes at offset {start}: {} here, {} portable", m.len(), hex(&got), hex(&want)),
                );
            }
            let (got, want) = (crate::arch::crc32::crc32(m), initrd::crc32(m));
            if got.is_some_and(|c| c != want) {
                fail(
                    name,
                    format_args!("CRC-32 of {} bytes at offset {start}: {got:x?} here, {want:08x} portable", m.len()),
                );
            }
            checked += 1;
        }
    }
    // CRC-32's check value (the CRC catalogue's "123456789").
    let check = b"123456789";
    if crate::arch::crc32::crc32(check).is_some_and(|c| c != 0xcbf4_3926) || initrd::crc32(check) != 0xcbf4_3926 {
        fail(name, format_args!("the CRC-32 of \"123456789\" is not cbf43926"));
    }
    let how = if hardware {
        "the CPU's SHA-256 instructions"
    } else {
        "the portable code (no SHA-256 instructions)"
    };
    let crc = if crate::arch::crc32::available() {
        "the CPU's CRC32 instructions"
    } else {
        "no CRC32 instructions"
    };
    pass(
        name,
        format_args!("{how}: known answers and {checked} messages agree with the portable code; so does {crc}"),
    )
}
