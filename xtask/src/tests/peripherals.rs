//! QEMU tests of the Raspberry Pi 3's GPIO and random number generator drivers (the `gpio`
//! and `rng` domains) through the shell's `gpio` and `rng` commands. QEMU 7.2's GPIO
//! model keeps levels (set, clear, read back) but has no pull resistors, no interrupts and
//! nothing wired to the pins, so the GPIO tests read back what they drove; its RNG model
//! gives fresh host randomness on every read and is always ready once enabled.

use crate::harness::case::{Check, Expect, ExpectAll, QemuTest, Send, Setup, Step, RPI3};

const POWEROFF: &[Step] = &[Send("poweroff\r"), Expect("power off (status 0)")];

/// A standard rpi3 boot with `steps`, then power-off.
fn case(name: &'static str, steps: &'static [Step]) -> QemuTest {
    let all: Vec<Step> = steps.iter().chain(POWEROFF).copied().collect();
    QemuTest {
        name,
        boards: RPI3,
        append: "",
        setup: Setup::Standard,
        steps: Box::leak(all.into_boxed_slice()),
        exit_status: 0,
    }
}

/// The hex bytes of every `rng N: HEX` line of the shell, in order.
fn rng_outputs(t: &str) -> Vec<Vec<u8>> {
    t.lines()
        .filter_map(|l| l.trim_end_matches('\r').split_once(": "))
        .filter(|(head, _)| head.strip_prefix("rng ").is_some_and(|n| n.parse::<usize>().is_ok()))
        .map(|(_, hex)| hex)
        .filter(|hex| hex.len() % 2 == 0 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|hex| (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)).collect())
        .collect()
}

/// The two `rng 32` answers: 32 bytes each, not all one value, and not the same twice.
fn rng_not_constant(t: &str) -> Result<(), String> {
    let outs = rng_outputs(t);
    let [a, b] = outs.as_slice() else {
        return Err(format!("expected two `rng 32` answers, found {}", outs.len()));
    };
    if a.len() != 32 || b.len() != 32 {
        return Err(format!("`rng 32` gave {} and {} bytes", a.len(), b.len()));
    }
    if a.iter().all(|x| *x == a[0]) || b.iter().all(|x| *x == b[0]) {
        return Err(format!("an answer is one byte repeated: {a:02x?} / {b:02x?}"));
    }
    if a == b {
        return Err(format!("two calls gave the same bytes: {a:02x?}"));
    }
    Ok(())
}

/// Counts the driver's warm-up reports (one per instance: it warms up on its first call).
fn warm_ups(t: &str) -> usize {
    t.matches("rng: warm-up: wrote the count 0x40000 to RNG_STATUS").count()
}

fn one_warm_up(t: &str) -> Result<(), String> {
    match warm_ups(t) {
        1 => Ok(()),
        n => Err(format!("expected one warm-up (the first call's), found {n}")),
    }
}

fn two_warm_ups(t: &str) -> Result<(), String> {
    match warm_ups(t) {
        2 => Ok(()),
        n => Err(format!("expected a warm-up before and after the restart, found {n}")),
    }
}

/// The last `rng 8` answers after the restart: two of them, 8 bytes each.
fn rng_answers_after_restart(t: &str) -> Result<(), String> {
    let outs = rng_outputs(t);
    if outs.len() != 2 || outs.iter().any(|o| o.len() != 8) {
        return Err(format!("expected two 8-byte `rng 8` answers (before and after the crash), found {outs:02x?}"));
    }
    Ok(())
}

