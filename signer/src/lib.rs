//! The host side of QvQ's trust chain: keys (PKCS#8 / SubjectPublicKeyInfo PEM, the forms
//! OpenSSL reads and writes), domain manifests written as TOML, signing, keyrings and
//! revocation lists read from a directory. `qvq-sign`, xtask and the kernel's build
//! script all use this library.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use loader::envelope::{assemble, key_id, statement, KeyId};
use loader::manifest::{self, InterfaceRef, Manifest, RestartPolicy, Version};
use loader::{Keyring, Revocations};
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};

pub mod policy;

/// QvQ's IDL (`domains/trusted/interfaces`), which names resolve against.
pub use interfaces;
pub use loader;

pub mod crosscheck;
pub use crosscheck::{crosscheck, CrossCheckError, Disagreement};

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 hex digits into 32 bytes.
pub fn unhex32(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not 64 hex digits"));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Reads an Ed25519 private key from PKCS#8 PEM, either form: v1 (RFC 5208, the seed
/// alone; what `openssl genpkey -algorithm ed25519` and `qvq-sign keygen` write) or v2
/// (RFC 5958 OneAsymmetricKey with the public key inside; what older `qvq-sign keygen`
/// wrote). A v2 key whose public key does not match its seed is refused.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    SigningKey::from_pkcs8_pem(&read_text(path)?).map_err(|e| format!("{}: not a PKCS#8 PEM Ed25519 private key ({e})", path.display()))
}

/// `key` as PKCS#8 v1 PEM (RFC 5208 / RFC 8410): the 32-byte seed without the public
/// key, byte for byte the form `openssl genpkey -algorithm ed25519` writes. OpenSSL 3.0
/// refuses the v2 form with the public key inside ("unsupported").
pub fn private_key_pem(key: &SigningKey) -> Result<String, String> {
    let v1 = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    Ok(v1
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the private key: {e}"))?
        .to_string())
}

/// `key` as SubjectPublicKeyInfo PEM (what `openssl pkey -pubout` writes).
pub fn public_key_pem(key: &VerifyingKey) -> Result<String, String> {
    key.to_public_key_pem(LineEnding::LF).map_err(|e| format!("cannot encode the public key: {e}"))
}

pub fn read_public_key(path: &Path) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(&read_text(path)?).map_err(|e| format!("{}: not a SubjectPublicKeyInfo PEM Ed25519 public key ({e})", path.display()))
}

/// Key id of a public key: SHA-256 of its 32 raw bytes.
pub fn public_key_id(key: &VerifyingKey) -> KeyId {
    key_id(&key.to_bytes())
}

/// `PREFIX.key.pem` and `PREFIX.pub.pem` for a key prefix.
pub fn key_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let name = prefix.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (
        prefix.with_file_name(format!("{name}.key.pem")),
        prefix.with_file_name(format!("{name}.pub.pem")),
    )
}

