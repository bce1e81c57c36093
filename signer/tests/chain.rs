//! The signed-domain chain end to end on a real domain ELF built for
//! aarch64-unknown-none-softfloat (`domains/sample`). `cargo xtask test` builds it and
//! passes its path in `QVQ_SAMPLE_DOMAIN_ELF`.

use qvq_sign::loader::{verify, LoadError, Permission};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sample_elf() -> Vec<u8> {
    let path = std::env::var("QVQ_SAMPLE_DOMAIN_ELF")
        .expect("QVQ_SAMPLE_DOMAIN_ELF is not set: run these tests with `cargo xtask test`, which builds domains/sample first");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn manifest_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../domains/sample/domain.toml")
}

fn qvq_sign(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qvq-sign")).args(args).output().expect("run qvq-sign")
}

/// `qvq-sign sign --key KEY --manifest MANIFEST ELF -o OUT`.
fn sign(key: &Path, manifest: &Path, elf: &Path, out: &Path) -> Output {
    qvq_sign(&[
        "sign",
        "--key",
        key.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        elf.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

struct Signed {
    dir: tempfile::TempDir,
    qvd: PathBuf,
}

/// keygen + sign through the CLI, in a fresh directory.
fn signed_sample() -> Signed {
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("sample.elf");
    std::fs::write(&elf, sample_elf()).unwrap();
    let keys = dir.path().join("keys");
    let o = qvq_sign(&["keygen", "--out", keys.join("dev").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let qvd = dir.path().join("sample.qvd");
    let o = sign(&keys.join("dev.key.pem"), &manifest_toml(), &elf, &qvd);
    assert!(o.status.success(), "{}", text(&o));
    Signed { dir, qvd }
}

#[test]
fn keygen_sign_verify_load_round_trip() {
    let s = signed_sample();
    let keys = s.dir.path().join("keys");
    let o = qvq_sign(&["verify", "--keyring", keys.to_str().unwrap(), s.qvd.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("verified: sample 0.1.0"));

    // The same through the library, then load it as the kernel would.
    let (ring, ids, revoked) = qvq_sign::read_keyring_dir(&keys).unwrap();
    assert_eq!(ids.len(), 1);
    let bytes = std::fs::read(&s.qvd).unwrap();
    let d = verify(&bytes, &ring, &revoked).unwrap();
    assert_eq!(d.manifest.name, "sample");
    assert!(d.elf.relocation_count() > 0, "the sample is meant to need relocations");
    let size = d.elf.layout().size as usize;
    let mut mem = vec![0xeeu8; size];
    let base = 0x2000_0000u64;
    let segs = d.elf.load_into(&mut mem, base).unwrap();
    assert!(segs.iter().any(|s| s.permission == Permission::RX));
    assert!(segs.iter().all(|s| s.offset % 4096 == 0));
    // Every relocated word now points into the loaded image.
    let elf = sample_elf();
    let img = qvq_sign::loader::ElfImage::parse(&elf).unwrap();
    assert_eq!(img.relocation_count(), d.elf.relocation_count());
    let mut pointers = 0;
    for at in (0..size).step_by(8) {
        let v = u64::from_le_bytes(mem[at..at + 8].try_into().unwrap());
        if v >= base && v < base + size as u64 {
            pointers += 1;
        }
    }
    assert!(
        pointers as u64 >= d.elf.relocation_count(),
        "{pointers} pointers into the image after relocation"
    );
}

#[test]
fn keygen_writes_private_key_0600_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k");
    assert!(qvq_sign(&["keygen", "--out", prefix.to_str().unwrap()]).status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("k.key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(dir.path().join("k.key.pem")).unwrap();
    let o = qvq_sign(&["keygen", "--out", prefix.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("exists; pass --force"));
    assert_eq!(std::fs::read(dir.path().join("k.key.pem")).unwrap(), before);
    assert!(qvq_sign(&["keygen", "--force", "--out", prefix.to_str().unwrap()]).status.success());
    assert_ne!(std::fs::read(dir.path().join("k.key.pem")).unwrap(), before);
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let s = signed_sample();
    let (ring, _, revoked) = qvq_sign::read_keyring_dir(&s.dir.path().join("keys")).unwrap();
    let good = std::fs::read(&s.qvd).unwrap();
    assert!(verify(&good, &ring, &revoked).is_ok());
    let mut tried = 0usize;
    let mut flipped = good.clone();
    for byte in 0..good.len() {
        for bit in 0..8 {
            flipped[byte] ^= 1 << bit;
            assert!(verify(&flipped, &ring, &revoked).is_err(), "flip of bit {bit} of byte {byte} was accepted");
            flipped[byte] ^= 1 << bit;
            tried += 1;
        }
    }
    assert_eq!(tried, good.len() * 8);
    println!(
        "every_single_bit_flip_is_rejected: {tried} single-bit flips of a {}-byte envelope, all rejected",
        good.len()
    );
}

fn have_openssl() -> bool {
    Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn openssl_verifies_a_qvq_signature() {
    assert!(have_openssl(), "openssl is needed for the cross-check");
    let s = signed_sample();
    let (stmt, sig) = (s.dir.path().join("stmt.bin"), s.dir.path().join("sig.bin"));
    assert!(qvq_sign(&["statement", s.qvd.to_str().unwrap(), "-o", stmt.to_str().unwrap()]).status.success());
    assert!(qvq_sign(&["signature", s.qvd.to_str().unwrap(), "-o", sig.to_str().unwrap()]).status.success());
    let pubkey = s.dir.path().join("keys/dev.pub.pem");
    let run = |stmt: &Path| {
        Command::new("openssl")
            .args([
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                pubkey.to_str().unwrap(),
                "-rawin",
                "-in",
                stmt.to_str().unwrap(),
                "-sigfile",
                sig.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let o = run(&stmt);
    assert!(o.status.success() && text(&o).contains("Signature Verified Successfully"), "{}", text(&o));
    // And OpenSSL rejects a changed statement, so the check above means something.
    let mut bad = std::fs::read(&stmt).unwrap();
    *bad.last_mut().unwrap() ^= 1;
    let bad_path = s.dir.path().join("bad.bin");
    std::fs::write(&bad_path, bad).unwrap();
    assert!(!run(&bad_path).status.success());
}

#[test]
fn an_openssl_key_signs_with_qvq_sign() {
    assert!(have_openssl(), "openssl is needed for the cross-check");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("o.key.pem");
    let pubkey = dir.path().join("ring/o.pub.pem");
    std::fs::create_dir_all(dir.path().join("ring")).unwrap();
    assert!(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", key.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("openssl")
        .args(["pkey", "-in", key.to_str().unwrap(), "-pubout", "-out", pubkey.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let elf = dir.path().join("sample.elf");
    std::fs::write(&elf, sample_elf()).unwrap();
    let qvd = dir.path().join("o.qvd");
    let o = sign(&key, &manifest_toml(), &elf, &qvd);
    assert!(o.status.success(), "{}", text(&o));
    let o = qvq_sign(&["verify", "--keyring", dir.path().join("ring").to_str().unwrap(), qvd.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn sign_refuses_what_the_kernel_would_reject() {
    let s = signed_sample();
    let key = s.dir.path().join("keys/dev.key.pem");
    let mut elf = sample_elf();
    elf[16] = 2; // ET_EXEC
    let bad = s.dir.path().join("exec.elf");
    std::fs::write(&bad, &elf).unwrap();
    let out = s.dir.path().join("x.qvd");
    let o = sign(&key, &manifest_toml(), &bad, &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("refusing to sign: the kernel would reject this ELF: ELF: type 2 is not ET_DYN"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
    // A manifest that breaks a rule is refused too, naming the rule.
    let m = s.dir.path().join("bad.toml");
    std::fs::write(&m, "name = \"Bad Name\"\nversion = \"1.0.0\"\nheap_limit = 4096\nstack_size = 4096\n").unwrap();
    let o = sign(&key, &m, &s.dir.path().join("sample.elf"), &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("domain name must be"), "{}", text(&o));
}

#[test]
fn malformed_envelopes_get_their_own_reasons_from_verify() {
    let s = signed_sample();
    let keys = s.dir.path().join("keys");
    let good = std::fs::read(&s.qvd).unwrap();
    let manifest_len = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad magic", {
            let mut b = good.clone();
            b[0] = 0;
            b
        }),
        ("unsupported envelope format version 7", {
            let mut b = good.clone();
            b[8] = 7;
            b
        }),
        ("truncated envelope", good[..good.len() - 10].to_vec()),
        ("bytes after the signature", {
            let mut b = good.clone();
            b.extend_from_slice(b"xx");
            b
        }),
        ("length overflow: manifest length", {
            let mut b = good.clone();
            b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
            b
        }),
        ("unknown key", {
            let mut b = good.clone();
            b[20] ^= 1;
            b
        }),
        ("digest mismatch", {
            let mut b = good.clone();
            let at = 84 + manifest_len + 100;
            b[at] ^= 1;
            b
        }),
        ("bad signature", {
            let mut b = good.clone();
            b[84] ^= 1;
            b
        }),
    ];
    for (reason, bytes) in cases {
        let p = s.dir.path().join("case.qvd");
        std::fs::write(&p, bytes).unwrap();
        let o = qvq_sign(&["verify", "--keyring", keys.to_str().unwrap(), p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{reason}: {}", text(&o));
        assert!(text(&o).contains(reason), "expected {reason:?} in {}", text(&o));
    }
    // Revocation, by key id and by digest, through revoked.toml.
    let bytes = std::fs::read(&s.qvd).unwrap();
    let env = qvq_sign::loader::envelope::Envelope::parse(&bytes).unwrap();
    for (field, id, reason) in [("keys", env.key_id, "revoked key"), ("digests", env.elf_digest, "revoked domain digest")] {
        std::fs::write(keys.join("revoked.toml"), format!("{field} = [\"{}\"]\n", qvq_sign::hex(&id))).unwrap();
        let o = qvq_sign(&["verify", "--keyring", keys.to_str().unwrap(), s.qvd.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o).contains(reason), "{}", text(&o));
    }
    let (ring, _, rev) = qvq_sign::read_keyring_dir(&keys).unwrap();
    assert!(matches!(verify(&bytes, &ring, &rev), Err(LoadError::RevokedDigest(_))));
}

#[test]
fn usage_errors_exit_2_and_help_works() {
    assert_eq!(qvq_sign(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(qvq_sign(&["sign"]).status.code(), Some(2));
    let o = qvq_sign(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    for cmd in ["keygen", "sign", "verify", "inspect", "statement", "signature"] {
        assert!(text(&o).contains(cmd));
        assert_eq!(qvq_sign(&[cmd, "--help"]).status.code(), Some(0));
    }
}

#[test]
fn inspect_json_reports_manifest_segments_and_relocations() {
    let s = signed_sample();
    let o = qvq_sign(&["inspect", "--json", s.qvd.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["manifest"]["name"], "sample");
    assert_eq!(v["elf_digest_matches"], true);
    assert!(v["relocations"].as_u64().unwrap() > 0);
    let perms: Vec<_> = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["permission"].as_str().unwrap().to_string())
        .collect();
    assert!(perms.contains(&"RX".to_string()) && perms.iter().all(|p| p != "RWX"));
}

#[test]
fn quotas_default_when_domain_toml_omits_them() {
    let s = signed_sample();
    let o = qvq_sign(&["inspect", "--json", s.qvd.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["manifest"]["shared_heap_limit"], 262144);
    assert_eq!(v["manifest"]["max_threads"], 16);
    assert_eq!(v["manifest"]["max_events"], 64);
    let o = qvq_sign(&["inspect", s.qvd.to_str().unwrap()]);
    assert!(text(&o).contains("quotas      shared heap 262144 bytes, 16 threads, 64 events"), "{}", text(&o));
}

#[test]
fn quotas_from_domain_toml_are_signed_and_bounds_refused() {
    let s = signed_sample();
    let key = s.dir.path().join("keys/dev.key.pem");
    let elf = s.dir.path().join("sample.elf");
    // Top-level keys go first: the sample's TOML ends in an [[exports]] table.
    let base = std::fs::read_to_string(manifest_toml()).unwrap();
    let m = s.dir.path().join("quotas.toml");
    let out = s.dir.path().join("q.qvd");
    std::fs::write(&m, format!("shared_heap_limit = 4194304\nmax_threads = 1\nmax_events = 0\n{base}")).unwrap();
    let o = sign(&key, &m, &elf, &out);
    assert!(o.status.success(), "{}", text(&o));
    let o = qvq_sign(&["inspect", "--json", out.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&v["manifest"]["shared_heap_limit"], &v["manifest"]["max_threads"], &v["manifest"]["max_events"]),
        (&4194304.into(), &1.into(), &0.into())
    );
    std::fs::remove_file(&out).unwrap();
    for (key_line, reason) in [
        ("shared_heap_limit = 4095", "shared-heap limit 4095 is below 4096 or above 4194304 bytes"),
        ("shared_heap_limit = 4194305", "shared-heap limit 4194305"),
        ("max_threads = 0", "thread limit 0 is below 1 or above 64"),
        ("max_threads = 65", "thread limit 65"),
        ("max_events = 1025", "event limit 1025 is above 1024"),
    ] {
        std::fs::write(&m, format!("{key_line}\n{base}")).unwrap();
        let o = sign(&key, &m, &elf, &out);
        assert_eq!(o.status.code(), Some(1), "{key_line}");
        assert!(text(&o).contains(reason), "{key_line}: {}", text(&o));
        assert!(!out.exists());
    }
}
