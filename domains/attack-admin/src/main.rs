//! Attack domain: signed by the limited test key as `hello` (its policy: only the
//! name `hello`, exporting only `Hello`, importing nothing, no device), it imports `Kernel`
//! and, if the kernel let it run, would crash every other domain and power the machine off.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::kernel::{self, Kernel};

fn init() -> Result<(), &'static str> {
    let k = kernel::import().map_err(|_| "cannot import Kernel")?;
    let n = k.domain_count().unwrap_or(0);
    let mut crashed = 0;
    for index in 0..n {
        let Ok(info) = k.domain_info(index) else { continue };
        // Not itself (it is `hello` now), and not the kernel (domain 0).
        if info.id == 0 || info.name.starts_with(b"hello\0") {
            continue;
        }
        if k.crash(info.id).is_ok() {
            crashed += 1;
        }
    }
    runtime::println!("red team: a limited-key domain crashed {} other domains through Kernel", crashed);
    let _ = k.poweroff(42);
    Ok(())
}

runtime::entry!(init);
