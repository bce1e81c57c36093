//! Every value a domain hands the kernel is an allegation (Hubris's word), checked against
//! what that domain owns before it is used. A pointer and length must lie inside the
//! domain's own memory — its image, its private heap, or the stack of the thread making
//! the call — and the bytes are copied into the kernel before any kernel lock is taken, so
//! nothing of a domain is ever read while the kernel holds a lock (or read twice).

use super::registry::registry;
use super::{DomainId, KERNEL};
use crate::memory::Region;
use alloc::string::String;
use alloc::vec::Vec;
use loader::Permission;

/// Why a value from a domain was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The range is not (all) the domain's own memory.
    NotOwned,
    /// Longer than the service takes.
    TooLong,
    /// The domain has no instance (it is being torn down).
    NoInstance,
    /// A kernel object (an event) of another domain.
    NotItsObject,
    /// An exported table whose entries are not grouped by what their methods move
    /// (`interfaces::abi::dispatch_groups`).
    NotGrouped,
}

/// The memory a domain may point the kernel at, as it is now.
pub struct Reach {
    readable: Vec<Region>,
    writable: Vec<Region>,
    code: Vec<Region>,
}

impl Reach {
    /// What domain `d` owns now, for the running thread. `None` for the kernel itself
    /// (trusted: its pointers are its own) and for a domain without an instance.
    pub fn of(d: DomainId) -> Result<Option<Reach>, Refusal> {
        if d == KERNEL {
            return Ok(None);
        }
        let stack = crate::sched::current_stack();
        let r = registry();
        let inst = r.get(d).and_then(|x| x.instance()).ok_or(Refusal::NoInstance)?;
        let image = Region {
            base: inst.image.base,
            size: inst.image.size,
        };
        let heap = inst.heap_region();
        let segment = |p: Permission| inst.image.segments.iter().filter(move |s| s.2 == p).map(|s| Region { base: s.0, size: s.1 });
        let mut writable: Vec<Region> = segment(Permission::RW).collect();
        writable.push(heap);
        writable.extend(stack);
        let mut readable = alloc::vec![image, heap];
        readable.extend(stack);
        Ok(Some(Reach {
            readable,
            writable,
            code: segment(Permission::RX).collect(),
        }))
    }

    fn inside(list: &[Region], ptr: usize, len: usize) -> bool {
        let Some(end) = ptr.checked_add(len) else { return false };
        list.iter().any(|r| ptr >= r.base && end <= r.end())
    }

    pub fn can_read(&self, ptr: usize, len: usize) -> bool {
        Self::inside(&self.readable, ptr, len)
    }

    pub fn can_write(&self, ptr: usize, len: usize) -> bool {
        Self::inside(&self.writable, ptr, len)
    }

    /// True if `addr` is an instruction of the domain's own code.
    pub fn is_code(&self, addr: usize) -> bool {
        addr.is_multiple_of(4) && Self::inside(&self.code, addr, 4)
    }
}

/// Copies `len` bytes at `ptr` from domain `d` (at most `max`).
pub fn copy_in(d: DomainId, ptr: *const u8, len: usize, max: usize) -> Result<Vec<u8>, Refusal> {
    if len > max {
        return Err(Refusal::TooLong);
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    if let Some(reach) = Reach::of(d)? {
        if !reach.can_read(ptr as usize, len) {
            return Err(Refusal::NotOwned);
        }
    }
    // SAFETY: `[ptr, ptr + len)` lies in memory the domain owns (checked just now: its
    // image, heap or the running thread's stack, all mapped readable), or the kernel passed
    // its own; nothing frees it while this thread copies (one core, no lock held).
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) }.to_vec())
}

/// Copies a string of `len` bytes at `ptr` from domain `d`, cut to `max` bytes; bytes that
/// are not UTF-8 are replaced.
pub fn copy_text(d: DomainId, ptr: *const u8, len: usize, max: usize) -> Result<String, Refusal> {
    let bytes = copy_in(d, ptr, len.min(max), max)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Text a domain gave the kernel, made safe to print: control characters (terminal escape
/// sequences, carriage returns, C1 controls) become `?`, so a domain cannot start a line
/// that looks like the kernel's or move the cursor. With `multiline`, a line break is kept
/// but the next line is indented, so it never starts like a kernel log line; otherwise it
/// is shown as `\n`.
pub fn printable(text: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' if multiline => out.push_str("\n    "),
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Copies a 32-byte hash at `ptr` from domain `d`.
pub fn copy_hash(d: DomainId, ptr: *const [u8; 32]) -> Result<[u8; 32], Refusal> {
    let bytes = copy_in(d, ptr as *const u8, 32, 32)?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// Writes `value` to `ptr` in domain `d`, if `d` may write there.
pub fn copy_out<T: Copy>(d: DomainId, ptr: *mut T, value: T) -> Result<(), Refusal> {
    let len = core::mem::size_of::<T>();
    if !(ptr as usize).is_multiple_of(core::mem::align_of::<T>()) {
        return Err(Refusal::NotOwned);
    }
    if let Some(reach) = Reach::of(d)? {
        if !reach.can_write(ptr as usize, len) {
            return Err(Refusal::NotOwned);
        }
    }
    // SAFETY: `[ptr, ptr + size_of T)` is aligned and lies in memory the domain may write
    // (checked just now), or the kernel passed its own.
    unsafe { ptr.write(value) };
    Ok(())
}
