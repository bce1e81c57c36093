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

/// Runs `/usr/bin/openssl` (from Debian's `openssl` package; `openssl` on PATH elsewhere).
fn openssl(args: &[&str]) -> Output {
    let bin = if Path::new("/usr/bin/openssl").exists() {
        "/usr/bin/openssl"
    } else {
        "openssl"
    };
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed for the interoperability tests (apt-get install openssl): {e}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `openssl pkeyutl -verify -rawin`: does OpenSSL accept `sig` over `stmt` under `pubkey`?
fn openssl_verify(pubkey: &Path, stmt: &Path, sig: &Path) -> Output {
    openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        s(pubkey),
        "-rawin",
        "-in",
        s(stmt),
        "-sigfile",
        s(sig),
    ])
}

/// `qvq-sign statement` and `qvq-sign signature` of `qvd`, written next to it.
fn statement_and_signature(qvd: &Path) -> (PathBuf, PathBuf) {
    let (stmt, sig) = (qvd.with_extension("stmt"), qvd.with_extension("sig"));
    let o = qvq_sign(&["statement", s(qvd), "-o", s(&stmt)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = qvq_sign(&["signature", s(qvd), "-o", s(&sig)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&sig).unwrap().len(), 64);
    (stmt, sig)
}

/// A copy of `path` with its last byte flipped, at `path` + `.bad`.
fn with_last_byte_flipped(path: &Path) -> PathBuf {
    let mut bytes = std::fs::read(path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    let bad = path.with_extension("bad");
    std::fs::write(&bad, bytes).unwrap();
    bad
}

#[test]
fn openssl_verifies_a_qvq_signature() {
    let sd = signed_sample();
    let (stmt, sig) = statement_and_signature(&sd.qvd);
    let pubkey = sd.dir.path().join("keys/dev.pub.pem");
    let o = openssl_verify(&pubkey, &stmt, &sig);
    assert!(o.status.success() && text(&o).contains("Signature Verified Successfully"), "{}", text(&o));
    // And OpenSSL rejects a changed statement, so the check above means something.
    assert!(!openssl_verify(&pubkey, &with_last_byte_flipped(&stmt), &sig).status.success());
}

#[test]
fn keygen_writes_exactly_the_pkcs8_v1_form_openssl_writes() {
    let dir = tempfile::tempdir().unwrap();
    let o = qvq_sign(&["keygen", "--out", s(&dir.path().join("q"))]);
    assert!(o.status.success(), "{}", text(&o));
    let (key, pubkey) = (dir.path().join("q.key.pem"), dir.path().join("q.pub.pem"));
    // OpenSSL reads the private key, and writing it back out changes no byte: the same
    // PEM, the same DER (PKCS#8 v1, no public key inside).
    let o = openssl(&["pkey", "-in", s(&key)]);
    assert!(o.status.success(), "OpenSSL refuses a qvq-sign key: {}", text(&o));
    assert_eq!(o.stdout, std::fs::read(&key).unwrap());
    // Its public key is the one qvq-sign wrote, byte for byte.
    let o = openssl(&["pkey", "-in", s(&key), "-pubout"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(o.stdout, std::fs::read(&pubkey).unwrap());
    // And the DER has the shape of an `openssl genpkey` key: 48 bytes, version 0.
    let der = |pem: &Path| openssl(&["pkey", "-in", s(pem), "-outform", "DER"]).stdout;
    let ours = der(&key);
    let theirs_pem = dir.path().join("o.key.pem");
    assert!(openssl(&["genpkey", "-algorithm", "ed25519", "-out", s(&theirs_pem)]).status.success());
    let theirs = der(&theirs_pem);
    assert_eq!((ours.len(), theirs.len()), (48, 48));
    assert_eq!(
        ours[..16],
        theirs[..16],
        "same header: SEQUENCE, INTEGER 0 (v1), AlgorithmIdentifier Ed25519, OCTET STRING"
    );
}

#[test]
fn openssl_signs_with_a_qvq_key_and_qvq_sign_verifies() {
    let sd = signed_sample();
    let (stmt, qvq_sig) = statement_and_signature(&sd.qvd);
    let (key, pubkey) = (sd.dir.path().join("keys/dev.key.pem"), sd.dir.path().join("keys/dev.pub.pem"));
    let sig = sd.dir.path().join("openssl.sig");
    let o = openssl(&["pkeyutl", "-sign", "-rawin", "-inkey", s(&key), "-in", s(&stmt), "-out", s(&sig)]);
    assert!(o.status.success(), "OpenSSL cannot sign with a qvq-sign key: {}", text(&o));
    let sig = std::fs::read(&sig).unwrap();
    // Ed25519 is deterministic: OpenSSL's signature is the one in the envelope.
    assert_eq!(sig, std::fs::read(&qvq_sig).unwrap());
    // It verifies with the qvq-sign public key (through the library's reader) ...
    let public = qvq_sign::read_public_key(&pubkey).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
    let statement = std::fs::read(&stmt).unwrap();
    assert!(public.verify_strict(&statement, &sig).is_ok());
    // ... over that statement only.
    assert!(public.verify_strict(&std::fs::read(with_last_byte_flipped(&stmt)).unwrap(), &sig).is_err());
    // And an envelope carrying OpenSSL's signature passes `qvq-sign verify`.
    let o = qvq_sign(&["verify", "--keyring", s(&sd.dir.path().join("keys")), s(&sd.qvd)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn an_openssl_key_signs_with_qvq_sign() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("o.key.pem");
    let pubkey = dir.path().join("ring/o.pub.pem");
    std::fs::create_dir_all(dir.path().join("ring")).unwrap();
    assert!(openssl(&["genpkey", "-algorithm", "ed25519", "-out", s(&key)]).status.success());
    assert!(openssl(&["pkey", "-in", s(&key), "-pubout", "-out", s(&pubkey)]).status.success());
    let elf = dir.path().join("sample.elf");
    std::fs::write(&elf, sample_elf()).unwrap();
    let qvd = dir.path().join("o.qvd");
    let o = sign(&key, &manifest_toml(), &elf, &qvd);
    assert!(o.status.success(), "{}", text(&o));
    // qvq-sign verifies it with the OpenSSL-made public key ...
    let o = qvq_sign(&["verify", "--keyring", s(&dir.path().join("ring")), s(&qvd)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // ... and so does OpenSSL, over what `qvq-sign statement` and `signature` write.
    let (stmt, sig) = statement_and_signature(&qvd);
    let o = openssl_verify(&pubkey, &stmt, &sig);
    assert!(o.status.success() && text(&o).contains("Signature Verified Successfully"), "{}", text(&o));
    assert!(!openssl_verify(&pubkey, &with_last_byte_flipped(&stmt), &sig).status.success());
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

/// Runs qvq-sign with standard output a pipe whose reading end is already closed, so its
/// first write to standard output fails with EPIPE (as after `| head` has exited).
fn qvq_sign_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_qvq-sign"))
        .args(args)
        .stdout(writer)
        .output()
        .expect("run qvq-sign")
}

#[test]
fn a_closed_output_pipe_is_not_an_error() {
    let sd = signed_sample();
    let keys = sd.dir.path().join("keys");
    let qvd = s(&sd.qvd);
    let elf = sd.dir.path().join("sample.elf");
    let again = sd.dir.path().join("again.qvd");
    let (other, key, manifest) = (sd.dir.path().join("other"), keys.join("dev.key.pem"), manifest_toml());
    let cases: Vec<Vec<&str>> = vec![
        vec!["inspect", "--json", qvd],
        vec!["inspect", qvd],
        vec!["verify", "--keyring", s(&keys), qvd],
        vec!["keygen", "--out", s(&other)],
        vec!["sign", "--key", s(&key), "--manifest", s(&manifest), s(&elf), "-o", s(&again)],
        vec!["--help"],
        vec!["--version"],
    ];
    for args in &cases {
        let o = qvq_sign_into_closed_pipe(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stderr), "", "{args:?} printed on standard error");
    }
    // The commands did their work all the same.
    assert!(again.exists() && sd.dir.path().join("other.key.pem").exists());
    // A refusal keeps its status and its message (on standard error).
    let o = qvq_sign_into_closed_pipe(&["verify", "--keyring", s(sd.dir.path()), qvd]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("rejected: unknown key") && !text(&o).contains("panicked"), "{}", text(&o));
}

#[test]
fn inspect_shows_goblins_view_and_the_verdict() {
    let sd = signed_sample();
    let o = qvq_sign(&["inspect", "--json", s(&sd.qvd)]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["crosscheck"], "agree");
    let g = &v["goblin"];
    assert_eq!(g["entry"], v["entry"]);
    assert_eq!(g["relocations"], v["relocations"]);
    assert_eq!(g["relocation_kinds"]["R_AARCH64_RELATIVE"], v["relocations"]);
    let (ours, theirs) = (v["segments"].as_array().unwrap(), g["segments"].as_array().unwrap());
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(theirs) {
        assert_eq!((&a["vaddr"], &a["filesz"], &a["memsz"]), (&b["vaddr"], &b["filesz"], &b["memsz"]));
    }
    assert!(theirs.iter().any(|s| s["flags"] == "R-X"), "{g}");
    let o = qvq_sign(&["inspect", s(&sd.qvd)]);
    let t = text(&o);
    assert!(
        t.contains("goblin      entry 0x") && t.contains(" R_AARCH64_RELATIVE)") && t.contains("cross-check agree"),
        "{t}"
    );
}

#[test]
fn sign_refuses_what_goblin_cannot_read_or_reads_differently() {
    let sd = signed_sample();
    let key = sd.dir.path().join("keys/dev.key.pem");
    let out = sd.dir.path().join("x.qvd");
    let refusal = |elf: &[u8]| {
        let path = sd.dir.path().join("crafted.elf");
        std::fs::write(&path, elf).unwrap();
        let o = sign(&key, &manifest_toml(), &path, &out);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(!out.exists());
        text(&o)
    };
    // Section headers past the end of the file: the loader never reads them, goblin does.
    let mut elf = sample_elf();
    elf[40..48].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let t = refusal(&elf);
    assert!(t.contains("refusing to sign: the loader accepts this ELF but goblin cannot parse it ("), "{t}");
    // PT_GNU_STACK, the last program header, turned into a second PT_DYNAMIC: goblin reads
    // the first, the loader would have read the last; it now refuses.
    let mut elf = sample_elf();
    let (phoff, phnum) = (
        u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize,
        u16::from_le_bytes([elf[56], elf[57]]) as usize,
    );
    let at = phoff + (phnum - 1) * 56;
    assert_eq!(
        elf[at..at + 4],
        0x6474_e551u32.to_le_bytes(),
        "the sample's last program header is PT_GNU_STACK"
    );
    elf[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
    let t = refusal(&elf);
    assert!(
        t.contains("refusing to sign: the kernel would reject this ELF: ELF: more than one PT_DYNAMIC"),
        "{t}"
    );
}

#[test]
fn verify_with_policy_applies_the_kernels_rules() {
    let signed = signed_sample(); // `sample` 0.1.0, signed by keys/dev.key.pem
    let keys = signed.dir.path().join("keys");
    let verify = || qvq_sign(&["verify", "--keyring", s(&keys), "--policy", s(&keys), s(&signed.qvd)]);
    let o = verify();
    assert!(!o.status.success() && text(&o).contains("its key has no policy"), "{}", text(&o));
    std::fs::create_dir_all(keys.join("policy")).unwrap();
    std::fs::write(keys.join("policy/dev.toml"), "names = [\"hello\"]\n").unwrap();
    let o = verify();
    assert!(
        text(&o).contains("rejected: its key's policy does not allow the name \"sample\""),
        "{}",
        text(&o)
    );
    std::fs::write(keys.join("policy/dev.toml"), "names = [\"sam*\"]\nexports = [\"*\"]\n").unwrap();
    let o = verify(); // `sample` is not a checked domain (it uses #[no_mangle])
    assert!(
        text(&o).contains("rejected: its manifest says the build did not check it as safe Rust"),
        "{}",
        text(&o)
    );
    std::fs::write(keys.join("policy/dev.toml"), "names = [\"sam*\"]\nexports = [\"*\"]\nunchecked = true\n").unwrap();
    let o = verify();
    assert!(o.status.success() && text(&o).contains("admitted by"), "{}", text(&o));
    std::fs::write(keys.join("floors.toml"), "[floors]\nsample = \"0.2.0\"\n").unwrap();
    let o = verify();
    assert!(text(&o).contains("rejected: version 0.1.0 is below the rollback floor 0.2.0"), "{}", text(&o));
}
