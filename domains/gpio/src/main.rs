//! The GPIO driver domain: owns the BCM2835 GPIO block (`brcm,bcm2835-gpio`) through its
//! device grant and exports `Gpio`: a pin's function (input or output), set, clear, level
//! and pull. Every pin number and setting from a caller is checked, and the pins the
//! system uses ([`SYSTEM_PINS`]) are refused, with their user named.
//!
//! It keeps no state of its own: the pins' functions and levels live in the hardware, so
//! a restarted or swapped-in version carries on with them, and `init` touches no register
//! (a swap's new version starts while the old one still serves).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use runtime::interfaces::gpio::{self, Gpio};
use runtime::interfaces::{gpio_function, gpio_pull, GpioError, RRef, RpcError, RpcResult, Text, GPIO_PINS};
use runtime::{Device, Mutex};

// BCM2835 ARM Peripherals, 6.1: GPIO registers (offsets from the block's base).
/// Function select: 3 bits a pin, 10 pins a register, from GPFSEL0.
const GPFSEL0: usize = 0x00;
/// Output set / clear: 1 bit a pin, 32 pins a register (writing 0 bits has no effect).
const GPSET0: usize = 0x1c;
const GPCLR0: usize = 0x28;
/// Pin level: 1 bit a pin.
const GPLEV0: usize = 0x34;
/// Pull-up/down control, clocked into the pins whose GPPUDCLK bit is set.
const GPPUD: usize = 0x94;
const GPPUDCLK0: usize = 0x98;

/// A pin the system uses, and who uses it (the text callers see).
struct SystemPin {
    pin: u32,
    user: &'static str,
    /// True if this build hands the pin to callers all the same (see [`SYSTEM_PINS`]).
    granted: bool,
}

/// The pins the system uses on a Raspberry Pi 3. Callers may read their level, nothing
/// more: changing the function, level or pull of one would cut the console (14/15, the
/// PL011 on the header, see `cargo xtask dist`) or the SD card (48-53: their function
/// decides which SD controller the card is wired to; QEMU moves the card to the other
/// controller when all six become ALT0).
///
/// The one way to hand such a pin to callers is to set its `granted` here and sign the
/// domain again (a board whose SD card is not used, say): a change to the signed code,
/// like any other grant. The console's pins can never be granted (checked below at
/// compile time), and even a granted SD pin only ever becomes an input or an output,
/// never an alternate function (`set_function` offers none).
const SYSTEM_PINS: &[SystemPin] = &[
    used(14, "the console's UART TXD0"),
    used(15, "the console's UART RXD0"),
    used(48, "the SD card's CLK"),
    used(49, "the SD card's CMD"),
    used(50, "the SD card's DAT0"),
    used(51, "the SD card's DAT1"),
    used(52, "the SD card's DAT2"),
    used(53, "the SD card's DAT3"),
];

/// A pin the system uses and keeps. To grant one: `SystemPin { granted: true, ..used(..) }`.
const fn used(pin: u32, user: &'static str) -> SystemPin {
    SystemPin { pin, user, granted: false }
}

/// The console's pins are never granted: losing the console loses the shell.
const _: () = {
    let mut i = 0;
    while i < SYSTEM_PINS.len() {
        assert!(!(SYSTEM_PINS[i].granted && (SYSTEM_PINS[i].pin == 14 || SYSTEM_PINS[i].pin == 15)));
        i += 1;
    }
};

/// How many times to read a register to let the pull setting settle: the datasheet asks
/// for 150 cycles of the core clock between the steps of the GPPUD sequence, and one
/// uncached device read takes more than one cycle.
const PULL_SETTLE_READS: u32 = 150;

struct GpioDomain {
    /// The GPIO block. Held across each read-modify-write of a GPFSEL register (ten pins
    /// share one) and across the whole pull sequence (GPPUD is one register for all pins).
    block: Mutex<Option<Device>>,
}

static GPIO: GpioDomain = GpioDomain { block: Mutex::new(None) };

/// Why a pin is refused for a change, if it is: out of range, or the system's.
fn check_pin(pin: u32, changing: bool) -> Result<(), GpioError> {
    if pin >= GPIO_PINS {
        return Err(GpioError::NoSuchPin);
    }
    if changing && SYSTEM_PINS.iter().any(|s| s.pin == pin && !s.granted) {
        return Err(GpioError::SystemPin);
    }
    Ok(())
}

/// The register of a one-bit-a-pin bank (`first` is the bank's first register) holding
/// `pin`, and the pin's bit in it.
fn bank(first: usize, pin: u32) -> (usize, u32) {
    (first + 4 * (pin / 32) as usize, 1 << (pin % 32))
}

