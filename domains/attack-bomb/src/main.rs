//! Attack domain (class: resource bombs). Variant 1: `runtime::spawn` without end (each
//! thread sleeps for good); variant 2: `runtime::Event::new` without end. Either must end
//! in this domain's error (a refusal it logs, or its crash), never the kernel's.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

fn thread_bomb() {
    runtime::println!("thread bomb starting");
    let mut n: u64 = 0;
    loop {
        match runtime::spawn("bomb", || loop {
            runtime::sleep_ms(3_600_000);
        }) {
            Ok(()) => n += 1,
            Err(e) => {
                runtime::println!("spawn refused after {n} threads (error {e})");
                return;
            }
        }
        if n.is_power_of_two() && n >= 16 {
            runtime::println!("{n} threads spawned");
        }
    }
}

fn event_bomb() {
    runtime::println!("event bomb starting");
    let mut n: u64 = 0;
    loop {
        match runtime::Event::new() {
            Some(e) => {
                // Use it, so that it is real.
                e.signal();
                n += 1;
            }
            None => {
                runtime::println!("Event::new refused after {n} events");
                return;
            }
        }
        if n.is_power_of_two() && n >= 1024 {
            runtime::println!("{n} events made");
        }
    }
}

fn init() -> Result<(), &'static str> {
    let r = match runtime::version().1 {
        1 => runtime::spawn("thread-bomb", thread_bomb),
        _ => runtime::spawn("event-bomb", event_bomb),
    };
    r.map_err(|_| "cannot spawn the bomb")
}

runtime::entry!(init);
