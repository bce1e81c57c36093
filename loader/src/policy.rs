//! Trust policy: what a verified domain may be, beyond "a trusted key signed it".
//!
//! * Each key has a [`KeyPolicy`] (`keys/policy/<key>.toml`): the domain names it may sign,
//!   the interfaces those domains may export and import (`Kernel`, the administrative
//!   interface, included), the devices they may be granted, and whether it may sign a
//!   domain whose build did not check it as safe Rust.
//! * Some devices the kernel keeps for itself ([`KERNEL_OWNED`]); no policy can grant them.
//! * A rollback floor per name ([`check_floor`]): nothing below it loads.
//!
//! The kernel checks all of it at boot, restart and swap; `qvq-sign` checks the same rules
//! when it signs or verifies with a keyring directory, so a refusal shows up on the host
//! first. Patterns are exact strings, `*` (anything), or `prefix*`.

use crate::manifest::{Manifest, Version};
use alloc::string::{String, ToString};
use core::fmt;

/// Device-tree `compatible` strings no domain is granted: devices the kernel drives itself
/// (interrupt controllers, timers, PCI host bridges, the host-link UART, PSCI, the PMU),
/// whose grant would hand a domain the kernel's own hardware, and devices that read or
/// write memory at addresses their driver gives (DMA engines, the Pi's mailbox), which the
/// runtime cannot confine.
pub const KERNEL_OWNED: &[(&str, &str)] = &[
    ("arm,cortex-a15-gic", "the interrupt controller"),
    ("arm,gic-400", "the interrupt controller"),
    ("arm,gic-v3", "the interrupt controller"),
    ("arm,gic-v2m-frame", "the interrupt controller"),
    ("brcm,bcm2836-l1-intc", "the interrupt controller"),
    ("brcm,bcm2836-armctrl-ic", "the interrupt controller"),
    ("brcm,bcm2835-armctrl-ic", "the interrupt controller"),
    ("arm,armv8-timer", "the kernel's timer"),
    ("arm,armv7-timer", "the kernel's timer"),
    ("brcm,bcm2835-system-timer", "the kernel's timer"),
    ("pci-host-ecam-generic", "the PCI host bridge"),
    ("pci-host-cam-generic", "the PCI host bridge"),
    ("brcm,bcm2835-aux-uart", "the host link"),
    ("brcm,bcm2835-aux", "the host link"),
    ("arm,psci", "power control"),
    ("arm,psci-0.2", "power control"),
    ("arm,psci-1.0", "power control"),
    ("arm,armv8-pmuv3", "the performance monitor"),
    // Devices that read and write memory at addresses their driver gives, with no way for
    // the runtime to keep those registers (red-team finding): never granted.
    ("brcm,bcm2835-dma", "a DMA engine that copies any memory"),
    (
        "brcm,bcm2835-mbox",
        "the firmware mailbox, which reads and writes memory at the addresses it is given",
    ),
    ("brcm,bcm2835-vchiq", "the VideoCore interface, which shares memory by address"),
];

/// What the kernel keeps `compatible` for, if it does.
pub fn kernel_owned(compatible: &str) -> Option<&'static str> {
    KERNEL_OWNED.iter().find(|(c, _)| *c == compatible).map(|(_, what)| *what)
}

/// What one key may sign.
#[derive(Clone, Copy, Debug)]
pub struct KeyPolicy<'a> {
    /// Domain names (patterns) this key may sign.
    pub names: &'a [&'a str],
    /// Interfaces (patterns) its domains may export.
    pub exports: &'a [&'a str],
    /// Interfaces (patterns) its domains may import.
    pub imports: &'a [&'a str],
    /// Device `compatible` strings (patterns) its domains may be granted; never a
    /// kernel-owned one, whatever the pattern.
    pub devices: &'a [&'a str],
    /// May sign domains whose manifest says the build did not check them as safe Rust.
    pub unchecked: bool,
}

/// Why a policy refused a domain. Each rule has its own variant and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// The signing key has no policy, so it may sign nothing.
    NoPolicy,
    Name(String),
    Export(String),
    Import(String),
    Device(String),
    KernelOwned {
        compatible: String,
        what: &'static str,
    },
    Unchecked,
    BelowFloor {
        version: Version,
        floor: Version,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::NoPolicy => write!(f, "its key has no policy (keys/policy/), so it may sign nothing"),
            PolicyError::Name(n) => write!(f, "its key's policy does not allow the name {n:?}"),
            PolicyError::Export(i) => write!(f, "its key's policy does not allow exporting {i}"),
            PolicyError::Import(i) => write!(f, "its key's policy does not allow importing {i}"),
            PolicyError::Device(c) => write!(f, "its key's policy does not allow a grant of device {c:?}"),
            PolicyError::KernelOwned { compatible, what } => {
                write!(f, "device {compatible:?} is {what}, which the kernel keeps; it is never granted")
            }
            PolicyError::Unchecked => write!(
                f,
                "its manifest says the build did not check it as safe Rust, and its key's policy does not allow unchecked domains"
            ),
            PolicyError::BelowFloor { version, floor } => {
                write!(f, "version {version} is below the rollback floor {floor}")
            }
        }
    }
}

