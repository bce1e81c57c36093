//! The test domain: calls that succeed, move shared-heap data, and fail on purpose (the
//! failures are what crash recovery is tested with). Its ping count is the state it hands
//! to its next version in a hot swap.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use runtime::interfaces::hello::{self, Hello};
use runtime::interfaces::{HelloState, Numbers, RRef, RpcError, RpcResult};
use runtime::Mutex;

struct HelloDomain {
    served: Mutex<u64>,
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let pad = [depth; 32];
    recurse(core::hint::black_box(depth + 1)) + core::hint::black_box(pad)[1]
}

impl Hello for HelloDomain {
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

    fn nap(&self, ms: u64) -> RpcResult<()> {
        runtime::sleep_ms(ms);
        Ok(())
    }

    fn version(&self) -> RpcResult<u64> {
        let (major, minor, patch) = runtime::version();
        Ok(((major as u64) << 32) | ((minor as u64) << 16) | patch as u64)
    }

    fn sum(&self, numbers: RRef<Numbers>) -> RpcResult<u64> {
        Ok(numbers.0.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
    }

    fn take(&self, numbers: RRef<Numbers>) -> RpcResult<()> {
        drop(numbers);
        Ok(())
    }

    fn pair(&self, a: RRef<Numbers>, b: RRef<Numbers>) -> RpcResult<u64> {
        Ok(a.0.iter().chain(b.0.iter()).fold(0u64, |s, x| s.wrapping_add(*x)))
    }

    fn fail(&self, how: u32) -> RpcResult<u64> {
        match how {
            0 => panic!("asked to panic"),
            1 => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(core::hint::black_box(alloc::vec![1u8; 4096]));
                }
            }
            2 => Ok(recurse(0)),
            3 => loop {
                core::hint::spin_loop();
            },
            4 => Ok(runtime::fault_injection::read_unmapped()),
            _ => Err(RpcError::Refused),
        }
    }
}

static HELLO: HelloDomain = HelloDomain { served: Mutex::new(0) };

fn init() -> Result<(), &'static str> {
    runtime::swap::keep_state::<HelloState>(
        || HelloState {
            served: HELLO.served.with(|n| *n),
        },
        |state| {
            HELLO.served.with(|n| *n = state.served);
            Ok(())
        },
    )
    .map_err(|_| "cannot declare the swap state")?;
    hello::export(&HELLO).map_err(|_| "cannot export Hello")?;
    Ok(())
}

runtime::entry!(init);
