//! `qvq-sign`: make keys, sign domain ELFs into envelopes, verify and inspect envelopes.
//! Exit status: 0 success, 1 rejected (or an I/O problem), 2 usage error. A reader that
//! closes the output pipe early (`| head`) does not change the status and prints nothing.

use clap::{Parser, Subcommand};
use qvq_sign::crosscheck::{flags_str, goblin_view, ElfView};
use qvq_sign::loader::envelope::Envelope;
use qvq_sign::loader::{verify, ElfImage, Manifest};
use qvq_sign::{hex, read_keyring_dir, read_revocations, read_signing_key, sign, ManifestToml};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "qvq-sign", version, about = "Sign, verify and inspect QvQ domain envelopes (format: loader/FORMAT.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make an Ed25519 key pair: OUT.key.pem (PKCS#8 v1, mode 0600) and OUT.pub.pem (SPKI),
    /// the forms `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write.
    Keygen {
        /// Path prefix, e.g. keys/dev/dev → keys/dev/dev.key.pem and keys/dev/dev.pub.pem.
        #[arg(long)]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Validate an ELF as the kernel would, check that goblin reads the same segments, entry
    /// point and relocations from it, and sign it with a manifest into an envelope.
    Sign {
        /// Private key (PKCS#8 v1 or v2 PEM; `openssl genpkey -algorithm ed25519` makes one too).
        #[arg(long)]
        key: PathBuf,
        /// The domain's manifest (TOML; see loader/FORMAT.md).
        #[arg(long)]
        manifest: PathBuf,
        /// The domain ELF (static PIE for aarch64-unknown-none-softfloat).
        elf: PathBuf,
        /// Where to write the envelope (.qvd).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Verify an envelope against every *.pub.pem (and revoked.toml) in a directory.
    Verify {
        /// Directory of trusted public keys (*.pub.pem, SPKI PEM).
        #[arg(long)]
        keyring: PathBuf,
        /// A revocation list other than KEYRING/revoked.toml.
        #[arg(long)]
        revoked: Option<PathBuf>,
        /// Also apply the kernel's trust policy from this `keys/` directory: the signing
        /// key's `policy/NAME.toml` (names, exports, devices, unchecked) and `floors.toml`.
        #[arg(long, value_name = "KEYS_DIR")]
        policy: Option<PathBuf>,
        /// The envelope (.qvd).
        file: PathBuf,
    },
    /// Show an envelope's manifest, key id, digests, segments and relocations, as the
    /// loader reads them and as goblin (an independent ELF parser) reads them.
    Inspect {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// The envelope (.qvd).
        file: PathBuf,
    },
    /// Write the exact bytes the signature covers (for `openssl pkeyutl -verify -rawin`).
    Statement {
        /// The envelope (.qvd).
        file: PathBuf,
        /// Where to write the statement.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Write the raw 64-byte Ed25519 signature.
    Signature {
        /// The envelope (.qvd).
        file: PathBuf,
        /// Where to write the 64 signature bytes.
        #[arg(short, long)]
        out: PathBuf,
    },
}

type Failure = String;

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn parse_envelope<'a>(path: &Path, bytes: &'a [u8]) -> Result<Envelope<'a>, Failure> {
    Envelope::parse(bytes).map_err(|e| format!("{}: rejected: {}", path.display(), qvq_sign::loader::LoadError::from(e)))
}

fn manifest_json(m: &Manifest) -> serde_json::Value {
    let iface =
        |l: &Vec<qvq_sign::loader::manifest::InterfaceRef>| l.iter().map(|i| serde_json::json!({"name": i.name, "hash": hex(&i.hash)})).collect::<Vec<_>>();
    serde_json::json!({
        "name": m.name,
        "version": m.version.to_string(),
        "exports": iface(&m.exports),
        "imports": iface(&m.imports),
        "devices": m.devices,
        "heap_limit": m.heap_limit,
        "stack_size": m.stack_size,
        "shared_heap_limit": m.shared_heap_limit,
        "max_threads": m.max_threads,
        "max_events": m.max_events,
        "restart": m.restart.name(),
        "toolchain": m.toolchain,
        "safe_rust_checked": m.safe_rust_checked,
        "min_version": m.min_version.to_string(),
        "downgrade": m.downgrade,
    })
}

