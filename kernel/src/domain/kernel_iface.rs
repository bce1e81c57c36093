//! The `Kernel` interface, exported by the kernel (domain 0) for the shell.

use interfaces::kernel::{self, Kernel};
use interfaces::{DomainInfo, RRef, RpcError, RpcResult};

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
}

static KERNEL_INTERFACE: KernelInterface = KernelInterface;

pub fn export() -> Result<(), i32> {
    kernel::export(&KERNEL_INTERFACE)
}
