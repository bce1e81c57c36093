//! ELF validation and relocation: must never panic, and loading stays inside the buffer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = loader::ElfImage::parse(data) {
        let size = img.layout().size as usize;
        if size <= 1 << 24 {
            let mut mem = vec![0u8; size];
            img.load_into(&mut mem, 0x4000_0000)
                .expect("a validated image loads into a buffer of layout().size");
        }
    }
});
