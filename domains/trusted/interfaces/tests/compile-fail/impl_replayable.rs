//! Attack class 5: a domain marks its own type as replayable by a shadow proxy (a shadow
//! would pass it twice; an owning handle must never be replayed).
#![forbid(unsafe_code)]

struct Once(u64);

impl interfaces::Replayable for Once {
    fn replay(&self) -> Option<Self> {
        Some(Once(self.0))
    }
}

fn main() {
    let _ = interfaces::Replayable::replay(&Once(1));
}
