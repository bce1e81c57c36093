//! Attack domain (class: an initialisation that never returns). Boot must carry on: the
//! CPU budget takes back an init that loops (variant 1), the kernel call's time limit one
//! that waits forever (variant 2: sleeps; variant 3: waits on its own event), and the shell
//! answers.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

fn init() -> Result<(), &'static str> {
    match runtime::version().1 {
        2 => {
            runtime::println!("init sleeps forever");
            loop {
                runtime::sleep_ms(u64::MAX);
            }
        }
        3 => {
            runtime::println!("init waits forever on its own event");
            let e = runtime::Event::new().ok_or("no event")?;
            loop {
                e.wait(0);
            }
        }
        _ => {
            runtime::println!("init loops forever");
            let mut n: u64 = 0;
            loop {
                n = core::hint::black_box(n.wrapping_add(1));
            }
        }
    }
}

runtime::entry!(init);
