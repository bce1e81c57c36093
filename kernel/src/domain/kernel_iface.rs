//! The `Kernel` interface, exported by the kernel (domain 0) for the shell.

use super::registry::{registry, State};
use super::{load, recovery, swap, versions, KERNEL};
use interfaces::kernel::{self, Kernel};
use interfaces::{DomainInfo, Envelope, RRef, RpcError, RpcResult, SwapReport, Text};

/// What the kernel (domain 0) imports: the console, to log through it; with the selftests,
/// the test domain's, the block driver's and the file system's interfaces too (for the
/// benchmarks and the block and file self tests).
#[cfg(not(feature = "selftest"))]
pub const KERNEL_IMPORTS: &[(&str, [u8; 32])] = &[(interfaces::console::NAME, interfaces::console::HASH)];
#[cfg(feature = "selftest")]
pub const KERNEL_IMPORTS: &[(&str, [u8; 32])] = &[
    (interfaces::console::NAME, interfaces::console::HASH),
    (interfaces::hello::NAME, interfaces::hello::HASH),
    (interfaces::block::NAME, interfaces::block::HASH),
    (interfaces::block_bench::NAME, interfaces::block_bench::HASH),
    (interfaces::files::NAME, interfaces::files::HASH),
    (interfaces::growth::NAME, interfaces::growth::HASH),
];

struct KernelInterface;

impl Kernel for KernelInterface {
    fn domain_count(&self) -> RpcResult<u32> {
        Ok(registry().count() as u32)
    }

    fn domain_info(&self, index: u32) -> RpcResult<RRef<DomainInfo>> {
        let info = registry().info(index);
        info.map(RRef::new).ok_or(RpcError::Refused)
    }

    fn free_frames(&self) -> RpcResult<u64> {
        Ok(crate::memory::free_frames() as u64)
    }

    fn restart(&self, id: u32) -> RpcResult<()> {
        recovery::request_restart(id).map_err(|_| RpcError::Refused)
    }

    fn crash(&self, id: u32) -> RpcResult<()> {
        let running = registry().get(id).is_some_and(|d| d.state() == State::Running);
        if id == KERNEL || !running {
            return Err(RpcError::Refused);
        }
        recovery::crashed(id, "crash injected from the shell");
        Ok(())
    }

    fn poweroff(&self, status: u32) -> RpcResult<()> {
        crate::power::exit(status)
    }

    fn swap(&self, name: RRef<Text>, entry: RRef<Text>, fresh: bool) -> RpcResult<RRef<SwapReport>> {
        let name = core::str::from_utf8(name.as_bytes()).map_err(|_| RpcError::Refused)?;
        let entry = core::str::from_utf8(entry.as_bytes()).map_err(|_| RpcError::Refused)?;
        let o = swap::swap(name, swap::Source::Initrd(entry), fresh);
        Ok(report(o))
    }

    fn swap_envelope(&self, name: RRef<Text>, envelope: RRef<Envelope>, from: RRef<Text>, fresh: bool) -> RpcResult<RRef<SwapReport>> {
        let name = core::str::from_utf8(name.as_bytes()).map_err(|_| RpcError::Refused)?;
        let from = core::str::from_utf8(from.as_bytes()).map_err(|_| RpcError::Refused)?;
        // Both go into the kernel's log lines: no line breaks or other control characters.
        if name.chars().chain(from.chars()).any(char::is_control) {
            return Err(RpcError::Refused);
        }
        // The length is the caller's claim: only bytes inside the block are read.
        let bytes = envelope.bytes.get(..envelope.len as usize).ok_or(RpcError::Refused)?;
        let o = swap::swap(name, swap::Source::Handed { bytes, from }, fresh);
        Ok(report(o))
    }

    fn load_envelope(&self, envelope: RRef<Envelope>, from: RRef<Text>) -> RpcResult<RRef<SwapReport>> {
        let from = core::str::from_utf8(from.as_bytes()).map_err(|_| RpcError::Refused)?;
        if from.chars().any(char::is_control) {
            return Err(RpcError::Refused);
        }
        let bytes = envelope.bytes.get(..envelope.len as usize).ok_or(RpcError::Refused)?;
        let t0 = crate::arch::pmu::cycles();
        let (started, message) = match load::load(bytes, from) {
            Ok(m) => {
                crate::info!("{m}");
                (true, m)
            }
            Err(why) => {
                crate::warn!("{why}");
                (false, why)
            }
        };
        Ok(report(swap::Outcome {
            swapped: started,
            window: 0,
            total: crate::arch::pmu::cycles() - t0,
            message,
        }))
    }

    fn versions(&self, name: RRef<Text>, line: u32) -> RpcResult<RRef<Text>> {
        let name = core::str::from_utf8(name.as_bytes()).map_err(|_| RpcError::Refused)?;
        let lines = versions::versions(name);
        let l = lines.get(line as usize).ok_or(RpcError::Refused)?;
        Ok(RRef::new(Text::from_bytes(l.as_bytes()).0))
    }
}

fn report(o: swap::Outcome) -> RRef<SwapReport> {
    RRef::new(SwapReport {
        swapped: o.swapped as u32,
        _pad: 0,
        window_instructions: o.window,
        total_instructions: o.total,
        message: Text::from_bytes(o.message.as_bytes()).0,
    })
}

static KERNEL_INTERFACE: KernelInterface = KernelInterface;

pub fn export() -> Result<(), interfaces::ExportError> {
    kernel::export(&KERNEL_INTERFACE)
}
