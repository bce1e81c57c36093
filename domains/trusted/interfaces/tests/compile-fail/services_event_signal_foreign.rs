//! Attack class 2: calling a kernel service through the services table directly, with
//! values the trusted wrappers would never pass: signalling and waiting on event numbers this domain never made (class 11).
#![forbid(unsafe_code)]

fn main() {
    let s = interfaces::services();
    for e in 0..64 { (s.event_signal)(e); let _ = (s.event_wait)(e, u64::MAX); };
}
