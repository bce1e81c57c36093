//! Unit tests: ELF validation/relocation corpus, envelope and verify errors, properties.

use crate::elf::{ElfError, ElfImage, Permission};
use crate::envelope::{assemble, statement, ENVELOPE_OVERHEAD};
use crate::manifest::{InterfaceRef, Manifest, RestartPolicy, Version};
use crate::testkit::{self, TestElf};
use crate::{verify, Keyring, LoadError, Revocations};
use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;

fn elf() -> TestElf {
    testkit::build(8192, 5, 100)
}

fn set(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

#[test]
fn valid_pie_parses_and_loads_with_relocations_applied() {
    let e = elf();
    let img = ElfImage::parse(&e.bytes).unwrap();
    assert_eq!(img.relocation_count(), 5);
    assert_eq!(img.entry(), 256);
    let size = img.layout().size as usize;
    assert_eq!(size % 4096, 0);
    let mut mem = vec![0xaau8; size];
    let base = 0x4000_0000u64;
    let segs = img.load_into(&mut mem, base).unwrap();
    assert_eq!(segs.iter().map(|s| s.permission).collect::<Vec<_>>(), vec![Permission::RX, Permission::RW]);
    assert!(segs.iter().all(|s| s.offset % 4096 == 0 && s.size % 4096 == 0));
    for r in 0..e.relocs {
        let at = e.words_at + r * 8;
        let v = u64::from_le_bytes(mem[at..at + 8].try_into().unwrap());
        assert_eq!(v, base + (256 + r * 4) as u64, "relocation {r}");
    }
    // BSS and the tail of the last page are zero, not the 0xaa that was there.
    assert!(mem[e.bytes.len()..].iter().all(|&b| b == 0));
    assert_eq!(&mem[..64], &e.bytes[..64]);
}

/// Each malformed ELF is refused with its own error.
#[test]
fn malformed_elf_corpus() {
    let e = elf();
    let ph = |i: usize, off: usize| e.phdr_at + i * 56 + off;
    type Case<'a> = (&'static str, Box<dyn Fn(&mut Vec<u8>) + 'a>, ElfError);
    let cases: Vec<Case<'_>> = vec![
        ("too short", Box::new(|b| b.truncate(10)), ElfError::TooShort),
        ("bad magic", Box::new(|b| b[1] = b'X'), ElfError::NotElf),
        ("32-bit", Box::new(|b| b[4] = 1), ElfError::Not64Bit),
        ("big endian", Box::new(|b| b[5] = 2), ElfError::NotLittleEndian),
        ("bad version", Box::new(|b| b[6] = 0), ElfError::BadVersion),
        ("ET_EXEC", Box::new(|b| set(b, 16, &2u16.to_le_bytes())), ElfError::NotPie { e_type: 2 }),
        (
            "x86-64",
            Box::new(|b| set(b, 18, &62u16.to_le_bytes())),
            ElfError::WrongMachine { e_machine: 62 },
        ),
        ("phentsize", Box::new(|b| set(b, 54, &32u16.to_le_bytes())), ElfError::BadHeaderSize),
        (
            "phoff past end",
            Box::new(|b| set(b, 32, &(u64::MAX - 8).to_le_bytes())),
            ElfError::ProgramHeadersOutOfFile,
        ),
        (
            "segment past end",
            Box::new(move |b| set(b, ph(1, 32), &1_000_000u64.to_le_bytes())),
            ElfError::SegmentOutOfFile { index: 1 },
        ),
        (
            "offset overflow",
            Box::new(move |b| set(b, ph(1, 8), &u64::MAX.to_le_bytes())),
            ElfError::SegmentOutOfFile { index: 1 },
        ),
        (
            "filesz > memsz",
            Box::new(move |b| set(b, ph(0, 40), &16u64.to_le_bytes())),
            ElfError::FileSizeExceedsMemSize { index: 0 },
        ),
        (
            // Found by the elf_differential fuzz target: goblin and readelf read the first
            // PT_DYNAMIC, the loader used to read the last.
            "second PT_DYNAMIC",
            Box::new(move |b| {
                let dynamic = b[ph(2, 0)..ph(3, 0)].to_vec();
                set(b, ph(3, 0), &dynamic);
                set(b, 56, &4u16.to_le_bytes());
            }),
            ElfError::MultipleDynamic,
        ),
        (
            // Found by the elf_differential fuzz target: goblin reads such a table at file
            // offset 0, the loader used to apply nothing.
            "DT_RELASZ without DT_RELA",
            Box::new(move |b| set(b, e.dynamic_at, &21u64.to_le_bytes())),
            ElfError::RelaSizeWithoutTable,
        ),
        (
            "W+X",
            Box::new(move |b| set(b, ph(0, 4), &7u32.to_le_bytes())),
            ElfError::WritableAndExecutable { index: 0 },
        ),
        (
            "not congruent",
            Box::new(move |b| set(b, ph(1, 16), &(e.data_vaddr as u64 + 8).to_le_bytes())),
            ElfError::BadAlignment { index: 1 },
        ),
        (
            "align 3",
            Box::new(move |b| set(b, ph(0, 48), &3u64.to_le_bytes())),
            ElfError::BadAlignment { index: 0 },
        ),
        (
            "overlap",
            Box::new(move |b| set(b, ph(1, 16), &4096u64.to_le_bytes())),
            ElfError::SegmentsOverlap { index: 1 },
        ),
        (
            "huge memsz",
            Box::new(move |b| set(b, ph(1, 40), &(1u64 << 40).to_le_bytes())),
            ElfError::ImageTooLarge {
                size: (1 << 40) + e.data_vaddr as u64,
            },
        ),
        (
            "entry in data",
            Box::new(move |b| set(b, 24, &(e.data_vaddr as u64).to_le_bytes())),
            ElfError::EntryNotExecutable { entry: e.data_vaddr as u64 },
        ),
        (
            "no PT_LOAD",
            Box::new(move |b| {
                set(b, ph(0, 0), &6u32.to_le_bytes());
                set(b, ph(1, 0), &6u32.to_le_bytes())
            }),
            ElfError::NoLoadableSegment,
        ),
        ("PT_INTERP", Box::new(move |b| set(b, ph(2, 0), &3u32.to_le_bytes())), ElfError::HasInterpreter),
        (
            "DT_NEEDED",
            Box::new(move |b| set(b, e.dynamic_at + 32, &1u64.to_le_bytes())),
            ElfError::NeedsLibrary,
        ),
        (
            "DT_REL",
            Box::new(move |b| set(b, e.dynamic_at + 32, &18u64.to_le_bytes())),
            ElfError::UnsupportedRelocationTable("DT_REL"),
        ),
        (
            "DT_RELAENT 16",
            Box::new(move |b| set(b, e.dynamic_at + 40, &16u64.to_le_bytes())),
            ElfError::BadRelaEntrySize(16),
        ),
        (
            "rela outside",
            Box::new(move |b| set(b, e.dynamic_at + 8, &0x100000u64.to_le_bytes())),
            ElfError::RelocationsOutOfFile,
        ),
        (
            "ABS64",
            Box::new(move |b| set(b, e.rela_at + 8, &257u64.to_le_bytes())),
            ElfError::UnsupportedRelocation { index: 0, r_type: 257 },
        ),
        (
            "symbol",
            Box::new(move |b| set(b, e.rela_at + 24 + 8, &((1u64 << 32) | 1027).to_le_bytes())),
            ElfError::RelocationWithSymbol { index: 1 },
        ),
        (
            "target outside",
            Box::new(move |b| set(b, e.rela_at, &0x7000_0000u64.to_le_bytes())),
            ElfError::RelocationOutOfImage { index: 0, offset: 0x7000_0000 },
        ),
        (
            "target misaligned",
            Box::new(move |b| set(b, e.rela_at, &(e.words_at as u64 + 3).to_le_bytes())),
            ElfError::RelocationMisaligned {
                index: 0,
                offset: e.words_at as u64 + 3,
            },
        ),
        (
            "addend outside",
            Box::new(move |b| set(b, e.rela_at + 16, &(-8i64).to_le_bytes())),
            ElfError::AddendOutOfImage { index: 0, addend: -8 },
        ),
    ];
    for (what, corrupt, want) in cases {
        let mut b = e.bytes.clone();
        corrupt(&mut b);
        assert_eq!(ElfImage::parse(&b).err(), Some(want), "{what}");
    }
}

