//! Calls the test domain for its caller: when hello crashes inside a call relay made, only
//! hello's frames are unwound; relay gets an error and carries on.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::interfaces::hello::{self, Hello};
use runtime::interfaces::relay::{self, Relay};
use runtime::interfaces::{RpcError, RpcResult};
use runtime::Mutex;

struct RelayDomain {
    hello: Mutex<Option<hello::Proxy>>,
}

impl Relay for RelayDomain {
    fn relay_fail(&self, how: u32) -> RpcResult<u32> {
        let hello = self.hello.with(|h| *h).ok_or(RpcError::Unavailable)?;
        let outcome = match hello.fail(how) {
            Ok(_) => 0,
            Err(RpcError::Crashed) => 1,
            Err(_) => 2,
        };
        // Still running: this line is relay's own code after hello's crash.
        runtime::println!("hello.fail({how}) ended with outcome {outcome}; relay carries on");
        Ok(outcome)
    }
}

static RELAY: RelayDomain = RelayDomain { hello: Mutex::new(None) };

fn init() -> Result<(), &'static str> {
    let h = hello::import().map_err(|_| "cannot import Hello")?;
    RELAY.hello.with(|slot| *slot = Some(h));
    relay::export(&RELAY).map_err(|_| "cannot export Relay")?;
    Ok(())
}

runtime::entry!(init);