/// `pattern` matches `s`: equal, `*`, or `prefix*` with `s` starting with `prefix`.
pub fn pattern_matches(pattern: &str, s: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => pattern == s,
    }
}

fn any_matches(patterns: &[&str], s: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, s))
}

impl KeyPolicy<'_> {
    /// Checks `m` against this policy and the kernel-owned devices; the first broken rule.
    pub fn allows(&self, m: &Manifest) -> Result<(), PolicyError> {
        if !any_matches(self.names, &m.name) {
            return Err(PolicyError::Name(m.name.clone()));
        }
        if !m.safe_rust_checked && !self.unchecked {
            return Err(PolicyError::Unchecked);
        }
        if let Some(i) = m.exports.iter().find(|i| !any_matches(self.exports, &i.name)) {
            return Err(PolicyError::Export(i.name.clone()));
        }
        if let Some(i) = m.imports.iter().find(|i| !any_matches(self.imports, &i.name)) {
            return Err(PolicyError::Import(i.name.clone()));
        }
        check_devices(m)?;
        if let Some(c) = m.devices.iter().find(|c| !any_matches(self.devices, c)) {
            return Err(PolicyError::Device(c.clone()));
        }
        Ok(())
    }
}

/// No device of `m` is kernel-owned (whoever signed it).
pub fn check_devices(m: &Manifest) -> Result<(), PolicyError> {
    for c in &m.devices {
        if let Some(what) = kernel_owned(c) {
            return Err(PolicyError::KernelOwned {
                compatible: c.to_string(),
                what,
            });
        }
    }
    Ok(())
}

/// `m`'s version is at or above `floor`.
pub fn check_floor(m: &Manifest, floor: &Version) -> Result<(), PolicyError> {
    if m.version < *floor {
        return Err(PolicyError::BelowFloor {
            version: m.version.clone(),
            floor: floor.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::InterfaceRef;

    fn manifest(name: &str, exports: &[&str], devices: &[&str], checked: bool) -> Manifest {
        let mut m = crate::tests::sample_manifest();
        m.name = name.into();
        m.exports = exports
            .iter()
            .map(|e| InterfaceRef {
                name: e.to_string(),
                hash: [1; 32],
            })
            .collect();
        m.devices = devices.iter().map(|d| d.to_string()).collect();
        m.safe_rust_checked = checked;
        m
    }

    const LIMITED: KeyPolicy = KeyPolicy {
        names: &["hello", "net-*"],
        exports: &["Hello"],
        imports: &["Console"],
        devices: &["arm,pl011"],
        unchecked: false,
    };

    #[test]
    fn patterns_are_exact_star_or_prefix() {
        assert!(pattern_matches("hello", "hello"));
        assert!(!pattern_matches("hello", "hello2"));
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("net-*", "net-e1000"));
        assert!(!pattern_matches("net-*", "netx"));
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        assert_eq!(LIMITED.allows(&manifest("hello", &["Hello"], &["arm,pl011"], true)), Ok(()));
        assert_eq!(LIMITED.allows(&manifest("net-virtio", &[], &[], true)), Ok(()));
        assert_eq!(LIMITED.allows(&manifest("console", &[], &[], true)), Err(PolicyError::Name("console".into())));
        assert_eq!(
            LIMITED.allows(&manifest("hello", &["Console"], &[], true)),
            Err(PolicyError::Export("Console".into()))
        );
        assert_eq!(
            LIMITED.allows(&manifest("hello", &[], &["virtio,mmio"], true)),
            Err(PolicyError::Device("virtio,mmio".into()))
        );
        assert_eq!(LIMITED.allows(&manifest("hello", &[], &[], false)), Err(PolicyError::Unchecked));
        let mut admin = manifest("hello", &[], &[], true);
        admin.imports.push(InterfaceRef {
            name: "Kernel".into(),
            hash: [2; 32],
        });
        assert_eq!(LIMITED.allows(&admin), Err(PolicyError::Import("Kernel".into())));
        let open = KeyPolicy {
            names: &["*"],
            exports: &["*"],
            imports: &["*"],
            devices: &["*"],
            unchecked: true,
        };
        assert_eq!(open.allows(&manifest("x", &["Any"], &[], false)), Ok(()));
        let e = open.allows(&manifest("x", &[], &["arm,armv8-timer"], true)).unwrap_err();
        assert_eq!(
            e,
            PolicyError::KernelOwned {
                compatible: "arm,armv8-timer".into(),
                what: "the kernel's timer"
            }
        );
        assert!(e.to_string().contains("never granted"), "{e}");
    }

    #[test]
    fn floors_refuse_lower_versions_only() {
        let v = |s| Version::parse(s).unwrap();
        let mut m = manifest("hello", &[], &[], true);
        m.version = v("1.2.3");
        assert_eq!(check_floor(&m, &v("1.2.3")), Ok(()));
        assert_eq!(check_floor(&m, &v("0.9.9")), Ok(()));
        assert_eq!(
            check_floor(&m, &v("1.2.4")),
            Err(PolicyError::BelowFloor {
                version: v("1.2.3"),
                floor: v("1.2.4")
            })
        );
    }
}
