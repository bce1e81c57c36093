//! The signed envelope's structure (see qvq_fuzz::envelope for the properties).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qvq_fuzz::envelope(data);
});
