//! Device drivers the kernel itself needs: the early console, the interrupt controllers,
//! and the host channel for hot-swap pushes (only in a kernel built with the `hostlink`
//! feature). Everything else runs as a domain.
#[cfg(feature = "hostlink")]
pub mod bcm2835_aux;
pub mod bcm2836_intc;
pub mod gicv2;
pub mod kept;
pub mod mmio;
#[cfg(feature = "hostlink")]
pub mod ns16550;
#[cfg(feature = "hostlink")]
pub mod pci;
pub mod pl011;
pub mod virtio;

/// A byte-wide serial port, read when its receive interrupt says bytes wait (or polled).
#[cfg(feature = "hostlink")]
pub trait SerialPort: Send + Sync {
    /// A received byte, if one is waiting.
    fn read_byte(&self) -> Option<u8>;
    /// Sends `b`, waiting for room.
    fn write_byte(&self, b: u8);
    /// Turns the receive interrupt on or off (raised while received bytes wait).
    fn set_rx_interrupt(&self, on: bool);
}
