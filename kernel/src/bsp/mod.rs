//! Board support: the facts a board has that the device tree may not give, and the boot
//! map used before the device tree is read. One board per kernel build (xtask's `--board`).

use crate::devicetree::Platform;
use crate::memory::Region;

#[cfg(feature = "rpi3")]
mod rpi3;
#[cfg(feature = "rpi3")]
pub use rpi3::*;

#[cfg(feature = "virt")]
mod virt;
#[cfg(feature = "virt")]
pub use virt::*;

/// What a board fills in when the device tree lacks it. Each filled gap is reported.
pub struct Defaults {
    pub memory: Region,
    pub reserved: &'static [Region],
    pub uart: Region,
    pub uart_irq: (&'static str, &'static [u32]),
    pub uart_clock_hz: u32,
    pub interrupt_controller: fn(&mut Platform),
    pub timer_irq: (&'static str, &'static [u32]),
    pub counter_hz: u64,
}

/// Fills what the device tree did not say from the board's defaults; returns one note per
/// gap filled.
pub fn fill_gaps(p: &mut Platform) -> crate::devicetree::List<&'static str, 8> {
    let d = &DEFAULTS;
    let mut notes = crate::devicetree::List::new();
    if p.memory.as_slice().is_empty() {
        p.memory.push(d.memory);
        for r in d.reserved {
            p.reserved.push(*r);
        }
        notes.push("no memory node; using the board's RAM layout");
    }
    if p.uart.is_none() {
        let irq = crate::irq::IrqSpec::new(d.uart_irq.0, d.uart_irq.1);
        p.uart = Some(crate::devicetree::Device {
            name: "board default",
            reg: d.uart,
            irq: Some(irq),
        });
        notes.push("no arm,pl011 node; using the board's UART");
    }
    if p.gic.is_none() && p.bcm_local.is_none() {
        (d.interrupt_controller)(p);
        notes.push("no interrupt controller node; using the board's");
    }
    if p.timer_irq.is_none() {
        p.timer_irq = Some(crate::irq::IrqSpec::new(d.timer_irq.0, d.timer_irq.1));
        notes.push("no arm,armv8-timer node; using the board's timer interrupt");
    }
    notes
}
