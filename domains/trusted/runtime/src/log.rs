//! `println!` for domains: one line to the kernel log, prefixed with the domain's name.

use core::fmt;

/// A fixed 256-byte line buffer (no allocation, usable in the panic handler).
pub struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl LineBuf {
    pub fn new() -> Self {
        LineBuf { buf: [0; 256], len: 0 }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

pub fn write_str(s: &str) {
    // SAFETY: a live string of this length.
    unsafe { (interfaces::services().log)(s.as_ptr(), s.len()) };
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut b = LineBuf::new();
    let _ = fmt::write(&mut b, args);
    let bytes = b.as_bytes();
    // SAFETY: live bytes of this length.
    unsafe { (interfaces::services().log)(bytes.as_ptr(), bytes.len()) };
}

/// Logs one line through the kernel.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => ($crate::log::_print(format_args!($($arg)*)));
}
