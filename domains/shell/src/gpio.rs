//! `gpio mode|set|clear|get|pull|blink ...` and `help gpio`: the GPIO pins through the
//! `Gpio` interface. Imported when a command runs (as `blk` does): a board whose recipe
//! has no GPIO driver has none. The shell checks only that numbers are numbers; the range
//! of a pin and who may change it are the driver's to decide, and its refusals are shown
//! as it gives them.

use alloc::format;
use alloc::string::String;
use runtime::interfaces::gpio::{self, Gpio};
use runtime::interfaces::{gpio_function, gpio_pull, GpioError, ImportError, RpcError};

pub const USAGE: &str = "usage: gpio mode PIN in|out | gpio set PIN | gpio clear PIN | gpio get PIN | gpio pull PIN up|down|none | gpio blink PIN TIMES MS  (`help gpio` says more)\n";

pub const HELP: &str = "gpio: the BCM2835's pins 0-53 through the GPIO driver domain
  gpio mode PIN in|out        make PIN an input or an output (alt0-alt5 are refused)
  gpio set PIN                drive PIN high
  gpio clear PIN              drive PIN low
  gpio get PIN                read PIN's level (0 or 1) and function
  gpio pull PIN up|down|none  set PIN's pull resistor
  gpio blink PIN TIMES MS     drive an output PIN high then low TIMES times (1-100), MS ms each (1-2000)
Pins the system uses are refused, with their user: 14/15 (the console's UART) and
48-53 (the SD card); their level can still be read. On a Raspberry Pi 3's header,
GPIO 17 is pin 11 (README: \"GPIO and random numbers on the Raspberry Pi 3\").
";

/// Most `gpio blink` rounds: the shell waits for the blink, so it is bounded.
const MAX_BLINKS: u32 = 100;
/// Longest `gpio blink` phase, in milliseconds.
const MAX_BLINK_MS: u64 = 2000;

/// What went wrong in a `gpio` command: the line to print is made by `message`.
enum Failure {
    Rpc(RpcError),
    Refused(GpioError),
}

impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Self {
        Failure::Rpc(e)
    }
}

/// Runs a `gpio` command (`words` after "gpio"); returns what to print.
pub fn gpio(words: &[&str]) -> String {
    let (cmd, pin_word, rest) = match words {
        [cmd, pin, rest @ ..] => (*cmd, *pin, rest),
        _ => return String::from(USAGE),
    };
    let Ok(pin) = pin_word.parse::<u32>() else {
        return format!("gpio {cmd}: '{pin_word}' is not a pin number (0-53)\n");
    };
    let driver = match gpio::import() {
        Ok(d) => d,
        Err(ImportError::NotDeclared) => return format!("gpio {cmd}: no GPIO on this board (no domain in its recipe exports Gpio)\n"),
        Err(ImportError::NotExported) => return format!("gpio {cmd}: the GPIO driver is not running (it may be restarting)\n"),
        Err(e) => return format!("gpio {cmd}: cannot import Gpio: {e}\n"),
    };
    let outcome = match (cmd, rest) {
        ("mode", [function]) => match function_code(function) {
            Some(f) => answer(driver.set_function(pin, f)).map(|_| format!("gpio mode {pin}: {}\n", gpio_function::name(f).unwrap_or("?"))),
            None => return format!("gpio mode: '{function}' is not a mode: in, out (alt0-alt5 exist but the driver refuses them)\n"),
        },
        ("set", []) => answer(driver.set(pin)).map(|_| format!("gpio set {pin}: high\n")),
        ("clear", []) => answer(driver.clear(pin)).map(|_| format!("gpio clear {pin}: low\n")),
        ("get", []) => get(&driver, pin),
        ("pull", [how]) => match pull_code(how) {
            Some(p) => answer(driver.pull(pin, p)).map(|_| format!("gpio pull {pin}: {how}\n")),
            None => return format!("gpio pull: '{how}' is not a pull setting: up, down, none\n"),
        },
        ("blink", [times, ms]) => match (times.parse::<u32>(), ms.parse::<u64>()) {
            (Ok(t @ 1..=MAX_BLINKS), Ok(m @ 1..=MAX_BLINK_MS)) => blink(&driver, pin, t, m),
            _ => return format!("gpio blink: TIMES must be 1 to {MAX_BLINKS} and MS 1 to {MAX_BLINK_MS} (whole numbers)\n"),
        },
        _ => return String::from(USAGE),
    };
    match outcome {
        Ok(line) => line,
        Err(f) => format!("gpio {cmd} {pin}: {}\n", message(&driver, pin, f)),
    }
}

/// A `Gpio` method's outcome: its result, or why it failed.
fn answer(r: Result<i64, RpcError>) -> Result<u32, Failure> {
    GpioError::read(r?).map_err(Failure::Refused)
}

/// The line for a failure; a pin the system uses is named with its user, as the driver
/// tells it.
fn message(driver: &gpio::Proxy, pin: u32, f: Failure) -> String {
    match f {
        Failure::Rpc(e) => format!("error: {e}"),
        Failure::Refused(GpioError::SystemPin) => match driver.user(pin) {
            Ok(user) if !user.as_bytes().is_empty() => format!(
                "refused: pin {pin} is {} (the system uses it)",
                core::str::from_utf8(user.as_bytes()).unwrap_or("?")
            ),
            _ => format!("refused: {}", GpioError::SystemPin),
        },
        Failure::Refused(e) => format!("refused: {e}"),
    }
}

fn get(driver: &gpio::Proxy, pin: u32) -> Result<String, Failure> {
    let level = answer(driver.level(pin))?;
    let function = answer(driver.function(pin))?;
    Ok(format!("gpio get {pin}: {level} ({})\n", gpio_function::name(function).unwrap_or("?")))
}

/// High for `ms`, low for `ms`, `times` times; the pin must be an output already (the
/// shell does not change a pin's function behind the user's back).
fn blink(driver: &gpio::Proxy, pin: u32, times: u32, ms: u64) -> Result<String, Failure> {
    let function = answer(driver.function(pin))?;
    if function != gpio_function::OUTPUT {
        return Ok(format!(
            "gpio blink {pin}: pin {pin} is an {}, not an output (`gpio mode {pin} out` first)\n",
            gpio_function::name(function).unwrap_or("?")
        ));
    }
    for done in 0..times {
        let round = answer(driver.set(pin)).and_then(|_| {
            runtime::sleep_ms(ms);
            answer(driver.clear(pin))
        });
        if let Err(f) = round {
            return Ok(format!("gpio blink {pin}: stopped after {done} of {times}: {}\n", message(driver, pin, f)));
        }
        runtime::sleep_ms(ms);
    }
    Ok(format!(
        "gpio blink {pin}: blinked {times} times ({ms} ms high, {ms} ms low); pin {pin} is low\n"
    ))
}

fn function_code(word: &str) -> Option<u32> {
    Some(match word {
        "in" => gpio_function::INPUT,
        "out" => gpio_function::OUTPUT,
        "alt0" => gpio_function::ALT0,
        "alt1" => gpio_function::ALT1,
        "alt2" => gpio_function::ALT2,
        "alt3" => gpio_function::ALT3,
        "alt4" => gpio_function::ALT4,
        "alt5" => gpio_function::ALT5,
        _ => return None,
    })
}

fn pull_code(word: &str) -> Option<u32> {
    Some(match word {
        "none" | "off" => gpio_pull::NONE,
        "down" => gpio_pull::DOWN,
        "up" => gpio_pull::UP,
        _ => return None,
    })
}
