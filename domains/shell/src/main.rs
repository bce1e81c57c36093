//! The shell: an interactive command line over `Console`, using the kernel's introspection
//! interface and the test domain.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod blk;
mod call;
mod files;
mod gpio;
mod rng;

use alloc::format;
use alloc::string::String;
use runtime::interfaces::console::{self, Console};
use runtime::interfaces::hello::{self, Hello};
use runtime::interfaces::kernel::{self, Kernel};
use runtime::interfaces::relay::{self, Relay};
use runtime::interfaces::{Numbers, RRef, Text};
use runtime::Mutex;

/// What `swap-stress`'s caller threads count.
struct Stress {
    stop: bool,
    running: usize,
    calls: u64,
    /// Naps (calls that sleep inside hello, so a swap finds a call in flight) finished.
    naps: u64,
    errors: u64,
    wrong: u64,
    /// (version, answers): which versions answered `version()`.
    answers: [(u64, u64); 4],
}

static STRESS: Mutex<Stress> = Mutex::new(Stress {
    stop: false,
    running: 0,
    calls: 0,
    naps: 0,
    errors: 0,
    wrong: 0,
    answers: [(0, 0); 4],
});

fn text(s: &str) -> RRef<Text> {
    RRef::new(Text::from_bytes(s.as_bytes()).0)
}

fn version_name(v: u64) -> String {
    format!("{}.{}.{}", v >> 32, (v >> 16) & 0xffff, v & 0xffff)
}

const HELP: &str = "commands: help | domains | mem | hello ping N | hello sum | hello served | hello nap MS | crash hello panic|oom|overflow|fault|loop | crash NAME | relay panic|fault | restart NAME | swap NAME [ENTRY|disk:PATH] [--fresh] | load disk:PATH | versions NAME | ticker N MS | count N MS | swap-stress N ENTRY_A ENTRY_B | call IFACE METHOD ARGS | help call [IFACE] | blk info|read LBA|write LBA TEXT|flush|bench [BATCH] [ROUNDS] | gpio mode|set|clear|get|pull|blink PIN ... | help gpio | rng N | ls [PATH] | cat PATH | write PATH TEXT | rm PATH | mkdir PATH | df | help files | poweroff";

