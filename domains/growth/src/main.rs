//! The growth bench's domain (`cargo xtask bench`): how costs grow with their work. Its
//! manifest's minor version says what this instance does:
//! - 0: exports `Growth` (calls with 0 to 6 scalar arguments: the proxy against
//!   argument count);
//! - 1 to 5: keeps a swap state of 8, 64, 512, 4096 or 65536 bytes (`GrowthState*`), made
//!   in place on the shared heap, so a hot swap between two of its versions measures the
//!   window against the state's size;
//! - anything else: does nothing (the domains the boot-cost table counts).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use runtime::interfaces::growth::{self, Growth};
use runtime::interfaces::{GrowthState4k, GrowthState512, GrowthState64, GrowthState64k, GrowthState8, RpcResult};
use runtime::Mutex;

struct GrowthDomain;

impl Growth for GrowthDomain {
    fn args0(&self) -> RpcResult<u64> {
        Ok(0)
    }
    fn args1(&self, a: u64) -> RpcResult<u64> {
        Ok(a)
    }
    fn args2(&self, a: u64, b: u64) -> RpcResult<u64> {
        Ok(a.wrapping_add(b))
    }
    fn args4(&self, a: u64, b: u64, c: u64, d: u64) -> RpcResult<u64> {
        Ok(a.wrapping_add(b).wrapping_add(c).wrapping_add(d))
    }
    fn args6(&self, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> RpcResult<u64> {
        Ok(a.wrapping_add(b).wrapping_add(c).wrapping_add(d).wrapping_add(e).wrapping_add(f))
    }
}

static GROWTH: GrowthDomain = GrowthDomain;

/// The state this instance hands over in a swap (its size is the state type's).
static STATE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn export_bytes(to: &mut [u8]) {
    STATE.with(|s| to.copy_from_slice(&s[..to.len()]));
}

fn import_bytes(from: &[u8]) -> Result<(), &'static str> {
    STATE.with(|s| {
        s.clear();
        s.extend_from_slice(from);
    });
    Ok(())
}

/// Registers the in-place state hooks for each state type.
macro_rules! keep {
    ($t:ty) => {
        runtime::swap::keep_state_in_place::<$t>(|s| export_bytes(&mut s.bytes), |s| import_bytes(&s.bytes))
    };
}

fn init() -> Result<(), &'static str> {
    let (_, variant, _) = runtime::version();
    let size = match variant {
        0 => return growth::export(&GROWTH).map_err(|_| "cannot export Growth"),
        1 => 8,
        2 => 64,
        3 => 512,
        4 => 4096,
        5 => 65536,
        _ => return Ok(()),
    };
    // A state of `size` bytes that is not all zero (every byte is copied either way).
    STATE.with(|s| s.extend((0..size).map(|i| i as u8)));
    let r = match variant {
        1 => keep!(GrowthState8),
        2 => keep!(GrowthState64),
        3 => keep!(GrowthState512),
        4 => keep!(GrowthState4k),
        _ => keep!(GrowthState64k),
    };
    r.map_err(|_| "cannot declare the swap state")
}

runtime::entry!(init);
