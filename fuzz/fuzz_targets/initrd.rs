//! The initrd reader: must never panic, and an accepted archive iterates fully.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = initrd::Archive::parse(data) {
        assert_eq!(a.entries().count(), a.len());
    }
});
