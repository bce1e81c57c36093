//! Attack class 3: replacing the domain's services table. A forged table makes every
//! proxy call jump to `proxy_call` and every status read/write go to `proxy_status`, so
//! `set_services` must be `unsafe` (the domain cannot call it). The real table stands in
//! for a forged one here: no table may be installed from safe code.
#![forbid(unsafe_code)]

fn main() {
    interfaces::set_services(interfaces::services());
}
