//! The domain manifest: what a domain is and what it may use. Binary, versioned and
//! canonical (one encoding per manifest); decoding allocates at most a bounded amount.
//! The byte layout is in `FORMAT.md`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Version 2 added the resource quotas (`shared_heap_limit`, `max_threads`, `max_events`).
pub const MANIFEST_VERSION: u8 = 3;
pub const MAX_NAME: usize = 32;
pub const MAX_INTERFACE_NAME: usize = 64;
pub const MAX_COMPATIBLE: usize = 64;
pub const MAX_TOOLCHAIN: usize = 128;
pub const MAX_INTERFACES: usize = 16;
pub const MAX_DEVICES: usize = 8;
pub const MAX_HEAP: u32 = 256 << 20;
pub const MAX_STACK: u32 = 1 << 20;
/// Bounds and default of `shared_heap_limit` (bytes of shared-heap `RRef` blocks).
pub const MIN_SHARED_HEAP: u32 = 4096;
pub const MAX_SHARED_HEAP: u32 = 4 << 20;
pub const DEFAULT_SHARED_HEAP_LIMIT: u32 = 256 << 10;
/// Bounds and default of `max_threads` (threads alive at once).
pub const MIN_THREADS: u32 = 1;
pub const MAX_THREADS: u32 = 64;
pub const DEFAULT_MAX_THREADS: u32 = 16;
/// Bounds and default of `max_events` (events owned at once).
pub const MAX_EVENTS: u32 = 1024;
pub const DEFAULT_MAX_EVENTS: u32 = 64;

/// What the system does when the domain fails (a hint; board recipes may override).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Restart,
    Hold,
    Fatal,
}

impl RestartPolicy {
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::Restart => "restart",
            RestartPolicy::Hold => "hold",
            RestartPolicy::Fatal => "fatal",
        }
    }
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "restart" => Some(Self::Restart),
            "hold" => Some(Self::Hold),
            "fatal" => Some(Self::Fatal),
            _ => None,
        }
    }
}

/// An exported or imported interface: its name and the hash of its definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceRef {
    pub name: String,
    pub hash: [u8; 32],
}

/// Ordered by major, then minor, then patch (the field order).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Version {
    /// Parses `MAJOR.MINOR.PATCH`.
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.split('.').map(|p| {
            if p.is_empty() || (p.len() > 1 && p.starts_with('0')) {
                None
            } else {
                p.parse::<u32>().ok()
            }
        });
        let v = Version {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(v)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: Version,
    pub exports: Vec<InterfaceRef>,
    pub imports: Vec<InterfaceRef>,
    /// Device-tree `compatible` strings whose MMIO and IRQs the domain asks for.
    pub devices: Vec<String>,
    pub heap_limit: u32,
    pub stack_size: u32,
    /// Bytes of shared-heap `RRef` blocks the domain may own at once.
    pub shared_heap_limit: u32,
    /// Threads the domain may have at once.
    pub max_threads: u32,
    /// Events the domain may own at once.
    pub max_events: u32,
    pub restart: RestartPolicy,
    pub toolchain: String,
    /// The build checked `#![forbid(unsafe_code)]` and the dependency allow-list.
    pub safe_rust_checked: bool,
    /// The signer's rollback floor for this name: once this version has run, no version
    /// below `min_version` loads again (until reboot; `keys/floors.toml` is the durable
    /// floor). At most `version`.
    pub min_version: Version,
    /// Signed permission to replace a newer running version (a rollback the key holder
    /// chose); without it a hot swap only moves to higher versions.
    pub downgrade: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestError {
    Truncated,
    UnsupportedVersion(u8),
    BadName,
    BadInterfaceName,
    BadCompatible,
    BadToolchain,
    TooManyInterfaces,
    TooManyDevices,
    DuplicateInterface,
    HeapLimit(u32),
    StackSize(u32),
    SharedHeapLimit(u32),
    MaxThreads(u32),
    MaxEvents(u32),
    BadRestartPolicy(u8),
    BadFlag(u8),
    FloorAboveVersion,
    TrailingBytes,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ManifestError::*;
        match self {
            Truncated => write!(f, "manifest ends early"),
            UnsupportedVersion(v) => write!(f, "manifest version {v} is not supported (expected {MANIFEST_VERSION})"),
            BadName => write!(f, "domain name must be 1-{MAX_NAME} of [a-z0-9_-]"),
            BadInterfaceName => write!(f, "interface name must be 1-{MAX_INTERFACE_NAME} of [A-Za-z0-9_]"),
            BadCompatible => write!(f, "device compatible string must be 1-{MAX_COMPATIBLE} printable ASCII characters"),
            BadToolchain => write!(f, "toolchain must be at most {MAX_TOOLCHAIN} printable ASCII characters"),
            TooManyInterfaces => write!(f, "more than {MAX_INTERFACES} exports or imports"),
            TooManyDevices => write!(f, "more than {MAX_DEVICES} device grants"),
            DuplicateInterface => write!(f, "an interface is listed twice"),
            HeapLimit(v) => write!(f, "heap limit {v}: {}", size_rule(*v, PAGE, MAX_HEAP)),
            StackSize(v) => write!(f, "stack size {v}: {}", size_rule(*v, PAGE, MAX_STACK)),
            SharedHeapLimit(v) => write!(f, "shared-heap limit {v} is below {MIN_SHARED_HEAP} or above {MAX_SHARED_HEAP} bytes"),
            MaxThreads(v) => write!(f, "thread limit {v} is below {MIN_THREADS} or above {MAX_THREADS}"),
            MaxEvents(v) => write!(f, "event limit {v} is above {MAX_EVENTS}"),
            BadRestartPolicy(v) => write!(f, "restart policy {v} is unknown"),
            BadFlag(v) => write!(f, "flag byte {v} is neither 0 nor 1"),
            FloorAboveVersion => write!(f, "minimum version is above the version itself"),
            TrailingBytes => write!(f, "bytes after the end of the manifest"),
        }
    }
}

