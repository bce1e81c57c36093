//! Paths and names as callers give them, checked before any lookup: a path is absolute
//! from the volume's root (a leading `/` is optional), its parts separated by one `/`,
//! none of them empty, `.` or `..`, longer than 255 bytes, or holding a control character
//! or one of `"*:<>?\|`. New files and directories get 8.3 names ("short names"), so a
//! name to create must fit one: 1–8 characters, optionally a dot and 1–3 more.

use super::FsError;
use alloc::string::String;
use alloc::vec::Vec;

/// Longest path part, as FAT's long names allow.
pub const MAX_PART: usize = 255;
const FORBIDDEN: &[char] = &['"', '*', ':', '<', '>', '?', '\\', '|'];
/// Characters a short name may hold besides A–Z and 0–9.
const SHORT_EXTRA: &[u8] = b"$%'-_@~`!(){}^#&";

/// NT case flags in a directory entry: the base or extension was all lower case.
pub const LOWER_BASE: u8 = 0x08;
pub const LOWER_EXT: u8 = 0x10;

/// The parts of `path`.
pub fn split(path: &str) -> Result<Vec<&str>, FsError> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    for part in rest.split('/') {
        if part.is_empty() {
            return Err(FsError::BadPath("an empty part (two slashes, or a slash at the end)"));
        }
        if part == "." || part == ".." {
            return Err(FsError::BadPath("`.` and `..` are not allowed: paths start at the volume's root"));
        }
        if part.len() > MAX_PART {
            return Err(FsError::BadPath("a part longer than 255 bytes"));
        }
        if part.chars().any(|c| c.is_control() || FORBIDDEN.contains(&c)) {
            return Err(FsError::BadPath("a control character or one of \" * : < > ? \\ |"));
        }
        parts.push(part);
    }
    Ok(parts)
}

/// The 11-byte short name and the NT case flags for a new entry named `name`.
pub fn short_name(name: &str) -> Result<([u8; 11], u8), FsError> {
    let (base, ext) = match name.rsplit_once('.') {
        Some((b, e)) => (b, Some(e)),
        None => (name, None),
    };
    let ext = ext.unwrap_or("");
    let fits = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|c| c.is_ascii_alphanumeric() || SHORT_EXTRA.contains(&c));
    if !fits(base, 8) || !(ext.is_empty() && !name.ends_with('.') || fits(ext, 3)) {
        return Err(FsError::NotShortName);
    }
    let mut out = [b' '; 11];
    for (i, c) in base.bytes().enumerate() {
        out[i] = c.to_ascii_uppercase();
    }
    for (i, c) in ext.bytes().enumerate() {
        out[8 + i] = c.to_ascii_uppercase();
    }
    let lower = |s: &str| s.bytes().any(|c| c.is_ascii_lowercase()) && !s.bytes().any(|c| c.is_ascii_uppercase());
    let mut flags = 0;
    if lower(base) {
        flags |= LOWER_BASE;
    }
    if lower(ext) {
        flags |= LOWER_EXT;
    }
    Ok((out, flags))
}

/// How a short name reads: `BASE.EXT`, lower-cased where the NT flags say so.
pub fn show_short(raw: &[u8; 11], flags: u8) -> String {
    let mut s = String::new();
    let part = |bytes: &[u8], lower: bool, s: &mut String| {
        for (i, &c) in bytes.iter().enumerate() {
            // 0x05 in the first byte stands for 0xe5 (which marks a deleted entry).
            let c = if i == 0 && c == 0x05 { 0xe5 } else { c };
            let c = if lower { c.to_ascii_lowercase() } else { c };
            s.push(if c.is_ascii() { c as char } else { char::REPLACEMENT_CHARACTER });
        }
    };
    let base_len = raw[..8].iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    let ext_len = raw[8..].iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    part(&raw[..base_len], flags & LOWER_BASE != 0, &mut s);
    if ext_len > 0 {
        s.push('.');
        part(&raw[8..8 + ext_len], flags & LOWER_EXT != 0, &mut s);
    }
    s
}

/// The checksum of a short name that its long-name entries carry.
pub fn lfn_checksum(raw: &[u8; 11]) -> u8 {
    raw.iter().fold(0u8, |sum, &c| sum.rotate_right(1).wrapping_add(c))
}

/// Names compare as FAT compares them: ignoring ASCII case.
pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}
