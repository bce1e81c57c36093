//! Plain data types that cross domains inside `RRef`s.

use crate::rref::RRefable;

/// Up to 248 bytes of text.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Text {
    pub len: u32,
    pub bytes: [u8; 248],
}

// SAFETY: plain bytes and an integer: no references, no pointers.
unsafe impl RRefable for Text {}

impl Text {
    pub const CAPACITY: usize = 248;

    /// The first up-to-248 bytes of `s`, and how many were taken.
    pub fn from_bytes(s: &[u8]) -> (Text, usize) {
        let n = s.len().min(Self::CAPACITY);
        let mut t = Text {
            len: n as u32,
            bytes: [0; 248],
        };
        t.bytes[..n].copy_from_slice(&s[..n]);
        (t, n)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(Self::CAPACITY)]
    }
}

/// Eight numbers, for the RRef-moving test call.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Numbers(pub [u64; 8]);

// SAFETY: integers only.
unsafe impl RRefable for Numbers {}

/// One domain as the kernel sees it, for the shell's `domains` command.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DomainInfo {
    pub id: u32,
    /// 0 running, 1 crashed, 2 rejected, 3 held.
    pub state: u32,
    pub name: [u8; 32],
    pub version: [u32; 3],
    pub key_id: [u8; 8],
    pub calls_served: u64,
    pub restarts: u32,
    pub generation: u32,
    /// Its private heap (the manifest's limit), and what it owns on the shared heap.
    pub heap_bytes: u64,
    pub shared_bytes: u64,
}

// SAFETY: integers and byte arrays only.
unsafe impl RRefable for DomainInfo {}

impl DomainInfo {
    pub fn name(&self) -> &str {
        let n = self.name.iter().position(|&b| b == 0).unwrap_or(32);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
    pub fn state_name(&self) -> &'static str {
        match self.state {
            0 => "running",
            1 => "crashed",
            2 => "rejected",
            _ => "held",
        }
    }
}
