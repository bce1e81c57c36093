//! The SD driver's checks of what the controller and the card answer
//! (`domains/sdhci/src/answers.rs`, compiled here as it is), fed the answers a broken or
//! hostile card would give: each is refused with its reason, never believed.

#[path = "../../domains/sdhci/src/answers.rs"]
#[allow(dead_code)]
mod answers;

use answers::{card_ok, divider_bits, published_address, Csd, Error};

/// A CSD register as the controller presents it (CSD bits 127-8 as bits 119-0), with the
/// given fields set.
fn csd(fields: &[(u32, u32, u32)]) -> Csd {
    let mut words = [0u32; 4];
    for &(hi, lo, value) in fields {
        for bit in lo..=hi {
            if value >> (bit - lo) & 1 == 1 {
                let at = bit - 8;
                words[(at / 32) as usize] |= 1 << (at % 32);
            }
        }
    }
    Csd(words)
}

/// CSD version 1 of a card of (c_size + 1) << (mult + 2 + read_bl_len) bytes.
fn csd_v1(read_bl_len: u32, c_size: u32, mult: u32) -> Csd {
    csd(&[(127, 126, 0), (83, 80, read_bl_len), (73, 62, c_size), (49, 47, mult)])
}

fn protocol(r: Result<u64, Error>) -> &'static str {
    match r {
        Err(Error::Protocol(why)) => why,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn a_16_mib_sdsc_card_and_a_4_gib_sdhc_card_are_read_right() {
    // 16 MiB: 512-byte blocks, (c_size + 1) * 2^(mult + 2) = 32768 blocks.
    assert_eq!(csd_v1(9, 4095, 1).capacity().unwrap(), 4096 * 8 * 512);
    assert_eq!(csd_v1(9, 4095, 1).blocks(false, 4096), Ok(4096));
    // SDHC: (c_size + 1) * 512 KiB.
    let hc = csd(&[(127, 126, 1), (69, 48, 8191)]);
    assert_eq!(hc.blocks(true, 4096), Ok(1 << 20));
}

#[test]
fn a_csd_of_an_unknown_version_or_block_length_is_refused() {
    assert!(protocol(csd(&[(127, 126, 2)]).blocks(true, 4096)).contains("unknown structure version"));
    assert!(protocol(csd(&[(127, 126, 3)]).blocks(true, 4096)).contains("unknown structure version"));
    for bad_len in [0, 8, 12, 15] {
        assert!(protocol(csd_v1(bad_len, 100, 1).blocks(false, 4096)).contains("block length"), "{bad_len}");
    }
}

#[test]
fn a_csd_that_disagrees_with_the_capacity_bit_is_refused() {
    assert!(protocol(csd_v1(9, 4095, 1).blocks(true, 4096)).contains("disagrees"));
    assert!(protocol(csd(&[(127, 126, 1), (69, 48, 10)]).blocks(false, 4096)).contains("disagrees"));
}

#[test]
fn absurd_capacities_are_refused() {
    // The CSD's field widths bound what a card can claim: version 1 at most 4 GiB (which
    // 32-bit byte addresses still reach), version 2 at most 2 TiB. Both limits are accepted;
    // a card smaller than one block is not.
    assert_eq!(csd_v1(11, 4095, 7).blocks(false, 4096), Ok(1 << 20));
    assert!(protocol(csd_v1(9, 0, 0).blocks(false, 4096)).contains("smaller than one 4 KiB block"));
    assert_eq!(csd(&[(127, 126, 1), (69, 48, (1 << 22) - 1)]).capacity(), Ok(2 << 40));
}

#[test]
fn status_words_with_error_bits_are_refused() {
    assert!(card_ok("CMD7", 0x0000_0900).is_ok(), "ready, transfer state");
    for bit in [31, 30, 29, 28, 27, 26, 24, 23, 22, 21, 20, 19, 16, 15, 3] {
        assert!(matches!(card_ok("CMD7", 1 << bit), Err(Error::Card("CMD7", _))), "bit {bit}");
    }
    assert!(published_address(0x1234_0000).is_ok_and(|a| a == 0x1234_0000));
    assert!(matches!(published_address(0), Err(Error::Protocol(_))), "address 0");
    assert!(matches!(published_address(0x1234_8000), Err(Error::Card("CMD3", _))), "an error bit");
}

#[test]
fn the_clock_is_never_divided_to_faster_than_asked() {
    for base in [1_000_000u32, 41_666_667, 52_000_000, 200_000_000, 250_000_000, u32::MAX] {
        for want in [400_000u32, 25_000_000] {
            for ten_bit in [true, false] {
                let Some(bits) = divider_bits(base, want, ten_bit) else { continue };
                let n = if ten_bit { (bits >> 8 & 0xff) | (bits >> 6 & 0x3) << 8 } else { bits >> 8 };
                let clock = if n == 0 { base as u64 } else { base as u64 / (2 * n as u64) };
                assert!(clock <= want as u64, "base {base}, want {want}, ten-bit {ten_bit}: {clock}");
            }
        }
    }
    assert_eq!(divider_bits(u32::MAX, 400_000, false), None, "no power-of-two divider is large enough");
}
