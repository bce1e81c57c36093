//! Test fixture: a version of hello that keeps `HelloCounters` where hello keeps
//! `HelloState` (a swap must be refused for the state-type mismatch).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::hello::{self, Hello};
use runtime::interfaces::{HelloCounters, Numbers, RRef, RpcError, RpcResult};

struct Misfit;

impl Hello for Misfit {
    fn nop(&self) -> RpcResult<()> {
        Ok(())
    }
    fn ping(&self, x: u64) -> RpcResult<u64> {
        Ok(x.wrapping_add(1))
    }
    fn served(&self) -> RpcResult<u64> {
        Ok(0)
    }
    fn version(&self) -> RpcResult<u64> {
        Ok(0)
    }
    fn nap(&self, _ms: u64) -> RpcResult<()> {
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

static MISFIT: Misfit = Misfit;

fn init() -> Result<(), &'static str> {
    runtime::swap::keep_state::<HelloCounters>(|| HelloCounters { pings: 0, sums: 0 }, |_| Ok(())).map_err(|_| "cannot declare the swap state")?;
    hello::export(&MISFIT).map_err(|_| "cannot export Hello")
}

runtime::entry!(init);
