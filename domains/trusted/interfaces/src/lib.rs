//! QvQ's interface definitions and the kernel/domain ABI (trusted; shared by the kernel and
//! every domain).
//!
//! Each interface is declared once, in `idl.rs`, with the crate-private `interfaces!` macro. From the declaration come the
//! Rust trait, a `#[repr(C)]` table of `extern "C"` functions, the callee-side adapter
//! (`table_for`), the caller-side proxy (`Proxy`, which calls through the kernel's trusted
//! `proxy_call`), `export`/`import` helpers, and `HASH`: SHA-256 of the declaration's text,
//! the same in every separate build.
#![cfg_attr(not(test), no_std)]
// Trusted, so not `forbid`: `unsafe` is allowed only in the modules marked below (the ABI,
// `RRef`, the marker-trait impls, the IDL's generated tables and proxies, the block
// shadow's journal cell); everywhere else in this crate it is a compile error.
#![deny(unsafe_code)]

extern crate alloc;

#[allow(unsafe_code)]
pub mod abi;
#[allow(unsafe_code)]
pub mod block_shadow;
pub mod call;
#[allow(unsafe_code)]
pub mod rref;
pub mod sha256;
#[allow(unsafe_code)]
mod types;
#[macro_use]
mod declare;
#[allow(unsafe_code)]
mod idl;

pub use abi::{services, set_services, DeviceGrant, DmaGrant, KernelServices, ABI_VERSION};
pub use idl::*;
pub use rref::{CrossDomain, RRef, RRefable, Replayable, Zeroable};
pub use types::*;

/// Why a cross-domain call failed.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcError {
    /// The callee crashed during the call (the call was unwound).
    Crashed = 1,
    /// The callee is not running (crashed earlier, held, or never started).
    Unavailable = 2,
    /// The caller may not use this slot.
    NotAllowed = 3,
    /// The callee refused the request (bad argument, busy, ...).
    Refused = 4,
    /// A hot swap cancelled the call before it had any effect, and its arguments could
    /// not be passed again (an `RRef` went to the old version and was reclaimed with it).
    Interrupted = 5,
    /// The caller left too little stack for the call (`abi::CALL_STACK`): the callee did
    /// not run.
    StackExhausted = 6,
    /// The callee's shared-heap quota has no room for the call's `RRef` arguments: the
    /// callee did not run, and the arguments stayed the caller's.
    NoRoom = 7,
}

impl RpcError {
    pub fn from_code(code: u32) -> RpcError {
        match code {
            1 => RpcError::Crashed,
            2 => RpcError::Unavailable,
            3 => RpcError::NotAllowed,
            5 => RpcError::Interrupted,
            6 => RpcError::StackExhausted,
            7 => RpcError::NoRoom,
            _ => RpcError::Refused,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            RpcError::Crashed => "callee crashed",
            RpcError::Unavailable => "callee unavailable",
            RpcError::NotAllowed => "not allowed",
            RpcError::Refused => "refused",
            RpcError::Interrupted => "interrupted by a hot swap",
            RpcError::StackExhausted => "the caller left too little stack for the call",
            RpcError::NoRoom => "the callee's shared-heap quota has no room for the arguments",
        }
    }
}

impl core::fmt::Display for RpcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the kernel refused to export an interface for the calling domain.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportError {
    /// The domain's signed manifest does not declare this export with this hash.
    NotDeclared = -2,
    /// The domain, or another running domain, exports an interface of this name already.
    AlreadyExported = -3,
    /// Any other refusal (an unknown code).
    Refused = -1,
}

impl ExportError {
    /// The error an ABI code (negative) stands for.
    pub fn from_code(code: i32) -> ExportError {
        match code {
            -2 => ExportError::NotDeclared,
            -3 => ExportError::AlreadyExported,
            _ => ExportError::Refused,
        }
    }
}

impl core::fmt::Display for ExportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ExportError::NotDeclared => "not declared with this hash in the signed manifest",
            ExportError::AlreadyExported => "an interface of this name is exported already",
            ExportError::Refused => "refused",
        })
    }
}

/// Why the kernel refused to import an interface for the calling domain.
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportError {
    /// The domain's signed manifest does not declare this import with this hash.
    NotDeclared = -2,
    /// No running domain exports this interface with this hash.
    NotExported = -3,
    /// Every proxy slot is in use.
    NoFreeSlot = -4,
    /// Any other refusal (an unknown code).
    Refused = -1,
}