#[test]
fn load_into_refuses_small_or_misaligned_destinations() {
    let e = elf();
    let img = ElfImage::parse(&e.bytes).unwrap();
    let size = img.layout().size;
    let mut small = vec![0; size as usize - 1];
    assert_eq!(img.load_into(&mut small, 0), Err(ElfError::DestinationTooSmall { need: size, have: size - 1 }));
    let mut mem = vec![0; size as usize];
    assert_eq!(img.load_into(&mut mem, 0x1001), Err(ElfError::BadBase(0x1001)));
    assert_eq!(img.load_into(&mut mem, !0xfff), Err(ElfError::BadBase(!0xfff)));
}

pub fn sample_manifest() -> Manifest {
    Manifest {
        name: "sample".into(),
        version: Version { major: 0, minor: 1, patch: 0 },
        exports: vec![InterfaceRef {
            name: "Sample".into(),
            hash: [1; 32],
        }],
        imports: vec![],
        devices: vec![],
        heap_limit: 64 << 10,
        stack_size: 16 << 10,
        shared_heap_limit: 256 << 10,
        max_threads: 16,
        max_events: 64,
        restart: RestartPolicy::Restart,
        toolchain: "test".into(),
        safe_rust_checked: false,
        min_version: Default::default(),
        downgrade: false,
    }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn sign_raw(manifest: &[u8], elf: &[u8], k: &SigningKey) -> Vec<u8> {
    let digest = crate::sha256(elf);
    let sig = k.sign(&statement(manifest, elf.len() as u32, &digest));
    let id = crate::envelope::key_id(&k.verifying_key().to_bytes());
    assemble(manifest, elf, &id, &sig.to_bytes())
}

fn keyring(k: &SigningKey) -> Keyring {
    let mut r = Keyring::new();
    r.add(k.verifying_key().to_bytes()).unwrap();
    r
}

#[test]
fn signed_envelope_verifies() {
    let (k, e) = (key(1), elf());
    let env = sign_raw(&sample_manifest().encode().unwrap(), &e.bytes, &k);
    assert_eq!(env.len(), ENVELOPE_OVERHEAD + sample_manifest().encode().unwrap().len() + e.bytes.len());
    let d = verify(&env, &keyring(&k), &Revocations::default()).unwrap();
    assert_eq!(d.manifest, sample_manifest());
    assert_eq!(d.elf.relocation_count(), 5);
}

/// `verify_with` trusts only the digest its hash function computes: the loader's SHA-256
/// verifies, another function's digest is a mismatch; the signature check alone passes.
#[test]
fn verify_with_uses_the_given_hash() {
    let (k, e) = (key(1), elf());
    let env = sign_raw(&sample_manifest().encode().unwrap(), &e.bytes, &k);
    let ring = keyring(&k);
    assert!(crate::verify_with(&env, &ring, &Revocations::default(), crate::sha256).is_ok());
    let wrong = |b: &[u8]| {
        let mut d = crate::sha256(b);
        d[31] ^= 1;
        d
    };
    assert_eq!(
        crate::verify_with(&env, &ring, &Revocations::default(), wrong).err(),
        Some(LoadError::DigestMismatch)
    );
    let parsed = crate::Envelope::parse(&env).unwrap();
    let id = ring.ids().next().copied().unwrap();
    assert!(crate::check_signature(&parsed, ring.get(&id).unwrap()).is_ok());
    let mut bad = env.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let parsed = crate::Envelope::parse(&bad).unwrap();
    assert_eq!(crate::check_signature(&parsed, ring.get(&id).unwrap()), Err(LoadError::BadSignature));
}

/// Each way an envelope can be wrong has its own error.
#[test]
fn envelope_error_corpus() {
    let (k, e) = (key(1), elf());
    let m = sample_manifest().encode().unwrap();
    let good = sign_raw(&m, &e.bytes, &k);
    let ring = keyring(&k);
    let none = Revocations::default();
    let check = |bytes: &[u8], ring: &Keyring, rev: &Revocations| verify(bytes, ring, rev).err().unwrap();

    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(check(&b, &ring, &none), LoadError::BadMagic);
    let mut b = good.clone();
    b[8] = 2;
    assert_eq!(check(&b, &ring, &none), LoadError::UnsupportedVersion(2));
    let mut b = good.clone();
    b[10] = 1;
    assert_eq!(check(&b, &ring, &none), LoadError::ReservedNotZero);
    assert!(matches!(check(&good[..100], &ring, &none), LoadError::Truncated { .. }));
    assert!(matches!(check(&good[..good.len() - 1], &ring, &none), LoadError::Truncated { .. }));
    let mut b = good.clone();
    b.push(0);
    assert_eq!(check(&b, &ring, &none), LoadError::TrailingBytes { extra: 1 });
    let mut b = good.clone();
    set(&mut b, 16, &u32::MAX.to_le_bytes());
    assert!(matches!(check(&b, &ring, &none), LoadError::LengthOverflow { field: "ELF length", .. }));
    assert!(matches!(check(&good, &keyring(&key(2)), &none), LoadError::UnknownKey(_)));
    let id = crate::envelope::key_id(&k.verifying_key().to_bytes());
    assert_eq!(
        check(
            &good,
            &ring,
            &Revocations {
                keys: vec![id],
                digests: vec![]
            }
        ),
        LoadError::RevokedKey(id)
    );
    let digest = crate::sha256(&e.bytes);
    assert_eq!(
        check(
            &good,
            &ring,
            &Revocations {
                keys: vec![],
                digests: vec![digest]
            }
        ),
        LoadError::RevokedDigest(digest)
    );
    let mut b = good.clone();
    let elf_at = 84 + m.len();
    b[elf_at + 300] ^= 1;
    assert_eq!(check(&b, &ring, &none), LoadError::DigestMismatch);
    let mut b = good.clone();
    b[84] ^= 1; // manifest byte: the statement no longer matches
    assert_eq!(check(&b, &ring, &none), LoadError::BadSignature);
    let mut b = good.clone();
    *b.last_mut().unwrap() ^= 0x40;
    assert_eq!(check(&b, &ring, &none), LoadError::BadSignature);
    // Properly signed, but the contents are bad.
    let bad_manifest = sign_raw(&m[..m.len() - 1], &e.bytes, &k);
    assert!(matches!(check(&bad_manifest, &ring, &none), LoadError::InvalidManifest(_)));
    let mut bad_elf = e.bytes.clone();
    bad_elf[18] = 62;
    let bad_elf = sign_raw(&m, &bad_elf, &k);
    assert_eq!(check(&bad_elf, &ring, &none), LoadError::InvalidElf(ElfError::WrongMachine { e_machine: 62 }));
    // Every error has a specific message.
    assert!(check(&b, &ring, &none).to_string().contains("bad signature"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn elf_parser_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = ElfImage::parse(&bytes);
    }

    #[test]
    fn mutated_elfs_never_panic_and_load_in_bounds(muts in proptest::collection::vec((0usize..8192, any::<u8>()), 1..6)) {
        let e = testkit::build(4096, 3, 64);
        let mut b = e.bytes.clone();
        for (pos, val) in muts {
            let p = pos % b.len();
            b[p] = val;
        }
        if let Ok(img) = ElfImage::parse(&b) {
            let mut mem = vec![0u8; img.layout().size as usize];
            prop_assert!(img.load_into(&mut mem, 0x10_0000).is_ok());
        }
    }

    #[test]
    fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), keep_header in any::<bool>()) {
        let mut b = bytes;
        if keep_header && b.len() >= 12 {
            b[..8].copy_from_slice(&crate::MAGIC);
            b[8..12].copy_from_slice(&[1, 0, 0, 0]);
        }
        let _ = verify(&b, &keyring(&key(1)), &Revocations::default());
    }
}
