//! The QvQ initrd archive format (see `FORMAT.md`).
//!
//! The reader is `no_std` and zero-copy: [`Archive::parse`] checks every offset, length,
//! CRC and padding byte once, after which [`Archive::entries`] hands out borrowed slices.
//! Authenticity is not this format's job: every entry is a signed envelope checked by the
//! loader. The CRCs only tell accidental corruption apart from deliberate tampering.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

mod crc32;
#[cfg(feature = "std")]
mod writer;

pub use crc32::crc32;
#[cfg(feature = "std")]
pub use writer::{pack, PackError};

/// First 8 bytes of every archive. The CR LF catches text-mode transfer damage.
pub const MAGIC: [u8; 8] = *b"QVQIRD\r\n";
/// The only format version this reader understands.
pub const VERSION: u32 = 1;
/// Size of the archive header.
pub const ARCHIVE_HEADER_LEN: usize = 16;
/// Size of each entry header (before the name).
pub const ENTRY_HEADER_LEN: usize = 16;
/// Entry headers, names' padding and data all start at multiples of this.
pub const ALIGN: usize = 16;
/// Longest entry name in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Why an archive was refused. Each variant names one specific defect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitrdError {
    /// Shorter than the 16-byte archive header.
    TooShort { len: usize },
    /// The first 8 bytes are not `QVQIRD\r\n`.
    BadMagic,
    /// A format version this reader does not know.
    UnsupportedVersion(u32),
    /// Entry `index` runs past the end of the archive.
    Truncated { index: u32 },
    /// Entry `index`'s header CRC does not match: its header or name is corrupt.
    HeaderCrc { index: u32 },
    /// Entry `index`'s data CRC does not match: its contents are corrupt.
    DataCrc { index: u32 },
    /// Entry `index` has an empty, over-long or non-UTF-8 name, or one with `/` or NUL.
    BadName { index: u32 },
    /// Entry `index` sets flag bits this version does not define.
    UnknownFlags { index: u32, flags: u16 },
    /// A padding byte is not zero (padding must be zero so the encoding is canonical).
    NonZeroPadding { offset: usize },
    /// Bytes follow the last entry.
    TrailingBytes { offset: usize },
    /// Two entries have the same name.
    DuplicateName { index: u32 },
}

impl core::fmt::Display for InitrdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort { len } => write!(f, "initrd is {len} bytes, shorter than its 16-byte header"),
            Self::BadMagic => write!(f, "not a QvQ initrd (bad magic)"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported initrd format version {v} (this reader knows {VERSION})"),
            Self::Truncated { index } => write!(f, "entry {index} runs past the end of the initrd (truncated)"),
            Self::HeaderCrc { index } => write!(f, "entry {index}: header CRC mismatch (corrupt header or name)"),
            Self::DataCrc { index } => write!(f, "entry {index}: data CRC mismatch (corrupt contents)"),
            Self::BadName { index } => write!(f, "entry {index}: invalid name"),
            Self::UnknownFlags { index, flags } => write!(f, "entry {index}: unknown flags {flags:#06x}"),
            Self::NonZeroPadding { offset } => write!(f, "non-zero padding byte at offset {offset}"),
            Self::TrailingBytes { offset } => write!(f, "unexpected bytes after the last entry, at offset {offset}"),
            Self::DuplicateName { index } => write!(f, "entry {index}: name already used by an earlier entry"),
        }
    }
}

/// One named entry, borrowed from the archive bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
    /// Offset of `data` from the start of the archive (always a multiple of [`ALIGN`]).
    pub data_offset: usize,
}

/// A validated archive.
#[derive(Debug, Clone, Copy)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    count: u32,
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Rounds `n` up to [`ALIGN`]; `None` on overflow.
pub fn align_up(n: usize) -> Option<usize> {
    n.checked_add(ALIGN - 1).map(|v| v & !(ALIGN - 1))
}

fn name_ok(name: &[u8]) -> Option<&str> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.iter().any(|&c| c == b'/' || c == 0) {
        return None;
    }
    core::str::from_utf8(name).ok()
}

