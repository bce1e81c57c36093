//! Attack (red team 3, then the trampoline moves): giving an `RRef` back by hand and keeping
//! it. The kernel would record the block as on its way back to the caller of the call this
//! domain serves while this domain still holds an `RRef` to it; the caller's claim would
//! then leave two domains with an `RRef` to one block, each reading and writing it. Only
//! the IDL's generated adapters and proxies may give back or claim: a domain must not be
//! able to, with or without the `Moving` permission they pass (which it cannot make).
//!
//! (Before arguments moved in the trampoline, the same held for sending one through a
//! slot: shown end to end then, an attacker kept an `RRef` to a block the registry freed
//! with the callee's death and reused for another domain's `hello sum` argument.)
#![forbid(unsafe_code)]

use interfaces::rref::Moving;
use interfaces::{CrossDomain, RRef};

fn main() {
    let r = RRef::new(7u64);
    CrossDomain::give_back(&r);
    CrossDomain::give_back(&r, Moving(()));
    CrossDomain::claim(&r, Moving::new());
    let _still_mine = *r;
}
