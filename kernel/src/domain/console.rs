//! The kernel log through the console driver domain: once that domain runs, kernel output
//! goes to it as `Console::write` calls (so kernel and domain output never interleave inside
//! a line), except from the console domain itself.

use super::continuation::as_kernel;
use super::registry::registry;
use super::DomainId;
use crate::sched::call_context;
use crate::sync::IrqLock;
use interfaces::console::{self, Console};

/// The kernel's proxy to the console domain, and that domain's number.
static HANDOVER: IrqLock<Option<(console::Proxy, DomainId)>> = IrqLock::new("console handover", None);

struct DomainSink;

impl crate::log::Sink for DomainSink {
    fn write(&self, bytes: &[u8]) -> bool {
        let Some((proxy, domain)) = *HANDOVER.lock() else { return false };
        // The console domain logging through the kernel would call itself.
        if call_context::current_domain() == domain {
            return false;
        }
        as_kernel(|| {
            let mut rest = bytes;
            while !rest.is_empty() {
                let (text, n) = interfaces::Text::from_bytes(rest);
                if proxy.write(interfaces::RRef::new(text)).is_err() {
                    return false;
                }
                rest = &rest[n..];
            }
            true
        })
    }
}

static SINK: DomainSink = DomainSink;

/// Routes kernel output through the domain that exports `Console`, if one runs.
pub fn hand_over() {
    let Some(domain) = registry().exporter_of(console::NAME) else { return };
    match console::import() {
        Ok(proxy) => {
            crate::info!("console: handing over to the console domain");
            *HANDOVER.lock() = Some((proxy, domain));
            crate::log::set_sink(&SINK);
        }
        Err(e) => crate::warn!("console: cannot import the console domain's interface ({e})"),
    }
}

/// A hot swap replaced console domain `old` with `new` (the kernel's slot already points
/// to `new`; this keeps the check that the console domain never writes through itself).
pub fn callee_replaced(old: DomainId, new: DomainId) {
    if let Some(h) = HANDOVER.lock().as_mut().filter(|h| h.1 == old) {
        h.1 = new;
    }
}
