//! The boards QvQ builds for.

use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Board {
    /// QEMU `-M virt -cpu cortex-a53`
    Virt,
    /// Raspberry Pi 3 (QEMU `-M raspi3b`, or a real board via `dist`)
    Rpi3,
}

impl Board {
    pub fn name(self) -> &'static str {
        match self {
            Board::Virt => "virt",
            Board::Rpi3 => "rpi3",
        }
    }
}
