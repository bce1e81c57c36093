//! The `Kernel` interface, exported by the kernel (domain 0) for the shell.

use interfaces::kernel::{self, Kernel};
use interfaces::{DomainInfo, RRef, RpcError, RpcResult, SwapReport, Text, SWAP_ALLOW_DOWNGRADE};

struct KernelInterface;

impl Kernel for KernelInterface {
    fn domain_count(&self) -> RpcResult<u32> {
        Ok(super::manager::count())
    }

    fn domain_info(&self, index: u32) -> RpcResult<RRef<DomainInfo>> {
        super::manager::info(index).map(RRef::new).ok_or(RpcError::Refused)
    }

    fn free_frames(&self) -> RpcResult<u64> {
        Ok(crate::memory::free_frames() as u64)
    }

    fn restart(&self, id: u32) -> RpcResult<()> {
        if super::manager::request_restart(id) {
            Ok(())
        } else {
            Err(RpcError::Refused)
        }
    }

    fn crash(&self, id: u32) -> RpcResult<()> {
        if id == super::KERNEL || super::manager::info(id).is_none_or(|d| d.state != 0) {
            return Err(RpcError::Refused);
        }
        super::manager::crashed(id, "crash injected from the shell");
        Ok(())
    }

    fn poweroff(&self, status: u32) -> RpcResult<()> {
        crate::power::exit(status)
    }

    fn swap(&self, name: RRef<Text>, entry: RRef<Text>, flags: u32) -> RpcResult<RRef<SwapReport>> {
        let name = core::str::from_utf8(name.as_bytes()).map_err(|_| RpcError::Refused)?;
        let entry = core::str::from_utf8(entry.as_bytes()).map_err(|_| RpcError::Refused)?;
        let o = super::swap::swap(name, super::swap::Source::Initrd(entry), flags & SWAP_ALLOW_DOWNGRADE != 0);
        Ok(RRef::new(SwapReport {
            swapped: o.swapped as u32,
            _pad: 0,
            window_instructions: o.window,
            total_instructions: o.total,
            message: Text::from_bytes(o.message.as_bytes()).0,
        }))
    }

    fn versions(&self, name: RRef<Text>, line: u32) -> RpcResult<RRef<Text>> {
        let name = core::str::from_utf8(name.as_bytes()).map_err(|_| RpcError::Refused)?;
        let lines = super::swap::versions(name);
        let l = lines.get(line as usize).ok_or(RpcError::Refused)?;
        Ok(RRef::new(Text::from_bytes(l.as_bytes()).0))
    }
}

static KERNEL_INTERFACE: KernelInterface = KernelInterface;

pub fn export() -> Result<(), i32> {
    kernel::export(&KERNEL_INTERFACE)
}
