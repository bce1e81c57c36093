//! Calling any interface with arguments given as text (the shell's `call IFACE METHOD
//! ARGS...`, one word per argument): the IDL generates one `call_text` per interface from its declaration, so no
//! domain needs hand-written shell code to be called.
//!
//! An argument is read with [`Arg`] and a result written with [`Show`]. A type without
//! such an impl still compiles in the IDL: its method is listed, and calling it says the
//! type cannot be given (or shown) as text. The choice is made per concrete type at the
//! expansion site, by method lookup on `&&Probe<T>` (an impl for `&Probe<T>` where `T` has
//! the trait is found before the fallback impl for `Probe<T>`).
#![forbid(unsafe_code)]

use crate::{BlockInfo, DomainInfo, ImportError, Numbers, RRef, RpcError, SwapReport, Text};
use core::fmt::{self, Write};
use core::marker::PhantomData;

/// One method of an interface, as declared.
#[derive(Debug)]
pub struct MethodInfo {
    pub name: &'static str,
    /// (name, type) of each argument.
    pub args: &'static [(&'static str, &'static str)],
    /// The type inside `RpcResult<...>`.
    pub result: &'static str,
    /// The doc comment's lines.
    pub doc: &'static [&'static str],
}

/// One interface and its methods.
#[derive(Debug)]
pub struct InterfaceInfo {
    pub name: &'static str,
    pub methods: &'static [MethodInfo],
}

/// Why an argument given as text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// Not a number in the type's range (decimal, or hex with `0x`).
    NotANumber,
    /// Not `true`, `false`, `1` or `0`.
    NotABool,
    /// Not exactly one character.
    NotAChar,
    /// Longer than the type holds.
    TooLong { max: usize },
    /// The type has no text form (an `RRef` of a structure).
    NotGivenAsText,
    /// The shared heap had no room for the argument.
    NoSharedHeap,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::NotANumber => f.write_str("not a number in the type's range (decimal, or hex with 0x)"),
            ArgError::NotABool => f.write_str("not true, false, 1 or 0"),
            ArgError::NotAChar => f.write_str("not a single character"),
            ArgError::TooLong { max } => write!(f, "longer than the {max} the type holds"),
            ArgError::NotGivenAsText => f.write_str("this type cannot be given as text"),
            ArgError::NoSharedHeap => f.write_str("no room on the shared heap"),
        }
    }
}

/// Why a text call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No interface of that name in the IDL.
    NoInterface,
    /// The interface has no method of that name.
    NoMethod,
    ArgCount {
        expected: usize,
        given: usize,
    },
    Arg {
        name: &'static str,
        ty: &'static str,
        why: ArgError,
    },
    /// The caller may not import the interface, or nothing exports it.
    Import(ImportError),
    /// The call itself failed.
    Rpc(RpcError),
    /// Writing the result failed.
    Output,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoInterface => f.write_str("no such interface (`help call` lists them)"),
            CallError::NoMethod => f.write_str("the interface has no such method (`help call` lists them)"),
            CallError::ArgCount { expected, given } => write!(f, "takes {expected} argument(s), {given} given"),
            CallError::Arg { name, ty, why } => write!(f, "argument {name} ({ty}): {why}"),
            CallError::Import(ImportError::NotDeclared) => {
                f.write_str("not imported by this domain's signed manifest (only interfaces the board recipe's domains export are)")
            }
            CallError::Import(e) => write!(f, "cannot import it: {e}"),
            CallError::Rpc(e) => write!(f, "{e}"),
            CallError::Output => f.write_str("the result could not be written"),
        }
    }
}

/// A type an argument can be given as, in text.
pub trait Arg: Sized {
    fn from_arg(text: &str) -> Result<Self, ArgError>;
}

/// A result type that can be written as text.
pub trait Show {
    fn show(&self, out: &mut dyn Write) -> fmt::Result;
}

/// Stands for type `T` in method lookup (see the module documentation).
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

/// Found first, for a `T` with a text form.
pub trait FromText<T> {
    fn parse(&self, text: &str) -> Result<T, ArgError>;
}

impl<T: Arg> FromText<T> for &Probe<T> {
    fn parse(&self, text: &str) -> Result<T, ArgError> {
        T::from_arg(text)
    }
}

/// The fallback, for a `T` without one.
pub trait NotFromText<T> {
    fn parse(&self, text: &str) -> Result<T, ArgError>;
}

impl<T> NotFromText<T> for Probe<T> {
    fn parse(&self, _: &str) -> Result<T, ArgError> {
        Err(ArgError::NotGivenAsText)
    }
}

