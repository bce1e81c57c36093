//! Attack class 1: a domain forges a proxy for a slot it was never given (here slot 3 of
//! the kernel's interface, which could reach `poweroff` or `crash`).
#![forbid(unsafe_code)]

use interfaces::kernel::{Kernel, Proxy};

fn main() {
    let forged = Proxy::from_slot(3);
    let _ = forged.poweroff(0);
}
