//! Attack class 5: a domain marks its own type as passable across domains: a reference
//! into its memory would reach the callee (with a look-alike interface, or any generic
//! code bounded by `CrossDomain`).
#![forbid(unsafe_code)]

struct Leak(&'static [u8]);

impl interfaces::CrossDomain for Leak {}

fn main() {
    static SECRET: [u8; 4] = [1, 2, 3, 4];
    interfaces::CrossDomain::claim(&Leak(&SECRET));
}