/// Makes a new key pair at `PREFIX.key.pem` (PKCS#8 v1, mode 0600) and `PREFIX.pub.pem`
/// (SubjectPublicKeyInfo); OpenSSL 3 reads both as they are. Refuses to
/// overwrite either unless `force`.
pub fn keygen(prefix: &Path, force: bool) -> Result<(PathBuf, PathBuf, KeyId), String> {
    let (private, public) = key_paths(prefix);
    for p in [&private, &public] {
        if p.exists() && !force {
            return Err(format!("{} exists; pass --force to replace it", p.display()));
        }
    }
    if let Some(dir) = private.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    write_private(&private, private_key_pem(&key)?.as_bytes())?;
    let pub_pem = public_key_pem(&key.verifying_key())?;
    fs::write(&public, pub_pem).map_err(|e| format!("cannot write {}: {e}", public.display()))?;
    Ok((private, public, public_key_id(&key.verifying_key())))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `domain.toml`: the human-written form of a manifest.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestToml {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub exports: Vec<InterfaceToml>,
    #[serde(default)]
    pub imports: Vec<InterfaceToml>,
    #[serde(default)]
    pub devices: Vec<String>,
    /// Bytes; a multiple of 4096.
    pub heap_limit: u32,
    /// Bytes; a multiple of 4096.
    pub stack_size: u32,
    /// Bytes of shared-heap `RRef` blocks the domain may own (4096 to 4 MiB; default 256 KiB).
    #[serde(default = "default_shared_heap_limit")]
    pub shared_heap_limit: u32,
    /// Threads the domain may have at once (1 to 64; default 16).
    #[serde(default = "default_max_threads")]
    pub max_threads: u32,
    /// Events the domain may own at once (0 to 1024; default 64).
    #[serde(default = "default_max_events")]
    pub max_events: u32,
    #[serde(default = "default_restart")]
    pub restart: String,
    #[serde(default)]
    pub toolchain: String,
    #[serde(default)]
    pub safe_rust_checked: bool,
    /// Rollback floor: once this version ran, nothing below this loads (default 0.0.0).
    #[serde(default)]
    pub min_version: Option<String>,
    /// Signed permission to replace a newer running version (default false).
    #[serde(default)]
    pub downgrade: bool,
}

fn default_restart() -> String {
    "restart".into()
}
fn default_shared_heap_limit() -> u32 {
    manifest::DEFAULT_SHARED_HEAP_LIMIT
}
fn default_max_threads() -> u32 {
    manifest::DEFAULT_MAX_THREADS
}
fn default_max_events() -> u32 {
    manifest::DEFAULT_MAX_EVENTS
}

/// An interface in `domain.toml`: a bare name (its hash comes from QvQ's IDL,
/// `domains/trusted/interfaces`) or an explicit `{ name, hash }`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum InterfaceToml {
    Name(String),
    Explicit {
        name: String,
        /// 64 hex digits.
        hash: String,
    },
}

/// The hash QvQ's IDL gives interface `name`.
pub fn idl_hash(name: &str) -> Option<[u8; 32]> {
    interfaces::ALL.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

impl ManifestToml {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let t: ManifestToml = toml::from_str(text).map_err(|e| e.to_string())?;
        t.into_manifest()
    }

    pub fn into_manifest(self) -> Result<Manifest, String> {
        let iface = |list: Vec<InterfaceToml>| -> Result<Vec<InterfaceRef>, String> {
            list.into_iter()
                .map(|i| match i {
                    InterfaceToml::Name(name) => {
                        let hash = idl_hash(&name)
                            .ok_or_else(|| format!("interface {name} is not declared in QvQ's IDL: add a `pub mod {}: {name} {{ ... }}` block to the `interfaces!` list in domains/trusted/interfaces/src/idl.rs (`cargo xtask new-domain --export {name}` writes one), or give its hash: {{ name = \"{name}\", hash = \"<64 hex digits>\" }}", name.to_lowercase()))?;
                        Ok(InterfaceRef { name, hash })
                    }
                    InterfaceToml::Explicit { name, hash } => Ok(InterfaceRef {
                        hash: unhex32(&hash).map_err(|e| format!("interface {name}: hash {e}"))?,
                        name,
                    }),
                })
                .collect()
        };
        let m = Manifest {
            version: Version::parse(&self.version).ok_or_else(|| format!("version {:?} is not MAJOR.MINOR.PATCH", self.version))?,
            name: self.name,
            exports: iface(self.exports)?,
            imports: iface(self.imports)?,
            devices: self.devices,
            heap_limit: self.heap_limit,
            stack_size: self.stack_size,
            shared_heap_limit: self.shared_heap_limit,
            max_threads: self.max_threads,
            max_events: self.max_events,
            restart: RestartPolicy::from_name(&self.restart).ok_or_else(|| format!("restart {:?} is not restart, hold or fatal", self.restart))?,
            toolchain: self.toolchain,
            safe_rust_checked: self.safe_rust_checked,
            min_version: match &self.min_version {
                None => Version::default(),
                Some(v) => Version::parse(v).ok_or_else(|| format!("min_version {v:?} is not MAJOR.MINOR.PATCH"))?,
            },
            downgrade: self.downgrade,
        };
        m.encode().map_err(|e| e.to_string())?;
        Ok(m)
    }
}

