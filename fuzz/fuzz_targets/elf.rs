//! ELF validation and loading into a buffer (see qvq_fuzz::elf).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qvq_fuzz::elf(data);
});
