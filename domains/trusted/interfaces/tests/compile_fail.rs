//! What the type system must refuse: using an `RRef` after moving it into a cross-domain
//! call, and putting a type that holds a reference on the shared heap.

#[test]
fn rref_ownership_is_enforced_at_compile_time() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile-fail/*.rs");
}
