//! The FS domain's FAT code on any disk image: mount, list, read, write, mkdir, remove
//! (see qvq_fuzz::fat_volume).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qvq_fuzz::fat_volume(data);
});
