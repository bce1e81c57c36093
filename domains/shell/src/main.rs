//! The shell: an interactive command line over `Console`, using the kernel's introspection
//! interface and the test domain.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use runtime::interfaces::console::{self, Console};
use runtime::interfaces::hello::{self, Hello};
use runtime::interfaces::kernel::{self, Kernel};
use runtime::interfaces::{Numbers, RRef, Text};

const HELP: &str = "commands: help | domains | mem | hello ping N | hello sum | hello panic | poweroff";

struct Shell {
    console: console::Proxy,
    kernel: kernel::Proxy,
    hello: hello::Proxy,
}

impl Shell {
    fn print(&self, s: &str) {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            let (text, n) = Text::from_bytes(rest);
            if self.console.write(RRef::new(text)).is_err() {
                return;
            }
            rest = &rest[n..];
        }
    }

    fn read_line(&self) -> Option<String> {
        let mut line = String::new();
        loop {
            let b = self.console.read_byte().ok()?;
            match b {
                b'\r' | b'\n' => {
                    self.print("\n");
                    return Some(line);
                }
                0x08 | 0x7f => {
                    if line.pop().is_some() {
                        self.print("\x08 \x08");
                    }
                }
                b if (0x20..0x7f).contains(&b) && line.len() < 120 => {
                    line.push(b as char);
                    let echo = [b];
                    self.print(core::str::from_utf8(&echo).unwrap_or(""));
                }
                _ => {}
            }
        }
    }

    fn domains(&self) {
        let count = match self.kernel.domain_count() {
            Ok(n) => n,
            Err(e) => return self.print(&format!("domains: {e}\n")),
        };
        self.print("ID  NAME         VERSION  STATE     KEY ID            CALLS  RESTARTS\n");
        for i in 0..count {
            if let Ok(d) = self.kernel.domain_info(i) {
                let key: String = d.key_id.iter().map(|b| format!("{b:02x}")).collect();
                let v = d.version;
                self.print(&format!(
                    "{:<3} {:<12} {:<8} {:<9} {:<16}  {:>5}  {:>8}\n",
                    d.id,
                    d.name(),
                    format!("{}.{}.{}", v[0], v[1], v[2]),
                    d.state_name(),
                    key,
                    d.calls_served,
                    d.restarts
                ));
            }
        }
    }

    fn hello(&self, args: &[&str]) {
        match args {
            ["ping", n] => match n.parse::<u64>() {
                Ok(n) => match self.hello.ping(n) {
                    Ok(v) => self.print(&format!("hello ping {n}: {v}\n")),
                    Err(e) => self.print(&format!("hello ping: error: {e}\n")),
                },
                Err(_) => self.print("usage: hello ping N (N a whole number)\n"),
            },
            ["sum"] => {
                let numbers = RRef::new(Numbers([1, 2, 3, 4, 5, 6, 7, 8]));
                match self.hello.sum(numbers) {
                    Ok(v) => self.print(&format!("hello sum 1..8: {v}\n")),
                    Err(e) => self.print(&format!("hello sum: error: {e}\n")),
                }
            }
            ["panic"] => match self.hello.fail(0) {
                Ok(v) => self.print(&format!("hello panic: returned {v}?\n")),
                Err(e) => self.print(&format!("hello panic: error: {e}\n")),
            },
            _ => self.print("usage: hello ping N | hello sum | hello panic\n"),
        }
    }

    fn run(&self) {
        self.print("QvQ shell. ");
        self.print(HELP);
        self.print("\n");
        loop {
            self.print("qvq$ ");
            let Some(line) = self.read_line() else {
                runtime::sleep_ms(100);
                continue;
            };
            let words: alloc::vec::Vec<&str> = line.split_ascii_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["help"] => self.print(&format!("{HELP}\n")),
                ["domains"] => self.domains(),
                ["mem"] => match self.kernel.free_frames() {
                    Ok(n) => self.print(&format!("{n} free frames ({} KiB)\n", n * 4)),
                    Err(e) => self.print(&format!("mem: {e}\n")),
                },
                ["hello", rest @ ..] => self.hello(rest),
                ["poweroff"] => {
                    let _ = self.kernel.poweroff(0);
                }
                [cmd @ ("help" | "domains" | "mem" | "poweroff"), ..] => self.print(&format!("{cmd}: takes no arguments\n")),
                [other, ..] => self.print(&format!("unknown command '{other}'. {HELP}\n")),
            }
        }
    }
}

fn init() -> Result<(), &'static str> {
    let shell = Shell {
        console: console::import().map_err(|_| "cannot import Console")?,
        kernel: kernel::import().map_err(|_| "cannot import Kernel")?,
        hello: hello::import().map_err(|_| "cannot import Hello")?,
    };
    runtime::spawn("shell", move || shell.run()).map_err(|_| "cannot start the shell thread")?;
    Ok(())
}

runtime::entry!(init);
