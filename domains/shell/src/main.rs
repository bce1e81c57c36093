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
use runtime::interfaces::relay::{self, Relay};
use runtime::interfaces::{Numbers, RRef, Text};

const HELP: &str = "commands: help | domains | mem | hello ping N | hello sum | crash hello panic|oom|overflow|fault|loop | crash NAME | relay panic|fault | restart NAME | poweroff";

struct Shell {
    console: console::Proxy,
    kernel: kernel::Proxy,
    hello: hello::Proxy,
    relay: relay::Proxy,
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
        self.print("ID  NAME         VERSION  STATE     KEY ID            GEN  CALLS  RESTARTS\n");
        for i in 0..count {
            if let Ok(d) = self.kernel.domain_info(i) {
                let key: String = d.key_id.iter().map(|b| format!("{b:02x}")).collect();
                let v = d.version;
                self.print(&format!(
                    "{:<3} {:<12} {:<8} {:<9} {:<16}  {:>3}  {:>5}  {:>8}\n",
                    d.id,
                    d.name(),
                    format!("{}.{}.{}", v[0], v[1], v[2]),
                    d.state_name(),
                    key,
                    d.generation,
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
            _ => self.print("usage: hello ping N | hello sum\n"),
        }
    }

    fn crash(&self, args: &[&str]) {
        let how = match args {
            ["hello", "panic"] => 0,
            ["hello", "oom"] => 1,
            ["hello", "overflow"] => 2,
            ["hello", "loop"] => 3,
            ["hello", "fault"] => 4,
            [name] => {
                return match self.find(name) {
                    None => self.print(&format!("crash: no domain named {name}\n")),
                    Some(id) => match self.kernel.crash(id) {
                        Ok(()) => self.print(&format!("crash: {name} crashed\n")),
                        Err(e) => self.print(&format!("crash {name}: error: {e}\n")),
                    },
                };
            }
            _ => return self.print("usage: crash hello panic|oom|overflow|fault|loop | crash NAME\n"),
        };
        match self.hello.fail(how) {
            Ok(v) => self.print(&format!("crash: the call returned {v}?\n")),
            Err(e) => self.print(&format!("crash hello {}: error: {e}\n", args[1])),
        }
    }

    fn find(&self, name: &str) -> Option<u32> {
        let count = self.kernel.domain_count().ok()?;
        (0..count).find(|i| self.kernel.domain_info(*i).is_ok_and(|d| d.name() == name))
    }

    fn restart(&self, name: &str) {
        match self.find(name) {
            None => self.print(&format!("restart: no domain named {name}\n")),
            Some(id) => match self.kernel.restart(id) {
                Ok(()) => self.print(&format!("restart: {name} is restarting\n")),
                Err(e) => self.print(&format!("restart {name}: error: {e}\n")),
            },
        }
    }

    fn mem(&self) {
        match self.kernel.free_frames() {
            Ok(n) => self.print(&format!("{n} free frames ({} KiB)\n", n * 4)),
            Err(e) => return self.print(&format!("mem: {e}\n")),
        }
        let count = self.kernel.domain_count().unwrap_or(0);
        self.print("NAME         HEAP KiB  SHARED BYTES\n");
        for i in 0..count {
            if let Ok(d) = self.kernel.domain_info(i) {
                self.print(&format!("{:<12} {:>8}  {:>12}\n", d.name(), d.heap_bytes / 1024, d.shared_bytes));
            }
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
                ["mem"] => self.mem(),
                ["hello", rest @ ..] => self.hello(rest),
                ["crash", rest @ ..] => self.crash(rest),
                ["restart", name] => self.restart(name),
                ["relay", how @ ("panic" | "fault")] => {
                    let code = if *how == "panic" { 0 } else { 4 };
                    match self.relay.relay_fail(code) {
                        Ok(1) => self.print("relay: hello crashed inside relay's call; relay answered normally\n"),
                        Ok(o) => self.print(&format!("relay: outcome {o}\n")),
                        Err(e) => self.print(&format!("relay: error: {e}\n")),
                    }
                }
                ["relay", ..] => self.print("usage: relay panic|fault\n"),
                ["restart", ..] => self.print("usage: restart NAME\n"),
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
        relay: relay::import().map_err(|_| "cannot import Relay")?,
    };
    runtime::spawn("shell", move || shell.run()).map_err(|_| "cannot start the shell thread")?;
    Ok(())
}

runtime::entry!(init);