fn goblin_json(view: &ElfView) -> serde_json::Value {
    let segments: Vec<_> = view
        .segments
        .iter()
        .map(|s| serde_json::json!({"vaddr": s.vaddr, "offset": s.offset, "filesz": s.filesz, "memsz": s.memsz, "flags": flags_str(s.flags)}))
        .collect();
    let kinds: serde_json::Map<_, _> = view.relocation_kinds().into_iter().map(|(k, n)| (k, n.into())).collect();
    serde_json::json!({
        "entry": view.entry,
        "segments": segments,
        "relocations": view.relocations.len(),
        "relocation_kinds": kinds,
    })
}

/// `inspect`'s report, as text or JSON.
/// Applies the trust policy in `keys` (the kernel's rules) to `m`, signed by the key in
/// `key_file`; names the policy file that admitted it.
fn check_policy(keys: &Path, key_file: Option<&Path>, m: &Manifest) -> Result<String, String> {
    let key_file = key_file.ok_or("the signing key's file is not in the keyring")?;
    let path = qvq_sign::policy::policy_path(keys, key_file);
    if !path.exists() {
        return Err(format!("{} (no {})", qvq_sign::loader::policy::PolicyError::NoPolicy, path.display()));
    }
    let p = qvq_sign::policy::read_policy(&path)?;
    p.with(|p| p.allows(m)).map_err(|e| e.to_string())?;
    let floors = qvq_sign::policy::read_floors(&keys.join("floors.toml"))?;
    if let Some((_, floor)) = floors.iter().find(|(n, _)| *n == m.name) {
        qvq_sign::loader::policy::check_floor(m, floor).map_err(|e| e.to_string())?;
    }
    Ok(path.display().to_string())
}

fn inspect(path: &Path, json: bool) -> Result<String, Failure> {
    let bytes = read(path)?;
    let env = parse_envelope(path, &bytes)?;
    let manifest = Manifest::decode(env.manifest).map_err(|e| format!("{}: rejected: invalid manifest: {e}", path.display()))?;
    let elf = ElfImage::parse(env.elf).map_err(|e| format!("{}: rejected: invalid ELF: {e}", path.display()))?;
    let digest_ok = qvq_sign::loader::sha256(env.elf) == env.elf_digest;
    // goblin's view and the verdict of comparing it with the loader's.
    let goblin = goblin_view(env.elf);
    let verdict = match qvq_sign::crosscheck(env.elf) {
        Ok(()) => "agree".to_string(),
        Err(e) => e.to_string(),
    };
    let mut out = String::new();
    if json {
        let segments: Vec<_> = elf
            .segments()
            .iter()
            .map(|s| serde_json::json!({"vaddr": s.vaddr, "memsz": s.memsz, "filesz": s.filesz, "permission": s.permission.to_string()}))
            .collect();
        let goblin = match &goblin {
            Ok(view) => goblin_json(view),
            Err(e) => serde_json::json!({"error": e}),
        };
        let v = serde_json::json!({
            "manifest": manifest_json(&manifest),
            "key_id": hex(&env.key_id),
            "elf_sha256": hex(&env.elf_digest),
            "elf_digest_matches": digest_ok,
            "elf_size": env.elf.len(),
            "image_size": elf.layout().size,
            "entry": elf.entry(),
            "segments": segments,
            "relocations": elf.relocation_count(),
            "goblin": goblin,
            "crosscheck": verdict,
        });
        let text = serde_json::to_string_pretty(&v).map_err(|e| format!("cannot format JSON: {e}"))?;
        out.push_str(&text);
        out.push('\n');
        return Ok(out);
    }
    // Writing to a String cannot fail.
    let o = &mut out;
    let m = &manifest;
    let _ = writeln!(o, "domain      {} {}", m.name, m.version);
    let _ = writeln!(o, "key id      {}", hex(&env.key_id));
    let mismatch = if digest_ok { "" } else { "  (MISMATCH: the ELF was changed)" };
    let _ = writeln!(o, "ELF sha256  {}{mismatch}", hex(&env.elf_digest));
    for (what, list) in [("exports", &m.exports), ("imports", &m.imports)] {
        for i in list {
            let _ = writeln!(o, "{what:<11} {} {}", i.name, hex(&i.hash));
        }
    }
    for d in &m.devices {
        let _ = writeln!(o, "device      {d}");
    }
    let _ = writeln!(o, "limits      heap {} bytes, stack {} bytes", m.heap_limit, m.stack_size);
    let _ = writeln!(
        o,
        "quotas      shared heap {} bytes, {} threads, {} events",
        m.shared_heap_limit, m.max_threads, m.max_events
    );
    let _ = writeln!(o, "restart     {}", m.restart.name());
    let _ = writeln!(o, "build       toolchain {:?}, safe Rust checked: {}", m.toolchain, m.safe_rust_checked);
    let _ = writeln!(o, "rollback    minimum version {}, signed downgrade: {}", m.min_version, m.downgrade);
    let _ = writeln!(
        o,
        "image       {} bytes of ELF, {} bytes in memory, entry {:#x}",
        env.elf.len(),
        elf.layout().size,
        elf.entry()
    );
    for s in elf.segments() {
        let _ = writeln!(o, "segment     {:#010x} {:>8} bytes  {}", s.vaddr, s.memsz, s.permission);
    }
    let _ = writeln!(o, "relocations {} (R_AARCH64_RELATIVE)", elf.relocation_count());
    match &goblin {
        Ok(view) => {
            let _ = writeln!(o, "goblin      entry {:#x}, {} PT_LOAD segments", view.entry, view.segments.len());
            for s in &view.segments {
                let _ = writeln!(
                    o,
                    "  PT_LOAD   vaddr {:#010x} filesz {:>8} memsz {:>8}  {}",
                    s.vaddr,
                    s.filesz,
                    s.memsz,
                    flags_str(s.flags)
                );
            }
            let kinds: Vec<String> = view.relocation_kinds().iter().map(|(k, n)| format!("{n} {k}")).collect();
            let kinds = if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            };
            let _ = writeln!(o, "  relocs    {}{kinds}", view.relocations.len());
        }
        Err(e) => {
            let _ = writeln!(o, "goblin      cannot parse the ELF: {e}");
        }
    }
    let _ = writeln!(o, "cross-check {verdict}");
    Ok(out)
}

