//! The domain manifest: what a domain is and what it may use. Binary, versioned and
//! canonical (one encoding per manifest); decoding allocates at most a bounded amount.
//! The byte layout is in `FORMAT.md`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub const MANIFEST_VERSION: u8 = 1;
pub const MAX_NAME: usize = 32;
pub const MAX_INTERFACE_NAME: usize = 64;
pub const MAX_COMPATIBLE: usize = 64;
pub const MAX_TOOLCHAIN: usize = 128;
pub const MAX_INTERFACES: usize = 16;
pub const MAX_DEVICES: usize = 8;
pub const MAX_HEAP: u32 = 256 << 20;
pub const MAX_STACK: u32 = 1 << 20;

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
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
    pub restart: RestartPolicy,
    pub toolchain: String,
    /// The build checked `#![forbid(unsafe_code)]` and the dependency allow-list.
    pub safe_rust_checked: bool,
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
    BadRestartPolicy(u8),
    BadFlag(u8),
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
            HeapLimit(v) => write!(f, "heap limit {v} is zero, above {MAX_HEAP} or not page aligned"),
            StackSize(v) => write!(f, "stack size {v} is below 4096, above {MAX_STACK} or not page aligned"),
            BadRestartPolicy(v) => write!(f, "restart policy {v} is unknown"),
            BadFlag(v) => write!(f, "safe-Rust flag {v} is neither 0 nor 1"),
            TrailingBytes => write!(f, "bytes after the end of the manifest"),
        }
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
    if heap == 0 || heap > MAX_HEAP || !heap.is_multiple_of(4096) {
        return Err(ManifestError::HeapLimit(heap));
    }
    if !(4096..=MAX_STACK).contains(&stack) || !stack.is_multiple_of(4096) {
        return Err(ManifestError::StackSize(stack));
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

impl Manifest {
    /// Decodes and checks a manifest. At most a few KiB are allocated, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = Reader { b: bytes, at: 0 };
        let version = r.u8()?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        let name = r.str(MAX_NAME, name_char, false, ManifestError::BadName)?;
        let version = Version {
            major: r.u32()?,
            minor: r.u32()?,
            patch: r.u32()?,
        };
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
        let restart = match r.u8()? {
            0 => RestartPolicy::Restart,
            1 => RestartPolicy::Hold,
            2 => RestartPolicy::Fatal,
            v => return Err(ManifestError::BadRestartPolicy(v)),
        };
        let toolchain = r.str(MAX_TOOLCHAIN, printable, true, ManifestError::BadToolchain)?;
        let safe_rust_checked = match r.u8()? {
            0 => false,
            1 => true,
            v => return Err(ManifestError::BadFlag(v)),
        };
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
            restart,
            toolchain,
            safe_rust_checked,
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
        for v in [self.version.major, self.version.minor, self.version.patch] {
            out.extend_from_slice(&v.to_le_bytes());
        }
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
        out.push(match self.restart {
            RestartPolicy::Restart => 0,
            RestartPolicy::Hold => 1,
            RestartPolicy::Fatal => 2,
        });
        push_str(&mut out, &self.toolchain);
        out.push(self.safe_rust_checked as u8);
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
            restart: RestartPolicy::Restart,
            toolchain: "rustc 1.95.0".into(),
            safe_rust_checked: true,
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn each_rule_has_its_error() {
        let good = sample().encode().unwrap();
        assert_eq!(Manifest::decode(&good[..good.len() - 1]), Err(ManifestError::Truncated));
        let mut t = good.clone();
        t.push(0);
        assert_eq!(Manifest::decode(&t), Err(ManifestError::TrailingBytes));
        let mut v = good.clone();
        v[0] = 2;
        assert_eq!(Manifest::decode(&v), Err(ManifestError::UnsupportedVersion(2)));
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
