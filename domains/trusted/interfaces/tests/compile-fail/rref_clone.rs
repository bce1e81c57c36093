//! Attack class 6: a second owner of one shared-heap block (a copy would be freed twice,
//! or kept after the first went to another domain).
#![forbid(unsafe_code)]

use interfaces::RRef;

fn main() {
    let a = RRef::new(7u64);
    let b: RRef<u64> = Clone::clone(&a);
    drop(a);
    let _ = *b;
}