/// Parses one entry at `offset`; returns it and the offset of the next entry. The CRCs are
/// checked with `data_crc32` (for the data) when it is given; `None` is for an archive
/// `parse` has accepted already, whose entries are only read again.
fn parse_entry(bytes: &[u8], offset: usize, index: u32, data_crc32: Option<fn(&[u8]) -> u32>) -> Result<(Entry<'_>, usize), InitrdError> {
    let truncated = InitrdError::Truncated { index };
    let header_end = offset.checked_add(ENTRY_HEADER_LEN).ok_or(truncated.clone())?;
    let header = bytes.get(offset..header_end).ok_or(truncated.clone())?;
    let header_crc = read_u32(header, 0);
    let data_crc = read_u32(header, 4);
    let data_len = read_u32(header, 8) as usize;
    let name_len = read_u16(header, 12) as usize;
    let flags = read_u16(header, 14);

    let name_end = header_end.checked_add(name_len).ok_or(truncated.clone())?;
    let name = bytes.get(header_end..name_end).ok_or(truncated.clone())?;
    if data_crc32.is_some() {
        let mut crc = crc32::Crc32::new();
        crc.update(&header[4..]);
        crc.update(name);
        if crc.finish() != header_crc {
            return Err(InitrdError::HeaderCrc { index });
        }
    }
    if flags != 0 {
        return Err(InitrdError::UnknownFlags { index, flags });
    }
    let name = name_ok(name).ok_or(InitrdError::BadName { index })?;

    let data_start = align_up(name_end).ok_or(truncated.clone())?;
    check_padding(bytes, name_end, data_start, index)?;
    let data_end = data_start.checked_add(data_len).ok_or(truncated.clone())?;
    let data = bytes.get(data_start..data_end).ok_or(truncated.clone())?;
    if data_crc32.is_some_and(|crc| crc(data) != data_crc) {
        return Err(InitrdError::DataCrc { index });
    }
    let next = align_up(data_end).ok_or(truncated.clone())?;
    check_padding(bytes, data_end, next, index)?;
    Ok((
        Entry {
            name,
            data,
            data_offset: data_start,
        },
        next,
    ))
}

/// Name and next offset of an entry that `parse_entry` has already accepted.
fn validated_name_and_next(bytes: &[u8], offset: usize) -> (&[u8], usize) {
    let data_len = read_u32(bytes, offset + 8) as usize;
    let name_len = read_u16(bytes, offset + 12) as usize;
    let name_start = offset + ENTRY_HEADER_LEN;
    let data_start = (name_start + name_len + ALIGN - 1) & !(ALIGN - 1);
    let next = (data_start + data_len + ALIGN - 1) & !(ALIGN - 1);
    (&bytes[name_start..name_start + name_len], next)
}

fn check_padding(bytes: &[u8], from: usize, to: usize, index: u32) -> Result<(), InitrdError> {
    let pad = bytes.get(from..to).ok_or(InitrdError::Truncated { index })?;
    match pad.iter().position(|&b| b != 0) {
        Some(i) => Err(InitrdError::NonZeroPadding { offset: from + i }),
        None => Ok(()),
    }
}

impl<'a> Archive<'a> {
    /// Validates the whole archive. After `Ok`, iteration cannot fail.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, InitrdError> {
        Self::parse_with(bytes, crc32)
    }

    /// [`Archive::parse`], with the entries' data CRCs computed by `data_crc32` (which
    /// must compute this crate's [`crc32`]: the kernel passes one that uses the CPU's CRC32
    /// instructions where it has them).
    pub fn parse_with(bytes: &'a [u8], data_crc32: fn(&[u8]) -> u32) -> Result<Self, InitrdError> {
        if bytes.len() < ARCHIVE_HEADER_LEN {
            return Err(InitrdError::TooShort { len: bytes.len() });
        }
        if bytes[..8] != MAGIC {
            return Err(InitrdError::BadMagic);
        }
        let version = read_u32(bytes, 8);
        if version != VERSION {
            return Err(InitrdError::UnsupportedVersion(version));
        }
        let count = read_u32(bytes, 12);
        let mut offset = ARCHIVE_HEADER_LEN;
        for index in 0..count {
            let (entry, next) = parse_entry(bytes, offset, index, Some(data_crc32))?;
            // Names are unique. Earlier entries are already validated, so this walk only
            // reads their headers (no CRC work): cost is O(entries²) headers, never data.
            let mut earlier = ARCHIVE_HEADER_LEN;
            for _ in 0..index {
                let (name, n) = validated_name_and_next(bytes, earlier);
                if name == entry.name.as_bytes() {
                    return Err(InitrdError::DuplicateName { index });
                }
                earlier = n;
            }
            offset = next;
        }
        if offset != bytes.len() {
            return Err(InitrdError::TrailingBytes { offset });
        }
        Ok(Self { bytes, count })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the archive holds no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries, in archive order.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            bytes: self.bytes,
            offset: ARCHIVE_HEADER_LEN,
            remaining: self.count,
            index: 0,
        }
    }

    /// The entry called `name`, if any.
    pub fn find(&self, name: &str) -> Option<Entry<'a>> {
        self.entries().find(|e| e.name == name)
    }
}

/// Iterator over a validated archive's entries.
pub struct Entries<'a> {
    bytes: &'a [u8],
    offset: usize,
    remaining: u32,
    index: u32,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // Already validated by `parse` (CRCs included, so they are not computed again),
        // so this cannot fail; stop quietly if it ever did.
        let (entry, next) = parse_entry(self.bytes, self.offset, self.index, None).ok()?;
        self.offset = next;
        self.remaining -= 1;
        self.index += 1;
        Some(entry)
    }
}