/// Found first, for a result with a text form.
pub trait Shown<T> {
    fn show(&self, value: &T, out: &mut dyn Write) -> fmt::Result;
}

impl<T: Show> Shown<T> for &Probe<T> {
    fn show(&self, value: &T, out: &mut dyn Write) -> fmt::Result {
        value.show(out)
    }
}

/// The fallback: names the type.
pub trait NotShown<T> {
    fn show(&self, value: &T, out: &mut dyn Write) -> fmt::Result;
}

impl<T> NotShown<T> for Probe<T> {
    fn show(&self, _: &T, out: &mut dyn Write) -> fmt::Result {
        write!(out, "(a {}, which has no text form)", core::any::type_name::<T>())
    }
}

/// `text` as a u64: decimal, or hex after `0x`; `_` allowed between digits.
fn unsigned(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, radix) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (t, 10),
    };
    if digits.is_empty() || digits.starts_with('_') {
        return None;
    }
    let mut v: u64 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        v = v.checked_mul(radix)?.checked_add(c.to_digit(radix as u32)? as u64)?;
    }
    Some(v)
}

/// `text` as an i64: an optional `-`, then as [`unsigned`].
fn signed(text: &str) -> Option<i64> {
    let t = text.trim();
    match t.strip_prefix('-') {
        Some(rest) => {
            let m = unsigned(rest)?;
            if m == 1u64 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(m).ok().map(|v| -v)
            }
        }
        None => i64::try_from(unsigned(t)?).ok(),
    }
}

macro_rules! integers {
    ($via:ident: $($t:ty),*) => {$(
        impl Arg for $t {
            fn from_arg(text: &str) -> Result<Self, ArgError> {
                $via(text).and_then(|v| <$t>::try_from(v).ok()).ok_or(ArgError::NotANumber)
            }
        }
        impl Show for $t {
            fn show(&self, out: &mut dyn Write) -> fmt::Result {
                write!(out, "{self}")
            }
        }
    )*};
}

integers!(unsigned: u8, u16, u32, u64, usize);
integers!(signed: i8, i16, i32, i64, isize);

impl Arg for bool {
    fn from_arg(text: &str) -> Result<Self, ArgError> {
        match text.trim() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ArgError::NotABool),
        }
    }
}

impl Show for bool {
    fn show(&self, out: &mut dyn Write) -> fmt::Result {
        write!(out, "{self}")
    }
}

impl Arg for char {
    fn from_arg(text: &str) -> Result<Self, ArgError> {
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(ArgError::NotAChar),
        }
    }
}

impl Show for char {
    fn show(&self, out: &mut dyn Write) -> fmt::Result {
        write!(out, "{self:?}")
    }
}

impl Show for () {
    fn show(&self, out: &mut dyn Write) -> fmt::Result {
        out.write_str("ok")
    }
}

/// Text as given (all the words after the method, joined by the caller if it wants).
impl Arg for RRef<Text> {
    fn from_arg(text: &str) -> Result<Self, ArgError> {
        let (t, taken) = Text::from_bytes(text.as_bytes());
        if taken < text.len() {
            return Err(ArgError::TooLong { max: Text::CAPACITY });
        }
        RRef::try_new(t).map_err(|_| ArgError::NoSharedHeap)
    }
}

/// Text bytes, with any invalid UTF-8 shown as U+FFFD.
fn write_text(bytes: &[u8], out: &mut dyn Write) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        out.write_str(chunk.valid())?;
        if !chunk.invalid().is_empty() {
            out.write_char(char::REPLACEMENT_CHARACTER)?;
        }
    }
    Ok(())
}

impl Show for RRef<Text> {
    fn show(&self, out: &mut dyn Write) -> fmt::Result {
        write_text(self.as_bytes(), out)
    }
}

/// Up to eight numbers, separated by commas (`1,2,3`); the rest are zero.
impl Arg for RRef<Numbers> {
    fn from_arg(text: &str) -> Result<Self, ArgError> {
        let mut n = Numbers::default();
        for (i, part) in text.split(',').enumerate() {
            let slot = n.0.get_mut(i).ok_or(ArgError::TooLong { max: 8 })?;
            *slot = unsigned(part).ok_or(ArgError::NotANumber)?;
        }
        RRef::try_new(n).map_err(|_| ArgError::NoSharedHeap)
    }
}

impl Show for RRef<Numbers> {
    fn show(&self, out: &mut dyn Write) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            write!(out, "{}{v}", if i == 0 { "" } else { "," })?;
        }
        Ok(())
    }
}

