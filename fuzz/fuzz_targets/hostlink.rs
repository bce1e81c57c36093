//! Host-link frames fed byte by byte, and BEGIN payloads (see qvq_fuzz::hostlink).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qvq_fuzz::hostlink(data);
});
