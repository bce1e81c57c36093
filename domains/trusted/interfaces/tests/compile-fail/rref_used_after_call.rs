use interfaces::hello::{self, Hello};
use interfaces::{Numbers, RRef};

fn main() {
    let hello = hello::import().unwrap();
    let numbers = RRef::new(Numbers([1; 8]));
    let _ = hello.sum(numbers);
    // `numbers` moved into the call: the callee owns it now.
    let _ = numbers.0[0];
}