/// Caller threads `swap-stress` runs against hello.
const STRESS_CALLERS: usize = 3;

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
                0x08 | 0x7f if line.pop().is_some() => self.print("\x08 \x08"),
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
            ["nap", ms] => match ms.parse::<u64>() {
                Ok(ms) => {
                    let hello = self.hello;
                    let console = self.console;
                    let started = runtime::spawn("nap", move || {
                        let line = match hello.nap(ms) {
                            Ok(()) => format!("hello nap {ms}: done\n"),
                            Err(e) => format!("hello nap {ms}: error: {e}\n"),
                        };
                        let _ = console.write(text(&line));
                    });
                    if started.is_err() {
                        self.print("hello nap: cannot start a thread\n");
                    }
                }
                Err(_) => self.print("usage: hello nap MS (a background call that sleeps MS ms inside hello)\n"),
            },
            ["served"] => match (self.hello.served(), self.hello.version()) {
                (Ok(n), Ok(v)) => self.print(&format!("hello served: {n} pings, answered by {}\n", version_name(v))),
                (Err(e), _) | (_, Err(e)) => self.print(&format!("hello served: error: {e}\n")),
            },
            _ => self.print("usage: hello ping N | hello sum | hello served | hello nap MS\n"),
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
        // A swapped-out record keeps its name; the live one is what commands mean.
        (0..count).find(|i| self.kernel.domain_info(*i).is_ok_and(|d| d.name() == name && d.state_name() != "retired"))
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

    /// `swap NAME [ENTRY] [--fresh]`: `--fresh` discards the running version's state.
    fn swap(&self, name: &str, rest: &[&str]) {
        let fresh = rest.contains(&"--fresh");
        let rest: alloc::vec::Vec<&str> = rest.iter().copied().filter(|w| *w != "--fresh").collect();
        let entry = match rest.as_slice() {
            [] if !name.starts_with('-') => "",
            [e] if !name.starts_with('-') && !e.starts_with('-') => e,
            _ => {
                return self.print("usage: swap NAME [ENTRY] [--fresh]  (ENTRY: an initrd entry or version, see versions NAME, or disk:PATH, a signed envelope on the disk's volume; --fresh: hand no state over)\n")
            }
        };
        if let Some(path) = entry.strip_prefix(files::DISK_PREFIX) {
            let env = match files::read_envelope("swap", path) {
                Ok(e) => e,
                Err(why) => return self.print(&why),
            };
            return match self.kernel.swap_envelope(text(name), env, text(entry), fresh) {
                Ok(r) => {
                    self.print(core::str::from_utf8(r.message.as_bytes()).unwrap_or("swap: ?"));
                    self.print("\n");
                }
                Err(e) => self.print(&format!("swap {name}: error: {e}\n")),
            };
        }
        match self.kernel.swap(text(name), text(entry), fresh) {
            Ok(r) => {
                self.print(core::str::from_utf8(r.message.as_bytes()).unwrap_or("swap: ?"));
                self.print("\n");
            }
            Err(e) => self.print(&format!("swap {name}: error: {e}\n")),
        }
    }

    /// `load disk:PATH`: starts a domain that is not running from a signed envelope on the
    /// disk, verified by the kernel as at boot.
    fn load(&self, source: &str) {
        let Some(path) = source.strip_prefix(files::DISK_PREFIX) else {
            return self.print("usage: load disk:PATH  (starts the domain in a signed envelope on the disk's volume; it must not be running)\n");
        };
        let env = match files::read_envelope("load", path) {
            Ok(e) => e,
            Err(why) => return self.print(&why),
        };
        match self.kernel.load_envelope(env, text(source)) {
            Ok(r) => {
                self.print(core::str::from_utf8(r.message.as_bytes()).unwrap_or("load: ?"));
                self.print("\n");
            }
            Err(e) => self.print(&format!("load {source}: error: {e}\n")),
        }
    }

    /// `relay panic|fault`: relay calls hello, which fails inside that call.
    fn relay(&self, how: &str) {
        let code = if how == "panic" { 0 } else { 4 };
        // Imported when used, as `blk` and `ls` do: the shell runs without relay.
        let outcome = match relay::import() {
            Ok(r) => r.relay_fail(code),
            Err(e) => return self.print(&format!("relay: cannot import Relay ({e})\n")),
        };
        match outcome {
            Ok(1) => self.print("relay: hello crashed inside relay's call; relay answered normally\n"),
            Ok(o) => self.print(&format!("relay: outcome {o}\n")),
            Err(e) => self.print(&format!("relay: error: {e}\n")),
        }
    }

    fn versions(&self, name: &str) {
        for line in 0.. {
            match self.kernel.versions(text(name), line) {
                Ok(t) => {
                    self.print(core::str::from_utf8(t.as_bytes()).unwrap_or("?"));
                    self.print("\n");
                }
                Err(_) => break,
            }
        }
    }

    /// A background thread printing `tick I/N` every `ms` milliseconds.
    fn ticker(&self, n: u64, ms: u64) {
        let console = self.console;
        let r = runtime::spawn("ticker", move || {
            for i in 1..=n {
                let line = format!("tick {i}/{n}\n");
                let _ = console.write(text(&line));
                runtime::sleep_ms(ms);
            }
        });
        if r.is_err() {
            self.print("ticker: cannot start a thread\n");
        }
    }

    /// Swaps hello `n` times between initrd entries `a` and `b` while caller threads ping
    /// it; then checks every ping got exactly one right answer and hello's served count
    /// (carried from version to version) matches the pings made.
    fn swap_stress(&self, n: u32, a: &str, b: &str) {
        let Ok(before) = self.hello.served() else {
            return self.print("swap-stress: hello is not answering\n");
        };
        STRESS.with(|s| {
            *s = Stress {
                stop: false,
                running: STRESS_CALLERS + 1,
                calls: 0,
                naps: 0,
                errors: 0,
                wrong: 0,
                answers: [(0, 0); 4],
            }
        });
        for k in 0..STRESS_CALLERS {
            let hello = self.hello;
            let started = runtime::spawn("stress", move || stress_caller(hello, k as u64));
            if started.is_err() {
                STRESS.with(|s| s.running -= 1);
            }
        }
        let hello = self.hello;
        if runtime::spawn("napper", move || stress_napper(hello)).is_err() {
            STRESS.with(|s| s.running -= 1);
        }
        let (mut swapped, mut refused) = (0, 0);
        for i in 0..n {
            let entry = if i % 2 == 0 { b } else { a };
            match self.kernel.swap(text("hello"), text(entry), false) {
                Ok(r) if r.swapped == 1 => {
                    swapped += 1;
                    if !callers_called_on() {
                        self.print(&format!("swap-stress: the callers made no call in a second after swap {}\n", i + 1));
                    }
                }
                Ok(r) => {
                    refused += 1;
                    self.print(core::str::from_utf8(r.message.as_bytes()).unwrap_or("?"));
                    self.print("\n");
                }
                Err(_) => refused += 1,
            }
        }
        STRESS.with(|s| s.stop = true);
        while STRESS.with(|s| s.running) > 0 {
            runtime::sleep_ms(10);
        }
        let served = self.hello.served().map(|x| x.wrapping_sub(before));
        let (calls, naps, errors, wrong, answers) = STRESS.with(|s| (s.calls, s.naps, s.errors, s.wrong, s.answers));
        let by_version: String = answers
            .iter()
            .filter(|(v, c)| *c > 0 || *v > 0)
            .map(|(v, c)| format!(" {}: {c}", version_name(*v)))
            .collect();
        // Two lines, each one console write (so other output cannot split them).
        self.print(&format!("swap-stress answers by version:{by_version}\n"));
        self.print(&format!(
            "swap-stress: {swapped} swaps, {refused} refused; {calls} pings, {naps} naps, {errors} errors, {wrong} wrong answers; served count {}\n",
            match served {
                Ok(s) if s == calls => "matches".into(),
                Ok(s) => format!("{s} differs"),
                Err(e) => format!("unreadable ({e})"),
            }
        ));
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
                ["call", words @ ..] => self.print(&call::call(words)),
                ["blk", ..] => self.print(&blk::blk(&line)),
                ["gpio", rest @ ..] => self.print(&gpio::gpio(rest)),
                ["help", "gpio"] => self.print(gpio::HELP),
                ["rng", rest @ ..] => self.print(&rng::rng(rest)),
                ["ls", rest @ ..] => files::ls(rest, &|s| self.print(s)),
                ["cat", rest @ ..] => files::cat(rest, &|s| self.print(s)),
                ["write", ..] => self.print(&files::write(&line)),
                ["rm", rest @ ..] => self.print(&files::change("rm", rest)),
                ["mkdir", rest @ ..] => self.print(&files::change("mkdir", rest)),
                ["df", rest @ ..] => self.print(&files::df(rest)),
                ["help", "files"] => self.print(files::HELP),
                ["help", "call"] => self.print(&call::help(None)),
                ["help", "call", iface] => self.print(&call::help(Some(iface))),
                ["swap", name, rest @ ..] => self.swap(name, rest),
                ["load", source] => self.load(source),
                ["load", ..] => self.print("usage: load disk:PATH  (starts the domain in a signed envelope on the disk's volume; it must not be running)\n"),
                ["versions", name] => self.versions(name),
                ["ticker", n, ms] => match (n.parse(), ms.parse()) {
                    (Ok(n), Ok(ms)) => self.ticker(n, ms),
                    _ => self.print("usage: ticker N MS (whole numbers)\n"),
                },
                ["count", n, ms] => match (n.parse::<u64>(), ms.parse()) {
                    (Ok(n), Ok(ms)) => {
                        for i in 1..=n {
                            self.print(&format!("line {i}/{n}\n"));
                            runtime::sleep_ms(ms);
                        }
                    }
                    _ => self.print("usage: count N MS (whole numbers)\n"),
                },
                ["count", ..] => self.print("usage: count N MS\n"),
                ["swap-stress", n, a, b] => match n.parse() {
                    Ok(n) => self.swap_stress(n, a, b),
                    Err(_) => self.print("usage: swap-stress N ENTRY_A ENTRY_B (N a whole number)\n"),
                },
                ["swap"] => self.print("usage: swap NAME [ENTRY] [--fresh]\n"),
                ["versions", ..] => self.print("usage: versions NAME\n"),
                ["ticker", ..] => self.print("usage: ticker N MS\n"),
                ["swap-stress", ..] => self.print("usage: swap-stress N ENTRY_A ENTRY_B\n"),
                ["relay", how @ ("panic" | "fault")] => self.relay(how),
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

/// Pings the callers must answer after a swap before the next one: enough that a version
/// call (every eighth ping of a caller) reaches the version just swapped in. Without this
/// wait the swapping thread may keep the CPU across several swaps (a drain with nothing in
/// flight never yields), so a version can come and go unseen by any caller.
const PINGS_BETWEEN_SWAPS: u64 = 8 * (STRESS_CALLERS as u64 + 1) * 2;

/// Waits (at most a second) until the callers have made `PINGS_BETWEEN_SWAPS` more pings;
/// false if they did not.
fn callers_called_on() -> bool {
    let target = STRESS.with(|s| s.calls + s.errors + s.wrong) + PINGS_BETWEEN_SWAPS;
    let deadline = runtime::uptime_ns() + 1_000_000_000;
    while STRESS.with(|s| s.calls + s.errors + s.wrong) < target {
        if runtime::uptime_ns() > deadline {
            return false;
        }
        runtime::yield_now();
    }
    true
}

/// `swap-stress`'s napper: naps a millisecond inside hello at a time, so nearly every swap
/// finds a call in flight and must drain it.
fn stress_napper(hello: hello::Proxy) {
    while !STRESS.with(|s| s.stop) {
        let r = hello.nap(1);
        STRESS.with(|s| match r {
            Ok(()) => s.naps += 1,
            Err(_) => s.errors += 1,
        });
    }
    STRESS.with(|s| s.running -= 1);
}

/// One `swap-stress` caller: pings hello until told to stop, checking every answer.
fn stress_caller(hello: hello::Proxy, seed: u64) {
    let mut x = seed << 40;
    let mut i = 0u64;
    while !STRESS.with(|s| s.stop) {
        x += 1;
        let r = hello.ping(x);
        STRESS.with(|s| match r {
            Ok(v) if v == x + 1 => s.calls += 1,
            Ok(_) => s.wrong += 1,
            Err(_) => s.errors += 1,
        });
        i += 1;
        if i.is_multiple_of(8) {
            match hello.version() {
                Ok(v) => STRESS.with(|s| {
                    if let Some(slot) = s.answers.iter_mut().find(|(k, c)| *k == v || *c == 0) {
                        *slot = (v, slot.1 + 1);
                    }
                }),
                Err(_) => STRESS.with(|s| s.errors += 1),
            }
            // Turns short enough that the swapping thread gets the CPU back soon.
            runtime::yield_now();
        }
    }
    STRESS.with(|s| s.running -= 1);
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
