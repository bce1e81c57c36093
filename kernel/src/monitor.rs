//! A minimal kernel monitor on the console, until the shell runs as a domain.

use crate::{kprint, kprintln};

const HELP: &str = "commands: help, uptime, threads, irqs, mem, initrd, poweroff";

pub fn run(initrd: Option<&'static [u8]>) -> ! {
    kprintln!("QvQ kernel monitor. {HELP}");
    let mut buf = [0u8; 80];
    loop {
        kprint!("qvq> ");
        let n = crate::console::read_line(&mut buf);
        let line = core::str::from_utf8(&buf[..n]).unwrap_or("");
        let mut words = line.split_ascii_whitespace();
        let Some(cmd) = words.next() else { continue };
        if words.next().is_some() {
            kprintln!("{cmd}: takes no arguments. {HELP}");
            continue;
        }
        match cmd {
            "help" => kprintln!("{HELP}"),
            "uptime" => {
                let ns = crate::time::uptime_ns();
                kprintln!("up {}.{:03} s, {} ticks", ns / 1_000_000_000, (ns / 1_000_000) % 1000, crate::time::ticks());
            }
            "threads" => {
                let s = crate::sched::stats();
                kprintln!("{} threads, {} switches, {} preemptions", s.threads, s.switches, s.preemptions);
                crate::sched::for_each_thread(|id, prio, state, name| kprintln!("  {id:<6} {prio:<7?} {state:<9?} {name}"));
            }
            "irqs" => {
                match crate::irq::controller() {
                    Some(c) => kprintln!("controller: {}", c.name()),
                    None => kprintln!("no interrupt controller"),
                }
                crate::irq::for_each_handler(|irq, name| kprintln!("  irq {irq:<4} {name}"));
            }
            "mem" => {
                let (used, size) = crate::memory::heap::usage();
                kprintln!(
                    "{} free frames ({} KiB); kernel heap {used} of {size} bytes used",
                    crate::memory::free_frames(),
                    crate::memory::free_frames() * 4
                );
            }
            "initrd" => match initrd.map(initrd::Archive::parse) {
                None => kprintln!("no initrd"),
                Some(Err(e)) => kprintln!("initrd rejected: {e}"),
                Some(Ok(a)) => {
                    kprintln!("{} entries", a.len());
                    for e in a.entries() {
                        kprintln!("  {} ({} bytes)", e.name, e.data.len());
                    }
                }
            },
            "poweroff" => crate::power::exit(0),
            other => kprintln!("unknown command '{other}'. {HELP}"),
        }
    }
}
