//! Test fixture: a version of hello that counts its pings like hello but keeps no swap
//! state (no `keep_state`), so its count is lost in a swap that is let through.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::hello::{self, Hello};
use runtime::interfaces::{Numbers, RRef, RpcError, RpcResult};
use runtime::Mutex;

struct Forgetful {
    served: Mutex<u64>,
}

impl Hello for Forgetful {
    fn nop(&self) -> RpcResult<()> {
        Ok(())
    }
    fn ping(&self, x: u64) -> RpcResult<u64> {
        self.served.with(|n| *n += 1);
        Ok(x.wrapping_add(1))
    }
    fn served(&self) -> RpcResult<u64> {
        Ok(self.served.with(|n| *n))
    }
    fn version(&self) -> RpcResult<u64> {
        let (major, minor, patch) = runtime::version();
        Ok(((major as u64) << 32) | ((minor as u64) << 16) | patch as u64)
    }
    fn nap(&self, ms: u64) -> RpcResult<()> {
        runtime::sleep_ms(ms);
        Ok(())
    }
    fn sum(&self, _numbers: RRef<Numbers>) -> RpcResult<u64> {
        Err(RpcError::Refused)
    }
    fn take(&self, _numbers: RRef<Numbers>) -> RpcResult<()> {
        Err(RpcError::Refused)
    }
    fn pair(&self, _a: RRef<Numbers>, _b: RRef<Numbers>) -> RpcResult<u64> {
        Err(RpcError::Refused)
    }
    fn fail(&self, _how: u32) -> RpcResult<u64> {
        Err(RpcError::Refused)
    }
}

static FORGETFUL: Forgetful = Forgetful { served: Mutex::new(0) };

fn init() -> Result<(), &'static str> {
    hello::export(&FORGETFUL).map_err(|_| "cannot export Hello")
}

runtime::entry!(init);
