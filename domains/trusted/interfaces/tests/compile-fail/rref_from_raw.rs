//! Attack class 6: an `RRef` made from an integer would read and write any address, and
//! drop would free a block the domain does not own.
#![forbid(unsafe_code)]

use interfaces::RRef;

fn main() {
    let forged: RRef<[u64; 8]> = RRef::from_raw(0x4000_0000 as *mut u8);
    let _ = forged[0];
}
