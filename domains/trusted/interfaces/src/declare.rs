//! The interface definition language: `interfaces!` (in `idl.rs`) declares every
//! interface; each becomes a module with its trait, function table, proxies and hash.

/// Declares one interface. Used only through [`interfaces!`] (which also lists them).
/// Not exported: interfaces are declared in this crate only, so no domain can declare a
/// look-alike (same text, hence same hash, over types of its own).
macro_rules! interface {
    (
        $(#[$doc:meta])*
        pub mod $module:ident : $name:ident {
            $( $(#[doc = $mdoc:literal])* fn $method:ident(&self $(, $arg:ident : $argty:ty)* ) -> RpcResult<$ret:ty>; )*
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
                $( $(#[doc = $mdoc])* fn $method(&self $(, $arg: $argty)*) -> RpcResult<$ret>; )*
            }

            /// The interface's methods in declaration order, as typed functions (the
            /// exported table lists them in dispatch order: `method`).
            #[repr(C)]
            pub struct Table {
                $( pub $method: unsafe extern "C" fn(state: *const () $(, $arg: $argty)*) -> Ret<$ret>, )*
            }

            /// The callee-side adapter: a table calling `T`'s methods.
            pub fn table_for<T: $name + 'static>() -> Table {
                $(
                    #[allow(improper_ctypes_definitions)]
                    unsafe extern "C" fn $method<T: $name>(state: *const () $(, $arg: $argty)*) -> Ret<$ret> {
                        // The kernel's trampoline checked that the call has `CALL_STACK`
                        // (refused, the caller keeps and drops its arguments), and made
                        // this domain the owner of every `RRef` argument as it entered.
                        // SAFETY: the kernel passes back the `state` given to `export`, a `&'static T`.
                        let this = unsafe { &*(state as *const T) };
                        let r = this.$method($($arg),*);
                        // A result on the shared heap goes back to the caller.
                        if let Ok(v) = &r {
                            CrossDomain::give_back(v, $crate::rref::Moving::new());
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
            const N: usize = METHODS as usize;
            /// Per method, in declaration order: the argument registers holding `RRef`s.
            const MOVES: [u8; N] = [ $( $crate::abi::moves(&[$( <$argty as CrossDomain>::MOVES ),*]) ),* ];
            /// Per method, in declaration order: its index in the exported table.
            const DISPATCH: [u32; N] = $crate::abi::dispatch_order(&MOVES);

            /// Each method's index in the exported table (dispatch order: `abi::dispatch_order`).
            #[allow(non_upper_case_globals)]
            pub mod method {
                $( pub const $method: usize = super::DISPATCH[::core::mem::offset_of!(super::Table, $method) / ::core::mem::size_of::<usize>()] as usize; )*
            }

            /// The caller-side proxy: each call goes through the kernel's `proxy_call`. Only
            /// `import` makes one: a domain cannot name a slot of its choosing.
            #[derive(Clone, Copy, Debug)]
            pub struct Proxy {
                /// What the trampoline takes in its first argument, without the method
                /// index: `TAG << 16 | slot << 8`.
                call_word: u32,
                /// The kernel's trampolines and its per-thread status word
                /// (`KernelServices::proxy_call`, `proxy_call_moving`, `proxy_status`),
                /// copied at import so that a call through a proxy the caller holds in
                /// registers loads none of them.
                trampoline: usize,
                moving: usize,
                status: usize,
            }

            impl Proxy {
                fn from_slot(slot: u32) -> Self {
                    let services = $crate::abi::services_unchecked();
                    Proxy {
                        call_word: TAG << 16 | (slot & 0xff) << 8,
                        trampoline: services.proxy_call,
                        moving: services.proxy_call_moving,
                        status: services.proxy_status as usize,
                    }
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
                        type Trampoline = unsafe extern "C" fn(u64 $(, $argty)*) -> core::mem::MaybeUninit<Ret<$ret>>;
                        const DECLARED: usize = core::mem::offset_of!(Table, $method) / core::mem::size_of::<usize>();
                        // A method with `RRef` arguments goes through the trampoline that
                        // moves them to the callee as the call enters.
                        const MOVING: bool = MOVES[DECLARED] != 0;
                        const METHOD: u64 = method::$method as u64 | if MOVING { $crate::abi::MOVING_CALL } else { 0 };
                        // Our copy of the arguments: dropped only if the call never reached the callee.
                        let args = core::mem::ManuallyDrop::new(($($arg,)*));
                        // SAFETY: `proxy_call` and `proxy_call_moving` are the kernel's
                        // trampolines with this calling convention (see `KernelServices`);
                        // the arguments are moved into the call (our copy is not used again
                        // unless it failed).
                        let ret = unsafe {
                            let f: Trampoline = core::mem::transmute(if MOVING { self.moving } else { self.trampoline });
                            #[allow(unused_parens, clippy::unused_unit)]
                            let ($($arg,)*) = core::ptr::read(&*args);
                            f(self.call_word as u64 | METHOD $(, $arg)*)
                        };
                        // SAFETY: the kernel's per-thread status word, written by the trampoline.
                        let status = unsafe { core::ptr::read_volatile(self.status as *const u32) };
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
                            CrossDomain::claim(v, $crate::rref::Moving::new());
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
                let declared = table_for::<T>();
                let declared: [usize; N] = [ $( declared.$method as usize ),* ];
                // The table and each entry's moves, in dispatch order.
                let (mut table, mut moves) = ([0usize; N], [0u8; N]);
                for m in 0..N {
                    table[DISPATCH[m] as usize] = declared[m];
                    moves[DISPATCH[m] as usize] = MOVES[m];
                }
                let table: &'static [usize; N] = alloc::boxed::Box::leak(alloc::boxed::Box::new(table));
                // SAFETY: the name, hash, table, moves and object are live for the call (the
                // table and object for the domain's life); the table holds `METHODS`
                // functions of this domain and `moves` as many bytes.
                let r = unsafe {
                    ($crate::services().export)(
                        NAME.as_ptr(),
                        NAME.len(),
                        &HASH,
                        table.as_ptr() as *const (),
                        moves.as_ptr(),
                        object as *const T as *const (),
                        METHODS,
                    )
                };
                if r == 0 { Ok(()) } else { Err($crate::ExportError::from_code(r)) }
            }

            /// A proxy to the export this domain's manifest imports under this name and hash.
            pub fn import() -> Result<Proxy, $crate::ImportError> {
                // SAFETY: the name and hash are constants of this crate.
                let r = unsafe { ($crate::services().import)(NAME.as_ptr(), NAME.len(), &HASH) };
                if r < 0 { Err($crate::ImportError::from_code(r)) } else { Ok(Proxy::from_slot(r as u32)) }
            }

            /// The methods as the IDL declares them, for `help call`.
            pub const METHOD_INFO: &[$crate::call::MethodInfo] = &[
                $( $crate::call::MethodInfo {
                    name: stringify!($method),
                    args: &[$( (stringify!($arg), stringify!($argty)) ),*],
                    result: stringify!($ret),
                    doc: &[$($mdoc),*],
                }, )*
            ];

            /// Calls `method` of this interface's exporter with `args` given as text (the
            /// shell's `call`); writes the result as text to `out`.
            #[allow(unused_variables, unused_mut, unused_assignments)]
            pub fn call_text(method: &str, args: &[&str], out: &mut dyn ::core::fmt::Write) -> Result<(), $crate::call::CallError> {
                #[allow(unused_imports)]
                use $crate::call::{CallError, FromText, NotFromText, Probe, NotShown, Shown};
                $(
                    if method == stringify!($method) {
                        let names: &[&str] = &[$(stringify!($arg)),*];
                        if args.len() != names.len() {
                            return Err(CallError::ArgCount { expected: names.len(), given: args.len() });
                        }
                        let mut at = 0;
                        $(
                            let $arg: $argty = (&&Probe::<$argty>::new())
                                .parse(args[at])
                                .map_err(|why| CallError::Arg { name: stringify!($arg), ty: stringify!($argty), why })?;
                            at += 1;
                        )*
                        let proxy = import().map_err(CallError::Import)?;
                        let result: $ret = <Proxy as $name>::$method(&proxy $(, $arg)*).map_err(CallError::Rpc)?;
                        return (&&Probe::<$ret>::new()).show(&result, out).map_err(|_| CallError::Output);
                    }
                )*
                Err(CallError::NoMethod)
            }
        }
    };
}

/// Declares QvQ's interfaces (each as [`interface!`]) and lists them: [`ALL`] (name and
/// hash, which build tools resolve manifest entries with), [`CALLABLE`] and [`call_text`]
/// (the shell's `call`). A new interface is one more block inside the one invocation in
/// `idl.rs`; nothing else lists it.
macro_rules! interfaces {
    ( $( $(#[$doc:meta])* pub mod $module:ident : $name:ident { $($body:tt)* } )* ) => {
        $( interface! { $(#[$doc])* pub mod $module : $name { $($body)* } } )*

        /// Every interface QvQ defines: (name, hash).
        pub const ALL: &[(&str, [u8; 32])] = &[ $( ($module::NAME, $module::HASH) ),* ];

        /// Every interface with its methods, for `help call`.
        pub const CALLABLE: &[$crate::call::InterfaceInfo] = &[
            $( $crate::call::InterfaceInfo { name: $module::NAME, methods: $module::METHOD_INFO } ),*
        ];

        /// Calls `method` of interface `interface` (its name, any case) with `args` as text;
        /// writes the result to `out`. The calling domain must import the interface.
        pub fn call_text(interface: &str, method: &str, args: &[&str], out: &mut dyn ::core::fmt::Write) -> Result<(), $crate::call::CallError> {
            $(
                if interface.eq_ignore_ascii_case($module::NAME) {
                    return $module::call_text(method, args, out);
                }
            )*
            Err($crate::call::CallError::NoInterface)
        }
    };
}
