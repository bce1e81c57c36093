//! Device drivers the kernel itself needs: the early console and the interrupt controllers.
//! Everything else runs as a domain.
pub mod bcm2836_intc;
pub mod gicv2;
pub mod mmio;
pub mod pl011;
