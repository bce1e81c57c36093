//! `rng N`: N random bytes from the hardware, in hex, through the `Entropy` interface
//! (imported when the command runs, as `blk` does: a board without a generator has none).

use alloc::format;
use alloc::string::String;
use core::fmt::Write;
use runtime::interfaces::entropy::{self, Entropy};
use runtime::interfaces::{entropy_status, ImportError, RRef, RandomBytes};

/// Runs `rng N` (`words` after "rng"); returns what to print.
pub fn rng(words: &[&str]) -> String {
    let max = RandomBytes::CAPACITY;
    let [n] = words else {
        return format!("usage: rng N (N random bytes from the hardware, 1 to {max})\n");
    };
    let n = match n.parse::<usize>() {
        Ok(n @ 1..) if n <= max => n,
        Ok(0) => return String::from("rng: N must be at least 1\n"),
        Ok(_) => return format!("rng: {n} bytes is too many: at most {max} in one command\n"),
        Err(_) => return format!("rng: '{n}' is not a number of bytes (1 to {max})\n"),
    };
    let driver = match entropy::import() {
        Ok(d) => d,
        Err(ImportError::NotDeclared) => return String::from("rng: no random number generator on this board (no domain in its recipe exports Entropy)\n"),
        Err(ImportError::NotExported) => return String::from("rng: the random number generator's driver is not running (it may be restarting)\n"),
        Err(e) => return format!("rng: cannot import Entropy: {e}\n"),
    };
    let filled = match driver.fill(RRef::new(RandomBytes::request(n as u32))) {
        Ok(b) => b,
        Err(e) => return format!("rng {n}: error: {e}\n"),
    };
    if filled.status != entropy_status::OK {
        return format!("rng {n}: {}\n", entropy_status::describe(filled.status));
    }
    if filled.len as usize != n {
        return format!("rng {n}: the driver changed the request's length to {}\n", filled.len);
    }
    let mut out = format!("rng {n}: ");
    for b in &filled.bytes[..n] {
        let _ = write!(out, "{b:02x}");
    }
    out.push('\n');
    out
}
