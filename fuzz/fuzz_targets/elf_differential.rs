//! The loader and goblin read an ELF alike (see qvq_fuzz::elf_differential).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qvq_fuzz::elf_differential(data);
});
