//! Building archives (host side).

use crate::{align_up, crc32, ALIGN, ENTRY_HEADER_LEN, MAGIC, MAX_NAME_LEN, VERSION};
use std::collections::HashSet;

/// Why a set of files cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackError {
    BadName(String),
    DuplicateName(String),
    TooLarge(String),
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadName(n) => write!(f, "entry name {n:?} is empty, longer than {MAX_NAME_LEN} bytes, or contains '/' or NUL"),
            Self::DuplicateName(n) => write!(f, "two entries are named {n:?}"),
            Self::TooLarge(n) => write!(f, "entry {n:?} is larger than 4 GiB"),
        }
    }
}

impl std::error::Error for PackError {}

/// Packs `(name, data)` pairs, in order, into one archive.
pub fn pack<N: AsRef<str>, D: AsRef<[u8]>>(entries: &[(N, D)]) -> Result<Vec<u8>, PackError> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut seen = HashSet::new();
    for (name, data) in entries {
        let (name, data) = (name.as_ref(), data.as_ref());
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains(['/', '\0']) {
            return Err(PackError::BadName(name.to_string()));
        }
        if !seen.insert(name) {
            return Err(PackError::DuplicateName(name.to_string()));
        }
        let data_len = u32::try_from(data.len()).map_err(|_| PackError::TooLarge(name.to_string()))?;
        let mut header = [0u8; ENTRY_HEADER_LEN];
        header[4..8].copy_from_slice(&crc32(data).to_le_bytes());
        header[8..12].copy_from_slice(&data_len.to_le_bytes());
        header[12..14].copy_from_slice(&(name.len() as u16).to_le_bytes());
        // bytes 14..16: flags, zero in version 1
        let mut crc = crate::crc32::Crc32::new();
        crc.update(&header[4..]);
        crc.update(name.as_bytes());
        header[0..4].copy_from_slice(&crc.finish().to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(name.as_bytes());
        out.resize(align_up(out.len()).expect("archive fits in memory"), 0);
        out.extend_from_slice(data);
        out.resize(align_up(out.len()).expect("archive fits in memory"), 0);
        debug_assert_eq!(out.len() % ALIGN, 0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Archive, InitrdError};
    use proptest::prelude::*;

    #[test]
    fn round_trip_keeps_names_data_and_alignment() {
        let img = pack(&[("a.qvd", &b"hello"[..]), ("second", &[7u8; 33][..])]).unwrap();
        let ar = Archive::parse(&img).unwrap();
        let e: Vec<_> = ar.entries().collect();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].name, e[0].data), ("a.qvd", &b"hello"[..]));
        assert_eq!((e[1].name, e[1].data), ("second", &[7u8; 33][..]));
        assert!(e.iter().all(|e| e.data_offset % ALIGN == 0));
        assert_eq!(ar.find("second").unwrap().data.len(), 33);
    }

    #[test]
    fn parse_with_uses_the_given_crc_for_the_data() {
        let img = pack(&[("a.qvd", &b"hello"[..]), ("second", &[7u8; 33][..])]).unwrap();
        let ar = Archive::parse_with(&img, crate::crc32).unwrap();
        assert_eq!(ar.entries().count(), 2);
        // A CRC function that disagrees with the stored CRCs: the first entry is refused.
        assert_eq!(Archive::parse_with(&img, |d| !crate::crc32(d)).err(), Some(InitrdError::DataCrc { index: 0 }));
    }

    #[test]
    fn empty_archive_is_valid() {
        let img = pack::<&str, &[u8]>(&[]).unwrap();
        assert!(Archive::parse(&img).unwrap().is_empty());
    }

    #[test]
    fn writer_refuses_bad_and_duplicate_names() {
        assert!(matches!(pack(&[("a/b", b"x")]), Err(PackError::BadName(_))));
        assert!(matches!(pack(&[("", b"x")]), Err(PackError::BadName(_))));
        assert!(matches!(pack(&[("x", b"1"), ("x", b"2")]), Err(PackError::DuplicateName(_))));
    }

    #[test]
    fn each_defect_gets_its_own_error() {
        let good = pack(&[("one", &b"payload"[..])]).unwrap();
        assert_eq!(Archive::parse(&good[..10]).unwrap_err(), InitrdError::TooShort { len: 10 });
        let mut m = good.clone();
        m[0] ^= 1;
        assert_eq!(Archive::parse(&m).unwrap_err(), InitrdError::BadMagic);
        let mut v = good.clone();
        v[8] = 9;
        assert_eq!(Archive::parse(&v).unwrap_err(), InitrdError::UnsupportedVersion(9));
        // header is at 16; data_len at 16+8, name "one" at 32, data at 48
        let mut h = good.clone();
        h[32] = b'x';
        assert_eq!(Archive::parse(&h).unwrap_err(), InitrdError::HeaderCrc { index: 0 });
        let mut d = good.clone();
        d[48] ^= 0x80;
        assert_eq!(Archive::parse(&d).unwrap_err(), InitrdError::DataCrc { index: 0 });
        let mut p = good.clone();
        *p.last_mut().unwrap() = 1;
        assert_eq!(Archive::parse(&p).unwrap_err(), InitrdError::NonZeroPadding { offset: good.len() - 1 });
        let mut t = good.clone();
        t.extend_from_slice(&[0; 16]);
        assert_eq!(Archive::parse(&t).unwrap_err(), InitrdError::TrailingBytes { offset: good.len() });
        assert_eq!(Archive::parse(&good[..good.len() - 16]).unwrap_err(), InitrdError::Truncated { index: 0 });
        let mut c = good.clone();
        c[12] = 2; // claims two entries
        assert_eq!(Archive::parse(&c).unwrap_err(), InitrdError::Truncated { index: 1 });
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Archive::parse(&bytes);
        }

        #[test]
        fn parser_never_panics_on_mutated_archives(
            pos in 0usize..200, val in any::<u8>(), cut in 0usize..200,
        ) {
            let img = pack(&[("first", &[1u8; 40][..]), ("second", &b"xyz"[..])]).unwrap();
            let mut m = img.clone();
            let p = pos % m.len();
            m[p] = val;
            m.truncate(m.len() - cut % m.len());
            if let Ok(ar) = Archive::parse(&m) {
                // Anything accepted must iterate to exactly the declared count.
                prop_assert_eq!(ar.entries().count(), ar.len());
            }
        }

        #[test]
        fn round_trip_any_entries(
            entries in proptest::collection::vec(("[a-z0-9._-]{1,20}", proptest::collection::vec(any::<u8>(), 0..100)), 0..6)
        ) {
            let mut uniq = std::collections::BTreeMap::new();
            for (n, d) in entries { uniq.insert(n, d); }
            let list: Vec<_> = uniq.into_iter().collect();
            let img = pack(&list).unwrap();
            let ar = Archive::parse(&img).unwrap();
            let back: Vec<_> = ar.entries().map(|e| (e.name.to_string(), e.data.to_vec())).collect();
            prop_assert_eq!(back, list);
        }
    }
}