impl GpioDomain {
    /// Runs `f` on the GPIO block for `pin` (checked first; `changing`: the call would
    /// change the pin), and turns the outcome into the method's answer.
    fn on_pin(&self, pin: u32, changing: bool, f: impl FnOnce(&Device) -> Result<u32, GpioError>) -> RpcResult<i64> {
        if let Err(e) = check_pin(pin, changing) {
            return Ok(e.answer());
        }
        self.block.with(|b| {
            let block = b.as_ref().ok_or(RpcError::Unavailable)?;
            Ok(match f(block) {
                Ok(v) => v as i64,
                Err(e) => e.answer(),
            })
        })
    }
}

impl Gpio for GpioDomain {
    fn set_function(&self, pin: u32, function: u32) -> RpcResult<i64> {
        if function != gpio_function::INPUT && function != gpio_function::OUTPUT {
            // A system pin is refused as such (its user is what the caller needs to hear),
            // any other pin for the function.
            return Ok(check_pin(pin, true).err().unwrap_or(GpioError::FunctionRefused).answer());
        }
        self.on_pin(pin, true, |block| {
            let reg = GPFSEL0 + 4 * (pin / 10) as usize;
            let shift = 3 * (pin % 10);
            let old = block.mmio.read32(reg);
            block.mmio.write32(reg, (old & !(0b111 << shift)) | (function << shift));
            Ok(0)
        })
    }

    fn function(&self, pin: u32) -> RpcResult<i64> {
        self.on_pin(pin, false, |block| {
            let reg = GPFSEL0 + 4 * (pin / 10) as usize;
            Ok((block.mmio.read32(reg) >> (3 * (pin % 10))) & 0b111)
        })
    }

    fn set(&self, pin: u32) -> RpcResult<i64> {
        self.on_pin(pin, true, |block| {
            let (reg, bit) = bank(GPSET0, pin);
            block.mmio.write32(reg, bit);
            Ok(0)
        })
    }

    fn clear(&self, pin: u32) -> RpcResult<i64> {
        self.on_pin(pin, true, |block| {
            let (reg, bit) = bank(GPCLR0, pin);
            block.mmio.write32(reg, bit);
            Ok(0)
        })
    }

    fn level(&self, pin: u32) -> RpcResult<i64> {
        self.on_pin(pin, false, |block| {
            let (reg, bit) = bank(GPLEV0, pin);
            Ok((block.mmio.read32(reg) & bit != 0) as u32)
        })
    }

    fn pull(&self, pin: u32, pull: u32) -> RpcResult<i64> {
        if ![gpio_pull::NONE, gpio_pull::DOWN, gpio_pull::UP].contains(&pull) {
            return Ok(check_pin(pin, true).err().unwrap_or(GpioError::NoSuchPull).answer());
        }
        self.on_pin(pin, true, |block| {
            // BCM2835 ARM Peripherals, 6.1, GPPUDCLK: set the control, wait, clock it into
            // this pin only, wait, then remove both.
            let (clock, bit) = bank(GPPUDCLK0, pin);
            block.mmio.write32(GPPUD, pull);
            settle(block);
            block.mmio.write32(clock, bit);
            settle(block);
            block.mmio.write32(GPPUD, 0);
            block.mmio.write32(clock, 0);
            Ok(0)
        })
    }

    fn user(&self, pin: u32) -> RpcResult<RRef<Text>> {
        let user = SYSTEM_PINS.iter().find(|s| s.pin == pin).map_or("", |s| s.user);
        Ok(RRef::new(Text::from_bytes(user.as_bytes()).0))
    }
}

/// Waits the GPPUD sequence's settling time (a bounded number of register reads).
fn settle(block: &Device) {
    for _ in 0..PULL_SETTLE_READS {
        core::hint::black_box(block.mmio.read32(GPLEV0));
    }
}

fn init() -> Result<(), &'static str> {
    let block = Device::claim(0).ok_or("no GPIO block granted (the recipe must list brcm,bcm2835-gpio)")?;
    // The highest register used must be inside the grant: a device tree giving a smaller
    // range is refused here, not met later as a crash in a caller's call.
    if block.mmio.size() < GPPUDCLK0 + 8 {
        return Err("the GPIO grant is smaller than the BCM2835's registers (0xa0 bytes at least)");
    }
    GPIO.block.with(|b| *b = Some(block));
    gpio::export(&GPIO).map_err(|_| "cannot export Gpio")?;
    let refused: String = SYSTEM_PINS.iter().filter(|s| !s.granted).map(|s| format!(" {}", s.pin)).collect();
    let (major, minor, patch) = runtime::version();
    runtime::println!(
        "BCM2835 GPIO driver {major}.{minor}.{patch} ready: pins 0-{}; system pins refused:{refused}",
        GPIO_PINS - 1
    );
    Ok(())
}

runtime::entry!(init);