/// Validates `elf` exactly as the kernel will, checks that goblin reads the same segments,
/// entry point and relocations from it ([`crosscheck`]), then wraps it with `manifest` in
/// an envelope signed by `key`.
pub fn sign(manifest: &Manifest, elf: &[u8], key: &SigningKey) -> Result<Vec<u8>, String> {
    crosscheck(elf).map_err(|e| e.to_string())?;
    let m = manifest.encode().map_err(|e| format!("invalid manifest: {e}"))?;
    let elf_len = u32::try_from(elf.len()).map_err(|_| "ELF larger than 4 GiB".to_string())?;
    let sig = key.sign(&statement(&m, elf_len, &loader::sha256(elf)));
    Ok(assemble(&m, elf, &public_key_id(&key.verifying_key()), &sig.to_bytes()))
}

/// `revoked.toml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokedToml {
    /// Hex key ids (SHA-256 of the raw public key).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Hex SHA-256 digests of domain ELFs.
    #[serde(default)]
    pub digests: Vec<String>,
}

pub fn read_revocations(path: &Path) -> Result<Revocations, String> {
    let t: RevokedToml = toml::from_str(&read_text(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    let parse = |v: Vec<String>| {
        v.iter()
            .map(|s| unhex32(s).map_err(|e| format!("{}: {e}", path.display())))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Revocations {
        keys: parse(t.keys)?,
        digests: parse(t.digests)?,
    })
}

/// Every `*.pub.pem` in `dir` (sorted by name), and `dir/revoked.toml` if present.
/// A keyring, the key files it came from (with their ids), and the revocations.
pub type KeyringDir = (Keyring, Vec<(PathBuf, KeyId)>, Revocations);

pub fn read_keyring_dir(dir: &Path) -> Result<KeyringDir, String> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot read keyring directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".pub.pem"))
        .collect();
    paths.sort();
    let mut ring = Keyring::new();
    let mut ids = Vec::new();
    for p in paths {
        let key = read_public_key(&p)?;
        ring.add(key.to_bytes()).ok_or_else(|| format!("{}: not a valid Ed25519 point", p.display()))?;
        ids.push((p, public_key_id(&key)));
    }
    let revoked = dir.join("revoked.toml");
    let revoked = if revoked.exists() {
        read_revocations(&revoked)?
    } else {
        Revocations::default()
    };
    Ok((ring, ids, revoked))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PKCS#8 v2 form (public key inside) that `qvq-sign keygen` wrote before it wrote
    /// v1; existing development keys are in this form.
    fn v2_pem(key: &SigningKey) -> String {
        key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    }

    #[test]
    fn keygen_writes_v1_and_both_forms_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public, id) = keygen(&dir.path().join("k"), false).unwrap();
        let pem = fs::read_to_string(&private).unwrap();
        let key = read_signing_key(&private).unwrap();
        assert_eq!(public_key_id(&read_public_key(&public).unwrap()), id);
        assert_eq!(public_key_id(&key.verifying_key()), id);
        // v1: 48 bytes of DER (64 base64 characters), v2 is longer.
        assert_eq!(pem, private_key_pem(&key).unwrap());
        // The PKCS#8 v1 label, and the DER header OpenSSL writes for an Ed25519 key.
        assert_eq!(pem.lines().next(), Some(format!("-----BEGIN {} KEY-----", "PRIVATE").as_str()), "{pem}");
        assert!(pem.lines().nth(1).is_some_and(|l| l.starts_with("MC4CAQAwBQYDK2VwBCIEI")), "{pem}");
        assert_eq!(pem.lines().count(), 3, "{pem}");
        let v2 = v2_pem(&key);
        assert_ne!(v2, pem);
        let v2_path = dir.path().join("old.key.pem");
        fs::write(&v2_path, &v2).unwrap();
        assert_eq!(read_signing_key(&v2_path).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn a_v2_key_whose_public_key_is_not_its_own_is_refused() {
        let (a, b) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        let forged = KeypairBytes {
            secret_key: a.to_bytes(),
            public_key: Some(ed25519_dalek::pkcs8::PublicKeyBytes(b.verifying_key().to_bytes())),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forged.key.pem");
        fs::write(&path, forged.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        let e = read_signing_key(&path).unwrap_err();
        assert!(e.contains("not a PKCS#8 PEM Ed25519 private key"), "{e}");
    }
}
