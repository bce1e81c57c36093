//! Attack domain (class: a looping hot-swap hook). It keeps state across swaps; in a swap
//! the kernel runs its `export` in the old version and its `import` in the new one. The
//! variant (manifest minor version): 1 `export` loops forever, 2 honest hooks, 3 `import`
//! loops forever. A swap to or from a looping version must be refused with the old
//! version serving on (or crashed by its CPU budget), never freeze the system.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::HelloState;

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = core::hint::black_box(n.wrapping_add(1));
    }
}

fn init() -> Result<(), &'static str> {
    let variant = runtime::version().1;
    let export: fn() -> HelloState = match variant {
        1 => || {
            runtime::println!("state export loops forever");
            spin()
        },
        _ => || HelloState { served: 7 },
    };
    let import: fn(HelloState) -> Result<(), &'static str> = match variant {
        3 => |_| {
            runtime::println!("state import loops forever");
            spin()
        },
        _ => |s| {
            runtime::println!("state imported: {}", s.served);
            Ok(())
        },
    };
    runtime::swap::keep_state::<HelloState>(export, import).map_err(|_| "keep_state refused")?;
    runtime::println!("variant {variant} running");
    Ok(())
}

runtime::entry!(init);