/// Runs one command; returns what it prints on standard output.
fn run(cmd: Command) -> Result<String, Failure> {
    let mut out = String::new();
    match cmd {
        Command::Keygen { out: prefix, force } => {
            let (private, public, id) = qvq_sign::keygen(&prefix, force)?;
            out = format!(
                "private key {} (keep secret; never commit it)\npublic key  {}\nkey id      {}\n",
                private.display(),
                public.display(),
                hex(&id)
            );
        }
        Command::Sign { key, manifest, elf, out: path } => {
            let key = read_signing_key(&key)?;
            let text = std::fs::read_to_string(&manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
            let m = ManifestToml::parse(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
            let elf_bytes = read(&elf)?;
            let env = sign(&m, &elf_bytes, &key).map_err(|e| format!("{}: refusing to sign: {e}", elf.display()))?;
            write(&path, &env)?;
            out = format!(
                "signed {} {} → {} ({} bytes), key id {}\n",
                m.name,
                m.version,
                path.display(),
                env.len(),
                hex(&qvq_sign::public_key_id(&key.verifying_key()))
            );
        }
        Command::Verify {
            keyring,
            revoked,
            policy,
            file,
        } => {
            let (ring, key_files, mut revocations) = read_keyring_dir(&keyring)?;
            if let Some(r) = revoked {
                revocations = read_revocations(&r)?;
            }
            let bytes = read(&file)?;
            match verify(&bytes, &ring, &revocations) {
                Ok(d) => {
                    out = format!(
                        "{}: verified: {} {}, key id {}\n",
                        file.display(),
                        d.manifest.name,
                        d.manifest.version,
                        hex(&d.key_id)
                    );
                    if let Some(keys) = policy {
                        let key_file = key_files.iter().find(|(_, id)| *id == d.key_id).map(|(p, _)| p.as_path());
                        let verdict = check_policy(&keys, key_file, &d.manifest).map_err(|e| format!("{}: rejected: {e}", file.display()))?;
                        out.push_str(&format!("{}: admitted by {verdict}\n", file.display()));
                    }
                }
                Err(e) => return Err(format!("{}: rejected: {e}", file.display())),
            }
        }
        Command::Inspect { json, file } => out = inspect(&file, json)?,
        Command::Statement { file, out: path } => {
            let bytes = read(&file)?;
            write(&path, &parse_envelope(&file, &bytes)?.statement())?;
        }
        Command::Signature { file, out: path } => {
            let bytes = read(&file)?;
            write(&path, &parse_envelope(&file, &bytes)?.signature)?;
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli.command) {
        Ok(text) => {
            // A reader that stopped reading (`| head`) is not an error of this command;
            // nothing is printed about it and the status stays that of the command.
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    let _ = writeln!(std::io::stderr(), "qvq-sign: cannot write to standard output: {e}");
                    ExitCode::from(1)
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "qvq-sign: {e}");
            ExitCode::from(1)
        }
    }
}
