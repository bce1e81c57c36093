//! QvQ's interface definitions and the kernel/domain ABI (trusted; shared by the kernel and
//! every domain).
//!
//! Each interface is declared once, here, with the crate-private `interface!` macro. From the declaration come the
//! Rust trait, a `#[repr(C)]` table of `extern "C"` functions, the callee-side adapter
//! (`table_for`), the caller-side proxy (`Proxy`, which calls through the kernel's trusted
//! `proxy_call`), `export`/`import` helpers, and `HASH`: SHA-256 of the declaration's text,
//! the same in every separate build.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod abi;
pub mod rref;
pub mod sha256;
mod types;

pub use abi::{services, set_services, DeviceGrant, KernelServices, ABI_VERSION};
pub use rref::{CrossDomain, RRef, RRefable, Replayable};
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
}

impl RpcError {
    pub fn from_code(code: u32) -> RpcError {
        match code {
            1 => RpcError::Crashed,
            2 => RpcError::Unavailable,
            3 => RpcError::NotAllowed,
            5 => RpcError::Interrupted,
            6 => RpcError::StackExhausted,
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

/// Declares an interface. See the crate documentation; the interfaces QvQ has are below.
/// Not exported: interfaces are declared here only, in the trusted crate, so no domain can
/// declare a look-alike (same text, hence same hash, over types of its own).
macro_rules! interface {
    (
        $(#[$doc:meta])*
        pub mod $module:ident : $name:ident {
            $( $(#[$mdoc:meta])* fn $method:ident(&self $(, $arg:ident : $argty:ty)* ) -> RpcResult<$ret:ty>; )*
        }
    ) => {
        $(#[$doc])*
        pub mod $module {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::{CrossDomain, Ret, RpcError, RpcResult, RRef};
            #[allow(unused_imports)]
            use ::core::primitive::{u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, bool, char};

            /// The interface's name, as manifests list it.
            pub const NAME: &str = stringify!($name);
            /// The declaration's text, which `HASH` covers.
            pub const TEXT: &str = stringify!($name { $( fn $method(&self $(, $arg : $argty)*) -> RpcResult<$ret>; )* });
            /// SHA-256 of `TEXT` without whitespace.
            pub const HASH: [u8; 32] = $crate::sha256::sha256_compact(TEXT);

            pub trait $name: Sync {
                $( $(#[$mdoc])* fn $method(&self $(, $arg: $argty)*) -> RpcResult<$ret>; )*
            }

            /// The function table a callee exports.
            #[repr(C)]
            pub struct Table {
                $( pub $method: unsafe extern "C" fn(state: *const () $(, $arg: $argty)*) -> Ret<$ret>, )*
            }

            /// The callee-side adapter: a table calling `T`'s methods.
            pub fn table_for<T: $name + 'static>() -> Table {
                $(
                    #[allow(improper_ctypes_definitions)]
                    unsafe extern "C" fn $method<T: $name>(state: *const () $(, $arg: $argty)*) -> Ret<$ret> {
                        // A call must not start so deep that the callee would run out of
                        // stack through its caller's fault (and be blamed for it).
                        if !$crate::abi::stack_left_for_a_call() {
                            return Ret::Err(RpcError::StackExhausted);
                        }
                        // Arguments now belong to the callee.
                        $( CrossDomain::claim(&$arg); )*
                        // SAFETY: the kernel passes back the `state` given to `export`, a `&'static T`.
                        let this = unsafe { &*(state as *const T) };
                        let r = this.$method($($arg),*);
                        // A result on the shared heap goes back to the caller.
                        if let Ok(v) = &r {
                            CrossDomain::send(v, $crate::abi::RETURN_TO_CALLER);
                        }
                        r.into()
                    }
                )*
                Table { $( $method: $method::<T>, )* }
            }

            /// The interface's tag: the first two bytes of `HASH`. The trampoline refuses a
            /// call whose tag is not the one its slot was made for.
            const TAG: u32 = (HASH[0] as u32) | ((HASH[1] as u32) << 8);
            /// The number of methods: the trampoline refuses a method index past it.
            const METHODS: u32 = (::core::mem::size_of::<Table>() / ::core::mem::size_of::<usize>()) as u32;

            /// The caller-side proxy: each call goes through the kernel's `proxy_call`. Only
            /// `import` makes one: a domain cannot name a slot of its choosing.
            #[derive(Clone, Copy, Debug)]
            pub struct Proxy {
                /// What the trampoline takes in its first argument, without the method
                /// index: `TAG << 16 | slot << 8`.
                call_word: u32,
            }

            impl Proxy {
                const fn from_slot(slot: u32) -> Self {
                    Proxy { call_word: TAG << 16 | (slot & 0xff) << 8 }
                }
                pub fn slot(&self) -> u32 {
                    (self.call_word >> 8) & 0xff
                }
                /// The generation of the callee instance this handle reaches now: when it
                /// changes, the caller talks to a restarted instance.
                pub fn generation(&self) -> u32 {
                    // SAFETY: a plain slot number.
                    unsafe { ($crate::services().slot_generation)(self.slot()) }
                }
            }

            impl $name for Proxy {
                $(
                    #[inline]
                    fn $method(&self $(, $arg: $argty)*) -> RpcResult<$ret> {
                        type Trampoline = unsafe extern "C" fn(u32 $(, $argty)*) -> core::mem::MaybeUninit<Ret<$ret>>;
                        const METHOD: u32 = (core::mem::offset_of!(Table, $method) / core::mem::size_of::<usize>()) as u32;
                        let services = $crate::abi::services_unchecked();
                        // Shared-heap arguments go to the callee of this slot.
                        $( CrossDomain::send(&$arg, self.slot()); )*
                        // Our copy of the arguments: dropped only if the call never reached the callee.
                        let args = core::mem::ManuallyDrop::new(($($arg,)*));
                        // SAFETY: `proxy_call` is the kernel's trampoline with this calling
                        // convention (see `KernelServices::proxy_call`); the arguments are
                        // moved into the call (our copy is not used again unless it failed).
                        let ret = unsafe {
                            let f: Trampoline = core::mem::transmute(services.proxy_call);
                            #[allow(unused_parens, clippy::unused_unit)]
                            let ($($arg,)*) = core::ptr::read(&*args);
                            f(self.call_word | METHOD $(, $arg)*)
                        };
                        // SAFETY: the kernel's per-thread status word, written by the trampoline.
                        let status = unsafe { core::ptr::read_volatile(services.proxy_status) };
                        if status != 0 {
                            // Out of line: a failure, or a call a hot swap cancelled, which
                            // is made again if its arguments can be passed again.
                            #[allow(unused_variables, clippy::unused_unit, unused_parens)]
                            return $crate::abi::call_failed(status, args, |again: &($($argty,)*)| {
                                let ($($arg,)*) = again;
                                let ($($arg,)*) = ($($crate::Replayable::replay($arg)?,)*);
                                Some(self.$method($($arg),*))
                            });
                        }
                        // SAFETY: status 0: the callee returned this value.
                        let r: RpcResult<$ret> = unsafe { ret.assume_init() }.into();
                        if let Ok(v) = &r {
                            CrossDomain::claim(v);
                        }
                        r
                    }
                )*
            }

            /// A shadow proxy for idempotent methods: if the callee crashes (or is down), it
            /// waits for the restart and makes the call once more, so the caller does not
            /// see the failure. Calls whose arguments cannot be replayed (an `RRef`) fail
            /// as with the plain proxy.
            #[derive(Clone, Copy, Debug)]
            pub struct Shadow {
                proxy: Proxy,
            }

            impl Shadow {
                pub const fn new(proxy: Proxy) -> Self {
                    Shadow { proxy }
                }
            }

            impl $name for Shadow {
                $(
                    fn $method(&self $(, $arg: $argty)*) -> RpcResult<$ret> {
                        #[allow(unused_parens)]
                        let originals = ($($crate::Replayable::replay(&$arg),)*);
                        let first = self.proxy.$method($($arg),*);
                        match first {
                            Err(RpcError::Crashed) | Err(RpcError::Unavailable) => {
                                #[allow(irrefutable_let_patterns)]
                                let ($(Some($arg),)*) = originals else { return first };
                                let _ = ($(&$arg,)*);
                                $crate::abi::await_restart(|| {
                                    let ($($arg,)*) = ($($crate::Replayable::replay(&$arg)?,)*);
                                    Some(self.proxy.$method($($arg),*))
                                })
                                .unwrap_or(first)
                            }
                            r => r,
                        }
                    }
                )*
            }

            /// Exports `object` as this interface of the calling domain.
            pub fn export<T: $name + 'static>(object: &'static T) -> Result<(), $crate::ExportError> {
                let table: &'static Table = alloc::boxed::Box::leak(alloc::boxed::Box::new(table_for::<T>()));
                // SAFETY: the name, hash, table and object are live for the domain's life;
                // the table holds `METHODS` functions of this domain.
                let r = unsafe {
                    ($crate::services().export)(NAME.as_ptr(), NAME.len(), &HASH, table as *const Table as *const (), object as *const T as *const (), METHODS)
                };
                if r == 0 { Ok(()) } else { Err($crate::ExportError::from_code(r)) }
            }

            /// A proxy to the export this domain's manifest imports under this name and hash.
            pub fn import() -> Result<Proxy, $crate::ImportError> {
                // SAFETY: the name and hash are constants of this crate.
                let r = unsafe { ($crate::services().import)(NAME.as_ptr(), NAME.len(), &HASH) };
                if r < 0 { Err($crate::ImportError::from_code(r)) } else { Ok(Proxy::from_slot(r as u32)) }
            }
        }
    };
}

interface! {
    /// A character console. The PL011 driver domain exports it.
    pub mod console: Console {
        /// Writes `text` (its first `len` bytes).
        fn write(&self, text: RRef<Text>) -> RpcResult<()>;
        /// Waits for the next received byte.
        fn read_byte(&self) -> RpcResult<u8>;
    }
}

interface! {
    /// The kernel's introspection and control interface, exported by the kernel itself.
    pub mod kernel: Kernel {
        fn domain_count(&self) -> RpcResult<u32>;
        fn domain_info(&self, index: u32) -> RpcResult<RRef<DomainInfo>>;
        fn free_frames(&self) -> RpcResult<u64>;
        /// Restarts domain `id` (crashed, held, or running) from its verified image.
        fn restart(&self, id: u32) -> RpcResult<()>;
        /// Fault injection: domain `id` crashes now, as if it had panicked.
        fn crash(&self, id: u32) -> RpcResult<()>;
        fn poweroff(&self, status: u32) -> RpcResult<()>;
        /// Hot-swaps domain `name` for initrd entry `entry` (empty: the newest entry
        /// newer than the running version). A lower version goes in only if its signed
        /// manifest says `downgrade`; nothing goes in below the rollback floor.
        fn swap(&self, name: RRef<Text>, entry: RRef<Text>, fresh: bool) -> RpcResult<RRef<SwapReport>>;
        /// Line `line` of what `versions NAME` shows (running, available, retired);
        /// `Refused` past the last line.
        fn versions(&self, name: RRef<Text>, line: u32) -> RpcResult<RRef<Text>>;
    }
}

interface! {
    /// The test domain's interface: calls that succeed, move data, or fail on purpose.
    pub mod hello: Hello {
        /// Does nothing (the cost of a call itself).
        fn nop(&self) -> RpcResult<()>;
        /// Returns `x + 1` and counts the ping (the count is the state a hot swap keeps).
        fn ping(&self, x: u64) -> RpcResult<u64>;
        /// Pings served, over every version swapped in since boot (or the last restart).
        fn served(&self) -> RpcResult<u64>;
        /// The answering version's manifest version: `major << 32 | minor << 16 | patch`.
        fn version(&self) -> RpcResult<u64>;
        /// Sleeps `ms` milliseconds inside the call (a call that stays in flight).
        fn nap(&self, ms: u64) -> RpcResult<()>;
        fn sum(&self, numbers: RRef<Numbers>) -> RpcResult<u64>;
        /// `how`: 0 panic, 1 allocate without bound, 2 recurse without bound, 3 loop
        /// forever, 4 a fault in trusted code (the runtime's fault injector).
        fn fail(&self, how: u32) -> RpcResult<u64>;
    }
}

interface! {
    /// A domain in the middle: it calls the test domain on the caller's behalf (nested
    /// calls: the shell calls relay, relay calls hello).
    pub mod relay: Relay {
        /// Calls `hello.fail(how)`; reports how that call ended (0 it returned, 1 the callee
        /// crashed, 2 it was unavailable) and that relay itself carried on.
        fn relay_fail(&self, how: u32) -> RpcResult<u32>;
    }
}

/// Every interface QvQ defines: (name, hash). Build tools resolve manifest entries with it.
pub const ALL: &[(&str, [u8; 32])] = &[
    (console::NAME, console::HASH),
    (kernel::NAME, kernel::HASH),
    (hello::NAME, hello::HASH),
    (relay::NAME, relay::HASH),
];

#[cfg(test)]
mod tests {
    #[test]
    fn interface_hashes_are_distinct_and_cover_the_text() {
        assert_ne!(super::console::HASH, super::hello::HASH);
        let compact: std::string::String = super::console::TEXT.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        assert_eq!(super::console::HASH, super::sha256::sha256(compact.as_bytes()));
        assert!(compact.starts_with("Console{fnwrite(&self,text:RRef<Text>)->RpcResult<()>;"), "{compact}");
    }
}