/// The page size that heap and stack sizes are multiples of.
const PAGE: u32 = 4096;

/// Which rule a heap or stack size of `v` breaks (it must be a multiple of `page`, from
/// `page` to `max`), with the nearest sizes that keep it.
fn size_rule(v: u32, page: u32, max: u32) -> alloc::string::String {
    use alloc::format;
    if v < page {
        format!("must be at least {page} bytes (one page)")
    } else if v > max {
        format!("must be at most {max} bytes")
    } else {
        let below = v / page * page;
        format!("must be a multiple of the {page}-byte page (for example {below} or {})", below + page)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        let end = self.at.checked_add(n).ok_or(ManifestError::Truncated)?;
        let s = self.b.get(self.at..end).ok_or(ManifestError::Truncated)?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ManifestError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ManifestError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn version(&mut self) -> Result<Version, ManifestError> {
        Ok(Version {
            major: self.u32()?,
            minor: self.u32()?,
            patch: self.u32()?,
        })
    }
    fn flag(&mut self) -> Result<bool, ManifestError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(ManifestError::BadFlag(v)),
        }
    }
    fn str(&mut self, max: usize, ok: fn(u8) -> bool, allow_empty: bool, err: ManifestError) -> Result<String, ManifestError> {
        let n = self.u8()? as usize;
        let s = self.take(n)?;
        if n > max || (n == 0 && !allow_empty) || !s.iter().all(|&c| ok(c)) {
            return Err(err);
        }
        // All accepted characters are ASCII, so this is valid UTF-8.
        Ok(s.iter().map(|&c| c as char).collect())
    }
}

fn name_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-'
}
fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
fn printable(c: u8) -> bool {
    (0x20..0x7f).contains(&c)
}

fn check_limits(heap: u32, stack: u32) -> Result<(), ManifestError> {
    if heap == 0 || heap > MAX_HEAP || !heap.is_multiple_of(PAGE) {
        return Err(ManifestError::HeapLimit(heap));
    }
    if !(PAGE..=MAX_STACK).contains(&stack) || !stack.is_multiple_of(PAGE) {
        return Err(ManifestError::StackSize(stack));
    }
    Ok(())
}

fn check_quotas(shared_heap: u32, threads: u32, events: u32) -> Result<(), ManifestError> {
    if !(MIN_SHARED_HEAP..=MAX_SHARED_HEAP).contains(&shared_heap) {
        return Err(ManifestError::SharedHeapLimit(shared_heap));
    }
    if !(MIN_THREADS..=MAX_THREADS).contains(&threads) {
        return Err(ManifestError::MaxThreads(threads));
    }
    if events > MAX_EVENTS {
        return Err(ManifestError::MaxEvents(events));
    }
    Ok(())
}

