//! Whole-envelope verification, also re-signed past the signature (see qvq_fuzz::verify).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qvq_fuzz::verify(data);
});
