//! Attack class 4: a domain declares its own look-alike of an interface (same name and
//! text, so the same hash), with generated tables and proxies it controls.
#![forbid(unsafe_code)]

interfaces::interface! {
    pub mod hello: Hello {
        fn ping(&self, x: u64) -> interfaces::RpcResult<u64>;
        fn steal(&self, t: interfaces::RRef<interfaces::Text>) -> interfaces::RpcResult<()>;
    }
}

fn main() {
    let _ = hello::HASH;
}
