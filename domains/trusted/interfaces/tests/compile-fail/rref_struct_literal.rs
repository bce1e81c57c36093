//! Attack class 6: an `RRef` built field by field around a pointer of the attacker's choosing.
#![forbid(unsafe_code)]

use core::marker::PhantomData;
use core::ptr::NonNull;
use interfaces::RRef;

fn main() {
    let forged: RRef<u64> = RRef {
        ptr: NonNull::new(0x4000_0000 as *mut u64).unwrap(),
        _owns: PhantomData,
    };
    let _ = *forged;
}