pub fn cases() -> Vec<QemuTest> {
    vec![
        // Issue 15's "done when": the SD, GPIO and RNG drivers all run on rpi3, the SD
        // driver with a card in the slot.
        QemuTest {
            setup: Setup::FreshDisk,
            ..case(
                "rpi3-domains-lists-the-sd-gpio-and-rng-drivers-running",
                &[
                    Expect("qvq$ "),
                    Send("blk info\r"),
                    Expect("blocks of 4096 bytes"),
                    Expect("qvq$ "),
                    Send("domains\r"),
                    ExpectAll(&[
                        "sdhci        0.1.0    running",
                        "gpio         0.1.0    running",
                        "rng          0.1.0    running",
                    ]),
                    Expect("qvq$ "),
                ],
            )
        },
        case(
            "rpi3-gpio-output-reads-back-set-and-clear",
            &[
                Expect("gpio: BCM2835 GPIO driver 0.1.0 ready: pins 0-53; system pins refused: 14 15 48 49 50 51 52 53"),
                Expect("qvq$ "),
                Send("gpio mode 17 out\r"),
                Expect("gpio mode 17: output"),
                Send("gpio get 17\r"),
                Expect("gpio get 17: 0 (output)"),
                Send("gpio set 17\r"),
                Expect("gpio set 17: high"),
                Send("gpio get 17\r"),
                Expect("gpio get 17: 1 (output)"),
                Send("gpio clear 17\r"),
                Expect("gpio clear 17: low"),
                Send("gpio get 17\r"),
                Expect("gpio get 17: 0 (output)"),
                // Pin 40 is in another function register (GPFSEL4) and the second level
                // bank (GPSET1, GPLEV1); setting it leaves pin 17 as it was.
                Send("gpio mode 40 out\r"),
                Expect("gpio mode 40: output"),
                Send("gpio set 40\r"),
                Expect("gpio set 40: high"),
                Send("gpio get 40\r"),
                Expect("gpio get 40: 1 (output)"),
                Send("gpio get 17\r"),
                Expect("gpio get 17: 0 (output)"),
                Send("gpio mode 17 in\r"),
                Expect("gpio mode 17: input"),
                Send("gpio get 17\r"),
                Expect("gpio get 17: 0 (input)"),
                Send("gpio pull 17 up\r"),
                Expect("gpio pull 17: up"),
                Send("help gpio\r"),
                Expect("gpio blink PIN TIMES MS"),
                Expect("Pins the system uses are refused, with their user: 14/15 (the console's UART) and"),
                Expect("qvq$ "),
            ],
        ),
        case(
            "rpi3-gpio-blink-finishes-with-the-pin-low",
            &[
                Expect("qvq$ "),
                Send("gpio blink 17 2 20\r"),
                Expect("gpio blink 17: pin 17 is an input, not an output (`gpio mode 17 out` first)"),
                Send("gpio mode 17 out\r"),
                Expect("gpio mode 17: output"),
                Send("gpio blink 17 5 40\r"),
                Expect("gpio blink 17: blinked 5 times (40 ms high, 40 ms low); pin 17 is low"),
                Send("gpio get 17\r"),
                Expect("gpio get 17: 0 (output)"),
                Send("gpio blink 17 101 10\r"),
                Expect("gpio blink: TIMES must be 1 to 100 and MS 1 to 2000"),
                Expect("qvq$ "),
            ],
        ),
        case(
            "rpi3-gpio-refuses-system-pins-naming-their-user-and-pins-past-53",
            &[
                Expect("qvq$ "),
                Send("gpio mode 14 out\r"),
                Expect("gpio mode 14: refused: pin 14 is the console's UART TXD0 (the system uses it)"),
                Send("gpio set 15\r"),
                Expect("gpio set 15: refused: pin 15 is the console's UART RXD0 (the system uses it)"),
                Send("gpio mode 48 alt0\r"),
                Expect("gpio mode 48: refused: pin 48 is the SD card's CLK (the system uses it)"),
                Send("gpio clear 53\r"),
                Expect("gpio clear 53: refused: pin 53 is the SD card's DAT3 (the system uses it)"),
                Send("gpio pull 50 up\r"),
                Expect("gpio pull 50: refused: pin 50 is the SD card's DAT0 (the system uses it)"),
                // An alternate function is refused on any pin.
                Send("gpio mode 17 alt0\r"),
                Expect("gpio mode 17: refused: only input and output are offered"),
                // Reading a system pin's level changes nothing, and is allowed.
                Send("gpio get 14\r"),
                Expect("gpio get 14: "),
                Send("gpio get 54\r"),
                Expect("gpio get 54: refused: no such pin (the BCM2835 has pins 0 to 53)"),
                Send("gpio set 4294967295\r"),
                Expect("gpio set 4294967295: refused: no such pin"),
                Send("gpio set 4294967296\r"),
                Expect("gpio set: '4294967296' is not a pin number (0-53)"),
                // The console survived every refusal.
                Send("hello ping 41\r"),
                Expect("hello ping 41: 42"),
                Expect("qvq$ "),
            ],
        ),
        case(
            "rpi3-gpio-driver-crash-restarts-and-pins-keep-their-levels",
            &[
                Expect("qvq$ "),
                Send("gpio mode 17 out\r"),
                Expect("gpio mode 17: output"),
                Send("gpio set 17\r"),
                Expect("gpio set 17: high"),
                Send("crash gpio\r"),
                Expect("domain gpio crashed: crash injected from the shell"),
                Expect("domain gpio restarted: generation 2"),
                Send("gpio get 17\r"),
                Expect("gpio get 17: 1 (output)"),
                Send("gpio clear 17\r"),
                Expect("gpio clear 17: low"),
                Send("gpio get 17\r"),
                Expect("gpio get 17: 0 (output)"),
                Expect("qvq$ "),
            ],
        ),
        case(
            "rpi3-gpio-swapped-driver-keeps-the-pins",
            &[
                Expect("qvq$ "),
                Send("gpio mode 22 out\r"),
                Expect("gpio mode 22: output"),
                Send("gpio set 22\r"),
                Expect("gpio set 22: high"),
                Send("swap gpio\r"),
                Expect("swapped gpio 0.1.0 -> 0.2.0"),
                Expect("qvq$ "),
                Send("gpio get 22\r"),
                Expect("gpio get 22: 1 (output)"),
                Send("gpio mode 14 out\r"),
                Expect("gpio mode 14: refused: pin 14 is the console's UART TXD0"),
                Expect("qvq$ "),
            ],
        ),
        case(
            "rpi3-rng-warms-up-once-and-gives-changing-bytes",
            &[
                Expect("rng: BCM2835 RNG driver 0.1.0 ready (the generator is warmed up on the first call)"),
                Expect("qvq$ "),
                Send("rng 32\r"),
                // QEMU keeps the warm-up count in RNG_STATUS's low bits and reports one word.
                Expect("rng: warm-up: wrote the count 0x40000 to RNG_STATUS and enabled the generator; waited "),
                Expect("until RNG_STATUS (0x01040000) counted 1 word(s) in the FIFO; discarded the first 4 words"),
                Expect("rng 32: "),
                Expect("qvq$ "),
                Send("rng 32\r"),
                Expect("rng 32: "),
                Expect("qvq$ "),
                Check(rng_not_constant),
                Check(one_warm_up),
                Send("rng 257\r"),
                Expect("rng: 257 bytes is too many: at most 256 in one command"),
                Send("rng 0\r"),
                Expect("rng: N must be at least 1"),
                Send("rng lots\r"),
                Expect("rng: 'lots' is not a number of bytes (1 to 256)"),
                Expect("qvq$ "),
            ],
        ),
        case(
            "rpi3-rng-driver-crash-restarts-and-warms-up-again",
            &[
                Expect("qvq$ "),
                Send("rng 8\r"),
                Expect("rng 8: "),
                Expect("qvq$ "),
                Send("crash rng\r"),
                ExpectAll(&["domain rng crashed: crash injected from the shell", "domain rng restarted: generation 2"]),
                Send("rng 8\r"),
                Expect("rng: warm-up: wrote the count 0x40000"),
                Expect("rng 8: "),
                Expect("qvq$ "),
                Check(two_warm_ups),
                Check(rng_answers_after_restart),
            ],
        ),
    ]
}
