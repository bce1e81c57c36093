//! The domain manifest.

use crate::Outcome;
use loader::manifest::*;

/// `Manifest::decode`: an accepted manifest is within every limit and its canonical
/// encoding is the input itself (so decode → encode → decode round-trips, whatever fields
/// the manifest gains: the comparison is of whole manifests and whole byte strings).
pub fn manifest(data: &[u8]) -> Outcome {
    let Ok(m) = Manifest::decode(data) else {
        return Outcome::Refused;
    };
    let encoded = m.encode();
    assert_eq!(encoded.as_deref(), Ok(data), "a decoded manifest re-encodes to other bytes");
    assert_eq!(Manifest::decode(data).as_ref(), Ok(&m), "decoding is deterministic");
    let name_ok = |s: &str, max: usize| !s.is_empty() && s.len() <= max;
    assert!(name_ok(&m.name, MAX_NAME), "name {:?}", m.name);
    for list in [&m.exports, &m.imports] {
        assert!(list.len() <= MAX_INTERFACES);
        for (i, iface) in list.iter().enumerate() {
            assert!(name_ok(&iface.name, MAX_INTERFACE_NAME), "interface {:?}", iface.name);
            assert!(list[..i].iter().all(|earlier| earlier.name != iface.name), "{:?} listed twice", iface.name);
        }
    }
    assert!(m.devices.len() <= MAX_DEVICES);
    assert!(m.devices.iter().all(|d| name_ok(d, MAX_COMPATIBLE)));
    assert!(m.toolchain.len() <= MAX_TOOLCHAIN);
    assert!(m.heap_limit > 0 && m.heap_limit <= MAX_HEAP && m.heap_limit % 4096 == 0);
    assert!((4096..=MAX_STACK).contains(&m.stack_size) && m.stack_size % 4096 == 0);
    assert!((MIN_SHARED_HEAP..=MAX_SHARED_HEAP).contains(&m.shared_heap_limit));
    assert!((MIN_THREADS..=MAX_THREADS).contains(&m.max_threads));
    assert!(m.max_events <= MAX_EVENTS);
    assert_eq!(RestartPolicy::from_name(m.restart.name()), Some(m.restart));
    Outcome::Accepted
}