impl ImportError {
    /// The error an ABI code (negative) stands for.
    pub fn from_code(code: i64) -> ImportError {
        match code {
            -2 => ImportError::NotDeclared,
            -3 => ImportError::NotExported,
            -4 => ImportError::NoFreeSlot,
            _ => ImportError::Refused,
        }
    }
}

impl core::fmt::Display for ImportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ImportError::NotDeclared => "not declared with this hash in the signed manifest",
            ImportError::NotExported => "no running domain exports it with this hash",
            ImportError::NoFreeSlot => "no free proxy slot",
            ImportError::Refused => "refused",
        })
    }
}

/// What every cross-domain method returns.
pub type RpcResult<T> = Result<T, RpcError>;

/// `RpcResult` with a fixed C layout, for the function tables.
#[repr(C)]
pub enum Ret<T> {
    Ok(T),
    Err(RpcError),
}

impl<T> From<RpcResult<T>> for Ret<T> {
    fn from(r: RpcResult<T>) -> Self {
        match r {
            Ok(v) => Ret::Ok(v),
            Err(e) => Ret::Err(e),
        }
    }
}

impl<T> From<Ret<T>> for RpcResult<T> {
    fn from(r: Ret<T>) -> Self {
        match r {
            Ret::Ok(v) => Ok(v),
            Ret::Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_list_plain_methods_then_x1_alone_then_the_rest_in_declaration_order() {
        use super::abi::{dispatch_groups, dispatch_order, moves};
        assert_eq!(moves(&[false, true, false, true]), 0b1010);
        let declared = [0, 1, 0b11, 0, 1, 0b10];
        let order = dispatch_order(&declared);
        assert_eq!(order, [0, 2, 4, 1, 3, 5]);
        let mut exported = [0u8; 6];
        for (m, i) in order.iter().enumerate() {
            exported[*i as usize] = declared[m];
        }
        assert_eq!(dispatch_groups(&exported), Some((2, 2)));
        // What the kernel refuses: groups out of order, a register past x6.
        assert_eq!(dispatch_groups(&declared), None);
        assert_eq!(dispatch_groups(&[0, 1, 0]), None);
        assert_eq!(dispatch_groups(&[0, 2, 1]), None);
        assert_eq!(dispatch_groups(&[0, 1 << 6]), None);
        assert_eq!(dispatch_groups(&[]), Some((0, 0)));
        // Hello, as both sides lay it out: its plain methods, then `sum` and `take` (x1
        // alone), then `pair`.
        use super::hello::method;
        let plain = [method::nop, method::ping, method::served, method::version, method::nap, method::fail];
        assert_eq!(plain, [0, 1, 2, 3, 4, 5]);
        assert_eq!((method::sum, method::take, method::pair), (6, 7, 8));
    }

    #[test]
    fn interface_hashes_are_distinct_and_cover_the_text() {
        assert_ne!(super::console::HASH, super::hello::HASH);
        let compact: std::string::String = super::console::TEXT.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        assert_eq!(super::console::HASH, super::sha256::sha256(compact.as_bytes()));
        assert!(compact.starts_with("Console{fnwrite(&self,text:RRef<Text>)->RpcResult<()>;"), "{compact}");
    }

    /// Every refusal a GPIO driver answers reads back as itself, results as results, and
    /// anything else (a hostile driver's answer) as `BadAnswer`, never as a result.
    #[test]
    fn gpio_answers_read_back_and_odd_ones_are_bad() {
        use super::GpioError::{self, *};
        for e in [NoSuchPin, SystemPin, FunctionRefused, NoSuchPull, BadAnswer] {
            assert_eq!(GpioError::read(e.answer()), Err(e));
        }
        assert_eq!(GpioError::read(0), Ok(0));
        assert_eq!(GpioError::read(1), Ok(1));
        assert_eq!(GpioError::read(u32::MAX as i64), Ok(u32::MAX));
        for odd in [u32::MAX as i64 + 1, i64::MAX, -6, -1000, i64::MIN] {
            assert_eq!(GpioError::read(odd), Err(BadAnswer), "{odd}");
        }
    }
}
