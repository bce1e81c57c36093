//! The domain manifest: decode, and the canonical re-encoding (see qvq_fuzz::manifest).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qvq_fuzz::manifest(data);
});