fn read_interfaces(r: &mut Reader) -> Result<Vec<InterfaceRef>, ManifestError> {
    let n = r.u8()? as usize;
    if n > MAX_INTERFACES {
        return Err(ManifestError::TooManyInterfaces);
    }
    let mut v: Vec<InterfaceRef> = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str(MAX_INTERFACE_NAME, ident_char, false, ManifestError::BadInterfaceName)?;
        let hash: [u8; 32] = r.take(32)?.try_into().map_err(|_| ManifestError::Truncated)?;
        if v.iter().any(|i| i.name == name) {
            return Err(ManifestError::DuplicateInterface);
        }
        v.push(InterfaceRef { name, hash });
    }
    Ok(v)
}

fn push_version(out: &mut Vec<u8>, v: &Version) {
    for x in [v.major, v.minor, v.patch] {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

impl Manifest {
    /// Decodes and checks a manifest. At most a few KiB are allocated, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = Reader { b: bytes, at: 0 };
        let version = r.u8()?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        let name = r.str(MAX_NAME, name_char, false, ManifestError::BadName)?;
        let version = r.version()?;
        let exports = read_interfaces(&mut r)?;
        let imports = read_interfaces(&mut r)?;
        let n = r.u8()? as usize;
        if n > MAX_DEVICES {
            return Err(ManifestError::TooManyDevices);
        }
        let mut devices = Vec::with_capacity(n);
        for _ in 0..n {
            devices.push(r.str(MAX_COMPATIBLE, printable, false, ManifestError::BadCompatible)?);
        }
        let (heap_limit, stack_size) = (r.u32()?, r.u32()?);
        check_limits(heap_limit, stack_size)?;
        let (shared_heap_limit, max_threads, max_events) = (r.u32()?, r.u32()?, r.u32()?);
        check_quotas(shared_heap_limit, max_threads, max_events)?;
        let restart = match r.u8()? {
            0 => RestartPolicy::Restart,
            1 => RestartPolicy::Hold,
            2 => RestartPolicy::Fatal,
            v => return Err(ManifestError::BadRestartPolicy(v)),
        };
        let toolchain = r.str(MAX_TOOLCHAIN, printable, true, ManifestError::BadToolchain)?;
        let safe_rust_checked = r.flag()?;
        let min_version = r.version()?;
        if min_version > version {
            return Err(ManifestError::FloorAboveVersion);
        }
        let downgrade = r.flag()?;
        if r.at != bytes.len() {
            return Err(ManifestError::TrailingBytes);
        }
        Ok(Manifest {
            name,
            version,
            exports,
            imports,
            devices,
            heap_limit,
            stack_size,
            shared_heap_limit,
            max_threads,
            max_events,
            restart,
            toolchain,
            safe_rust_checked,
            min_version,
            downgrade,
        })
    }

    /// The canonical encoding. Fails if the manifest breaks a rule `decode` enforces.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        let mut out = Vec::new();
        out.push(MANIFEST_VERSION);
        let push_str = |out: &mut Vec<u8>, s: &str| {
            out.push(s.len().min(255) as u8);
            out.extend_from_slice(s.as_bytes());
        };
        push_str(&mut out, &self.name);
        push_version(&mut out, &self.version);
        for list in [&self.exports, &self.imports] {
            if list.len() > MAX_INTERFACES {
                return Err(ManifestError::TooManyInterfaces);
            }
            out.push(list.len() as u8);
            for i in list.iter() {
                push_str(&mut out, &i.name);
                out.extend_from_slice(&i.hash);
            }
        }
        if self.devices.len() > MAX_DEVICES {
            return Err(ManifestError::TooManyDevices);
        }
        out.push(self.devices.len() as u8);
        for d in &self.devices {
            push_str(&mut out, d);
        }
        out.extend_from_slice(&self.heap_limit.to_le_bytes());
        out.extend_from_slice(&self.stack_size.to_le_bytes());
        out.extend_from_slice(&self.shared_heap_limit.to_le_bytes());
        out.extend_from_slice(&self.max_threads.to_le_bytes());
        out.extend_from_slice(&self.max_events.to_le_bytes());
        out.push(match self.restart {
            RestartPolicy::Restart => 0,
            RestartPolicy::Hold => 1,
            RestartPolicy::Fatal => 2,
        });
        push_str(&mut out, &self.toolchain);
        out.push(self.safe_rust_checked as u8);
        push_version(&mut out, &self.min_version);
        out.push(self.downgrade as u8);
        // Encoding is only valid if it decodes to the same manifest.
        match Manifest::decode(&out) {
            Ok(m) if m == *self => Ok(out),
            Ok(_) => Err(ManifestError::BadName),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn sample() -> Manifest {
        Manifest {
            name: "hello".into(),
            version: Version { major: 1, minor: 2, patch: 3 },
            exports: alloc::vec![InterfaceRef {
                name: "Hello".into(),
                hash: [7; 32]
            }],
            imports: alloc::vec![InterfaceRef {
                name: "Console".into(),
                hash: [9; 32]
            }],
            devices: alloc::vec!["arm,pl011".into()],
            heap_limit: 64 << 10,
            stack_size: 16 << 10,
            shared_heap_limit: 128 << 10,
            max_threads: 8,
            max_events: 32,
            restart: RestartPolicy::Restart,
            toolchain: "rustc 1.95.0".into(),
            safe_rust_checked: true,
            min_version: Version { major: 1, minor: 0, patch: 0 },
            downgrade: false,
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn size_errors_name_the_rule_they_break() {
        assert_eq!(
            ManifestError::HeapLimit(65000).to_string(),
            "heap limit 65000: must be a multiple of the 4096-byte page (for example 61440 or 65536)"
        );
        assert_eq!(ManifestError::HeapLimit(0).to_string(), "heap limit 0: must be at least 4096 bytes (one page)");
        assert_eq!(
            ManifestError::StackSize(2 << 20).to_string(),
            "stack size 2097152: must be at most 1048576 bytes"
        );
    }

    #[test]
    fn each_rule_has_its_error() {
        let good = sample().encode().unwrap();
        assert_eq!(Manifest::decode(&good[..good.len() - 1]), Err(ManifestError::Truncated));
        let mut t = good.clone();
        t.push(0);
        assert_eq!(Manifest::decode(&t), Err(ManifestError::TrailingBytes));
        let mut v = good.clone();
        v[0] = 1; // the version before the quotas
        assert_eq!(Manifest::decode(&v), Err(ManifestError::UnsupportedVersion(1)));
        let mut n = good.clone();
        n[2] = b'H';
        assert_eq!(Manifest::decode(&n), Err(ManifestError::BadName));
        let mut m = sample();
        m.heap_limit = 100;
        assert_eq!(m.encode(), Err(ManifestError::HeapLimit(100)));
        let mut m = sample();
        m.stack_size = 0;
        assert_eq!(m.encode(), Err(ManifestError::StackSize(0)));
        let mut m = sample();
        m.imports.push(m.imports[0].clone());
        assert_eq!(m.encode(), Err(ManifestError::DuplicateInterface));
        let mut m = sample();
        m.devices = alloc::vec!["x".into(); 9];
        assert_eq!(m.encode(), Err(ManifestError::TooManyDevices));
    }

    /// Offset of `shared_heap_limit` in `sample()`'s encoding (then `max_threads`,
    /// `max_events`): before the restart byte, the toolchain string, the safe-Rust flag,
    /// the minimum version and the downgrade flag.
    fn quota_offset() -> usize {
        sample().encode().unwrap().len() - 1 - 12 - 1 - (1 + sample().toolchain.len()) - 1 - 12
    }

    #[test]
    fn rollback_fields_come_last_and_are_checked() {
        let b = sample().encode().unwrap();
        let n = b.len();
        assert_eq!(b[n - 1], 0, "downgrade flag");
        assert_eq!(&b[n - 13..n - 1], &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "minimum version 1.0.0");
        let mut m = sample();
        m.min_version = Version { major: 1, minor: 2, patch: 4 };
        assert_eq!(m.encode(), Err(ManifestError::FloorAboveVersion));
        m.min_version = m.version.clone();
        m.downgrade = true;
        assert_eq!(Manifest::decode(&m.encode().unwrap()), Ok(m));
        let mut flag = b.clone();
        flag[n - 1] = 2;
        assert_eq!(Manifest::decode(&flag), Err(ManifestError::BadFlag(2)));
    }

    #[test]
    fn quotas_are_encoded_after_the_stack_size() {
        let b = sample().encode().unwrap();
        let at = quota_offset();
        let word = |i: usize| u32::from_le_bytes(b[at + 4 * i..at + 4 * i + 4].try_into().unwrap());
        assert_eq!(u32::from_le_bytes(b[at - 4..at].try_into().unwrap()), sample().stack_size);
        assert_eq!((word(0), word(1), word(2)), (128 << 10, 8, 32));
    }

    #[test]
    fn each_quota_bound_is_refused() {
        /// Sets the quota; values accepted; values refused; the refusal.
        type Case = (fn(&mut Manifest, u32), &'static [u32], &'static [u32], fn(u32) -> ManifestError);
        let cases: [Case; 3] = [
            (
                |m, v| m.shared_heap_limit = v,
                &[MIN_SHARED_HEAP, DEFAULT_SHARED_HEAP_LIMIT, MAX_SHARED_HEAP, 5000],
                &[0, MIN_SHARED_HEAP - 1, MAX_SHARED_HEAP + 1, u32::MAX],
                ManifestError::SharedHeapLimit,
            ),
            (
                |m, v| m.max_threads = v,
                &[MIN_THREADS, DEFAULT_MAX_THREADS, MAX_THREADS],
                &[0, MAX_THREADS + 1, u32::MAX],
                ManifestError::MaxThreads,
            ),
            (
                |m, v| m.max_events = v,
                &[0, DEFAULT_MAX_EVENTS, MAX_EVENTS],
                &[MAX_EVENTS + 1, u32::MAX],
                ManifestError::MaxEvents,
            ),
        ];
        for (i, (set, good, bad, err)) in cases.into_iter().enumerate() {
            for &v in good {
                let mut m = sample();
                set(&mut m, v);
                assert_eq!(Manifest::decode(&m.encode().unwrap()).unwrap(), m, "{v}");
            }
            for &v in bad {
                let mut m = sample();
                set(&mut m, v);
                assert_eq!(m.encode(), Err(err(v)), "{v}");
                // decode refuses the same bytes, however they were made.
                let mut b = sample().encode().unwrap();
                let at = quota_offset() + 4 * i;
                b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                assert_eq!(Manifest::decode(&b), Err(err(v)), "{v}");
            }
        }
    }

    #[test]
    fn quota_errors_name_their_bounds() {
        use alloc::string::ToString;
        assert_eq!(
            ManifestError::SharedHeapLimit(1).to_string(),
            "shared-heap limit 1 is below 4096 or above 4194304 bytes"
        );
        assert_eq!(ManifestError::MaxThreads(0).to_string(), "thread limit 0 is below 1 or above 64");
        assert_eq!(ManifestError::MaxEvents(2000).to_string(), "event limit 2000 is above 1024");
    }

    #[test]
    fn a_version_1_manifest_is_refused() {
        // Version 1 had no quotas: its bytes are the version-2 bytes without them.
        let b = sample().encode().unwrap();
        let at = quota_offset();
        let mut old = [&b[..at], &b[at + 12..]].concat();
        old[0] = 1;
        assert_eq!(Manifest::decode(&old), Err(ManifestError::UnsupportedVersion(1)));
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(Version::parse("0.10.2"), Some(Version { major: 0, minor: 10, patch: 2 }));
        for bad in ["1.2", "1.2.3.4", "01.2.3", "a.b.c", "1..3", ""] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::decode(&bytes);
        }

        #[test]
        fn quotas_round_trip(shared in MIN_SHARED_HEAP..=MAX_SHARED_HEAP, threads in MIN_THREADS..=MAX_THREADS, events in 0..=MAX_EVENTS) {
            let mut m = sample();
            m.shared_heap_limit = shared;
            m.max_threads = threads;
            m.max_events = events;
            prop_assert_eq!(Manifest::decode(&m.encode().unwrap()).unwrap(), m);
        }

        #[test]
        fn out_of_range_quotas_never_decode(v in any::<u32>(), which in 0usize..3) {
            let mut b = sample().encode().unwrap();
            let at = quota_offset() + 4 * which;
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            let ok = match which {
                0 => (MIN_SHARED_HEAP..=MAX_SHARED_HEAP).contains(&v),
                1 => (MIN_THREADS..=MAX_THREADS).contains(&v),
                _ => v <= MAX_EVENTS,
            };
            prop_assert_eq!(Manifest::decode(&b).is_ok(), ok);
        }

        #[test]
        fn decoded_manifests_reencode_identically(pos in 0usize..200, val in any::<u8>()) {
            let mut b = sample().encode().unwrap();
            let p = pos % b.len();
            b[p] = val;
            if let Ok(m) = Manifest::decode(&b) {
                prop_assert_eq!(m.encode().unwrap(), b);
            }
        }
    }
}
