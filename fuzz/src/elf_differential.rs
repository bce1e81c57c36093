//! Differential check of the two ELF parsers `qvq-sign` consults: the loader
//! (`loader::elf::ElfImage`, what the kernel runs) and goblin (an independent reading, what
//! other tools see), through `qvq_sign::crosscheck`.
//!
//! "Disagree" means: both parsers accept the bytes and read a different entry point,
//! different `PT_LOAD` segments (address, file offset, sizes, writable/executable) or
//! different dynamic relocations (offset, type, symbol, addend). Only that panics: it is
//! an ELF whose review with standard tools would not show what the kernel loads.
//!
//! One-sided rejections are expected and ignored. The loader is stricter by design (it
//! accepts only static AArch64 PIEs: W^X, page-aligned non-overlapping segments,
//! RELATIVE relocations inside the image, no interpreter or libraries), so it refuses
//! most ELFs goblin reads; goblin, for its part, parses section headers, symbol and
//! string tables the loader never looks at, and refuses when those are malformed. Either
//! way `qvq-sign sign` refuses the ELF, which is the safe outcome.

use crate::Outcome;
use qvq_sign::CrossCheckError;

/// Panics if goblin and the loader both accept `data` and read it differently.
pub fn elf_differential(data: &[u8]) -> Outcome {
    match qvq_sign::crosscheck(data) {
        Ok(()) => Outcome::Accepted,
        Err(CrossCheckError::Disagree(d)) => panic!("goblin and the loader disagree on {d}"),
        Err(_) => Outcome::Refused,
    }
}
