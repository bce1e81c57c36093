//! Attack class 1, every generated interface: no `from_slot` outside the trusted crate.
#![forbid(unsafe_code)]

use interfaces::hello::{self, Hello};

fn main() {
    for slot in 0..64 {
        let _ = hello::Shadow::new(hello::Proxy::from_slot(slot)).ping(1);
    }
}
