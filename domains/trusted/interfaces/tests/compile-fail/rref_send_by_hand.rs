//! Attack (red team 3): sending an `RRef` by hand and keeping it. The kernel then records
//! the block as on its way to the slot's callee while this domain still holds an `RRef`
//! to it; when that callee dies, the registry frees the block "never claimed" by it, the
//! slot is reused by another domain's block, and this `RRef` reads and writes that block.
//! Only the IDL's generated proxies may send or claim: a domain must not be able to, with
//! or without the `Moving` permission they pass (which it cannot make).
//!
//! Shown end to end before the fix (an attack-heap variant importing Hello: `RRef::new`,
//! `CrossDomain::send(&kept, hello.slot())`, then `crash hello panic` from the shell): hello's
//! reclaim freed the kept block, the attacker's next `RRef::new` got the same slot ("two
//! live RRefs name one block"), it dropped one, and the shell's `hello sum` argument
//! (`RRef<Numbers>`) landed there: "read another domain's block through a kept RRef:
//! [1, 2, 3, 4, 5, 6, 7, 8]" (and `DerefMut` would have written it).
#![forbid(unsafe_code)]

use interfaces::rref::Moving;
use interfaces::{CrossDomain, RRef};

fn main() {
    let r = RRef::new(7u64);
    CrossDomain::send(&r, 0);
    CrossDomain::send(&r, 0, Moving(()));
    CrossDomain::claim(&r, Moving::new());
    let _still_mine = *r;
}