impl Show for RRef<DomainInfo> {
    fn show(&self, out: &mut dyn Write) -> fmt::Result {
        let [major, minor, patch] = self.version;
        write!(
            out,
            "{} {major}.{minor}.{patch} {} (generation {}, {} calls served, {} restarts)",
            self.name(),
            self.state_name(),
            self.generation,
            self.calls_served,
            self.restarts
        )
    }
}

impl Show for RRef<BlockInfo> {
    fn show(&self, out: &mut dyn Write) -> fmt::Result {
        write!(
            out,
            "{} blocks of {} bytes{}{}, up to {} requests a batch",
            self.blocks,
            self.block_size,
            if self.read_only == 1 { ", read-only" } else { "" },
            if self.can_flush == 1 { ", flushes" } else { "" },
            self.max_batch
        )
    }
}

impl Show for RRef<SwapReport> {
    fn show(&self, out: &mut dyn Write) -> fmt::Result {
        let words = if self.swapped == 1 { "swapped" } else { "refused" };
        write!(out, "{words}: ")?;
        write_text(self.message.as_bytes(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_in_range_only() {
        assert_eq!(u8::from_arg("255"), Ok(255));
        assert_eq!(u8::from_arg("256"), Err(ArgError::NotANumber));
        assert_eq!(u64::from_arg("0xff_ff"), Ok(0xffff));
        assert_eq!(u64::from_arg("18446744073709551616"), Err(ArgError::NotANumber));
        assert_eq!(i8::from_arg("-128"), Ok(-128));
        assert_eq!(i8::from_arg("-129"), Err(ArgError::NotANumber));
        assert_eq!(i64::from_arg("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(u32::from_arg("-1"), Err(ArgError::NotANumber));
        assert_eq!(u32::from_arg(""), Err(ArgError::NotANumber));
        assert_eq!(u32::from_arg("0x"), Err(ArgError::NotANumber));
        assert_eq!(u32::from_arg("12a"), Err(ArgError::NotANumber));
        assert_eq!(bool::from_arg("true"), Ok(true));
        assert_eq!(bool::from_arg("yes"), Err(ArgError::NotABool));
        assert_eq!(char::from_arg("é"), Ok('é'));
        assert_eq!(char::from_arg("ab"), Err(ArgError::NotAChar));
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the double reference is what picks the impl
    fn a_type_without_a_text_form_is_refused_not_a_build_error() {
        struct Opaque;
        let r: Result<Opaque, ArgError> = (&&Probe::<Opaque>::new()).parse("1");
        assert!(matches!(r, Err(ArgError::NotGivenAsText)));
        let r: Result<u16, ArgError> = (&&Probe::<u16>::new()).parse("7");
        assert_eq!(r, Ok(7));
        let mut s = std::string::String::new();
        (&&Probe::<Opaque>::new()).show(&Opaque, &mut s).unwrap();
        assert!(s.contains("has no text form"), "{s}");
        let mut s = std::string::String::new();
        (&&Probe::<u16>::new()).show(&7, &mut s).unwrap();
        assert_eq!(s, "7");
    }

    #[test]
    fn the_idl_lists_every_interface_with_its_methods() {
        let names: std::vec::Vec<&str> = crate::CALLABLE.iter().map(|i| i.name).collect();
        assert_eq!(names, crate::ALL.iter().map(|(n, _)| *n).collect::<std::vec::Vec<_>>());
        let hello = crate::CALLABLE.iter().find(|i| i.name == "Hello").unwrap();
        let ping = hello.methods.iter().find(|m| m.name == "ping").unwrap();
        assert_eq!((ping.args, ping.result), (&[("x", "u64")][..], "u64"));
        assert!(ping.doc[0].contains("x + 1"), "{:?}", ping.doc);
    }

    #[test]
    fn unknown_interfaces_methods_and_argument_counts_are_refused_before_any_call() {
        let mut out = std::string::String::new();
        assert_eq!(crate::call_text("Nobody", "x", &[], &mut out), Err(CallError::NoInterface));
        assert_eq!(crate::call_text("hello", "nothing", &[], &mut out), Err(CallError::NoMethod));
        assert_eq!(
            crate::call_text("Hello", "ping", &[], &mut out),
            Err(CallError::ArgCount { expected: 1, given: 0 })
        );
        assert_eq!(
            crate::call_text("Hello", "ping", &["x"], &mut out),
            Err(CallError::Arg {
                name: "x",
                ty: "u64",
                why: ArgError::NotANumber
            })
        );
    }
}
