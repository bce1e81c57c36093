//! The initrd archive reader and its canonical re-packing (see qvq_fuzz::initrd).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qvq_fuzz::initrd(data);
});
