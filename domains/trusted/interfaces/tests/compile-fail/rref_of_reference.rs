use interfaces::RRef;

fn main() {
    let local = 5u8;
    // A reference would let another domain reach this domain's memory.
    let _ = RRef::new(&local);
}
