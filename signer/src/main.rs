//! `qvq-sign`: make keys, sign domain ELFs into envelopes, verify and inspect envelopes.
//! Exit status: 0 success, 1 rejected (or an I/O problem), 2 usage error.

use clap::{Parser, Subcommand};
use qvq_sign::loader::envelope::Envelope;
use qvq_sign::loader::{verify, ElfImage, Manifest};
use qvq_sign::{hex, read_keyring_dir, read_revocations, read_signing_key, sign, ManifestToml};
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
    /// Make an Ed25519 key pair: OUT.key.pem (PKCS#8, mode 0600) and OUT.pub.pem (SPKI).
    Keygen {
        /// Path prefix, e.g. keys/dev/dev → keys/dev/dev.key.pem and keys/dev/dev.pub.pem.
        #[arg(long)]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Validate an ELF as the kernel would and sign it with a manifest into an envelope.
    Sign {
        /// Private key (PKCS#8 PEM; `openssl genpkey -algorithm ed25519` makes one too).
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
        #[arg(long)]
        keyring: PathBuf,
        /// A revocation list other than KEYRING/revoked.toml.
        #[arg(long)]
        revoked: Option<PathBuf>,
        file: PathBuf,
    },
    /// Show an envelope's manifest, key id, digests, segments and relocations.
    Inspect {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        file: PathBuf,
    },
    /// Write the exact bytes the signature covers (for `openssl pkeyutl -verify -rawin`).
    Statement {
        file: PathBuf,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Write the raw 64-byte Ed25519 signature.
    Signature {
        file: PathBuf,
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

fn inspect(path: &Path, json: bool) -> Result<(), Failure> {
    let bytes = read(path)?;
    let env = parse_envelope(path, &bytes)?;
    let manifest = Manifest::decode(env.manifest).map_err(|e| format!("{}: rejected: invalid manifest: {e}", path.display()))?;
    let elf = ElfImage::parse(env.elf).map_err(|e| format!("{}: rejected: invalid ELF: {e}", path.display()))?;
    let digest_ok = qvq_sign::loader::sha256(env.elf) == env.elf_digest;
    let segments: Vec<_> = elf
        .segments()
        .iter()
        .map(|s| serde_json::json!({"vaddr": s.vaddr, "memsz": s.memsz, "filesz": s.filesz, "permission": s.permission.to_string()}))
        .collect();
    if json {
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
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
    } else {
        let m = &manifest;
        println!("domain      {} {}", m.name, m.version);
        println!("key id      {}", hex(&env.key_id));
        println!(
            "ELF sha256  {}{}",
            hex(&env.elf_digest),
            if digest_ok { "" } else { "  (MISMATCH: the ELF was changed)" }
        );
        for (what, list) in [("exports", &m.exports), ("imports", &m.imports)] {
            for i in list {
                println!("{what:<11} {} {}", i.name, hex(&i.hash));
            }
        }
        for d in &m.devices {
            println!("device      {d}");
        }
        println!("limits      heap {} bytes, stack {} bytes", m.heap_limit, m.stack_size);
        println!(
            "quotas      shared heap {} bytes, {} threads, {} events",
            m.shared_heap_limit, m.max_threads, m.max_events
        );
        println!("restart     {}", m.restart.name());
        println!("build       toolchain {:?}, safe Rust checked: {}", m.toolchain, m.safe_rust_checked);
        println!("rollback    minimum version {}, signed downgrade: {}", m.min_version, m.downgrade);
        println!(
            "image       {} bytes of ELF, {} bytes in memory, entry {:#x}",
            env.elf.len(),
            elf.layout().size,
            elf.entry()
        );
        for s in elf.segments() {
            println!("segment     {:#010x} {:>8} bytes  {}", s.vaddr, s.memsz, s.permission);
        }
        println!("relocations {} (R_AARCH64_RELATIVE)", elf.relocation_count());
    }
    Ok(())
}

fn run(cmd: Command) -> Result<(), Failure> {
    match cmd {
        Command::Keygen { out, force } => {
            let (private, public, id) = qvq_sign::keygen(&out, force)?;
            println!("private key {} (keep secret; never commit it)", private.display());
            println!("public key  {}", public.display());
            println!("key id      {}", hex(&id));
        }
        Command::Sign { key, manifest, elf, out } => {
            let key = read_signing_key(&key)?;
            let text = std::fs::read_to_string(&manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
            let m = ManifestToml::parse(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
            let elf_bytes = read(&elf)?;
            let env = sign(&m, &elf_bytes, &key).map_err(|e| format!("{}: refusing to sign: {e}", elf.display()))?;
            write(&out, &env)?;
            println!(
                "signed {} {} → {} ({} bytes), key id {}",
                m.name,
                m.version,
                out.display(),
                env.len(),
                hex(&qvq_sign::public_key_id(&key.verifying_key()))
            );
        }
        Command::Verify { keyring, revoked, file } => {
            let (ring, _, mut revocations) = read_keyring_dir(&keyring)?;
            if let Some(r) = revoked {
                revocations = read_revocations(&r)?;
            }
            let bytes = read(&file)?;
            match verify(&bytes, &ring, &revocations) {
                Ok(d) => println!(
                    "{}: verified: {} {}, key id {}",
                    file.display(),
                    d.manifest.name,
                    d.manifest.version,
                    hex(&d.key_id)
                ),
                Err(e) => return Err(format!("{}: rejected: {e}", file.display())),
            }
        }
        Command::Inspect { json, file } => inspect(&file, json)?,
        Command::Statement { file, out } => {
            let bytes = read(&file)?;
            write(&out, &parse_envelope(&file, &bytes)?.statement())?;
        }
        Command::Signature { file, out } => {
            let bytes = read(&file)?;
            write(&out, &parse_envelope(&file, &bytes)?.signature)?;
        }
    }
    Ok(())
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qvq-sign: {e}");
            ExitCode::from(1)
        }
    }
}
