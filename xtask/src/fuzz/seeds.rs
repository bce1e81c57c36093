//! `cargo xtask fuzz --seed`: the seed corpora in `fuzz/corpus/<target>/`, made from real
//! artifacts — the sample and hello domains built for the kernel's target, their
//! manifests as the build writes them, envelopes signed with the corpus key
//! (`fuzz/corpus-key.txt`, trusted only by the `verify` target), initrds packed from them,
//! and the host-link frames of a real push — plus hand-made edge cases. A seed named
//! `bad-*` must be refused by its parser, every other one accepted (`fuzz/tests/seeds.rs`
//! checks both on every `cargo xtask test`); `--seed` keeps the `crash-*` regression seeds.

use super::fuzz_dir;
use crate::board::Board;
use crate::domains;
use ed25519_dalek::{Signer, SigningKey};
use pushlink::{Begin, BeginAck, Kind, CHUNK, CRC_LEN, HEADER_LEN, MAX_PAYLOAD, VERSION, WINDOW};
use qvq_sign::loader::envelope::{self, MAX_MANIFEST_LEN};
use qvq_sign::loader::manifest::{InterfaceRef, Manifest, MAX_COMPATIBLE, MAX_INTERFACES, MAX_INTERFACE_NAME, MAX_NAME, MAX_TOOLCHAIN};
use qvq_sign::loader::manifest::{MAX_DEVICES, MAX_EVENTS, MAX_HEAP, MAX_SHARED_HEAP, MAX_STACK, MAX_THREADS, MIN_SHARED_HEAP, MIN_THREADS};

type Seeds = Vec<(String, Vec<u8>)>;

/// The corpus key, from `fuzz/corpus-key.txt` (its first line that is not a comment).
fn corpus_key() -> Result<SigningKey, String> {
    let path = fuzz_dir().join("corpus-key.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let hex = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
    let secret = qvq_sign::unhex32(hex).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// An envelope of `manifest` bytes and `elf` signed by `key` as they are (unlike
/// `qvq_sign::sign`, which refuses to sign what the kernel would refuse).
fn sign_raw(manifest: &[u8], elf: &[u8], key: &SigningKey) -> Vec<u8> {
    let digest = qvq_sign::loader::sha256(elf);
    let signature = key.sign(&envelope::statement(manifest, elf.len() as u32, &digest));
    envelope::assemble(manifest, elf, &envelope::key_id(&key.verifying_key().to_bytes()), &signature.to_bytes())
}

fn patched(bytes: &[u8], at: usize, with: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + with.len()].copy_from_slice(with);
    b
}

fn u64_at(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes")) as usize
}

/// Offsets of the program headers of type `p_type` in `elf`.
fn program_headers(elf: &[u8], p_type: u32) -> Vec<usize> {
    let phoff = u64_at(elf, 32);
    let phnum = u16::from_le_bytes([elf[56], elf[57]]) as usize;
    (0..phnum)
        .map(|i| phoff + 56 * i)
        .filter(|&ph| elf[ph..ph + 4] == p_type.to_le_bytes())
        .collect()
}

struct Domain {
    name: &'static str,
    elf: Vec<u8>,
    manifest: Manifest,
    envelope: Vec<u8>,
}

fn domains(key: &SigningKey) -> Result<Vec<Domain>, String> {
    // `sample` is a fixture (it uses `#[no_mangle]`), built without the domain checks;
    // `hello` is a checked domain.
    let names = ["sample", "hello"];
    let elves = [domains::build_fixture_elf("sample")?, domains::build_domain_elf("hello")?];
    let recipe = domains::recipe(Board::Virt)?;
    names
        .iter()
        .zip(elves)
        .map(|(&name, path)| {
            let elf = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let entry = recipe.iter().find(|e| e.name == name && e.version.is_none());
            let manifest = domains::manifest(name, entry, name != "sample")?;
            let envelope = qvq_sign::sign(&manifest, &elf, key)?;
            Ok(Domain { name, elf, manifest, envelope })
        })
        .collect()
}

fn envelope_seeds(d: &[Domain]) -> Seeds {
    let sample = &d[0].envelope;
    let zero_key = [0u8; 32];
    vec![
        ("sample.qvd".into(), sample.clone()),
        ("hello.qvd".into(), d[1].envelope.clone()),
        ("empty-parts.qvd".into(), envelope::assemble(&[], &[], &zero_key, &[0; 64])),
        ("bad-truncated.qvd".into(), sample[..sample.len() - 1].to_vec()),
        ("bad-trailing-byte.qvd".into(), [sample.as_slice(), &[0]].concat()),
        ("bad-manifest-length.qvd".into(), patched(sample, 12, &(MAX_MANIFEST_LEN + 1).to_le_bytes())),
        ("bad-format-version.qvd".into(), patched(sample, 8, &2u16.to_le_bytes())),
    ]
}

fn verify_seeds(d: &[Domain], key: &SigningKey) -> Result<Seeds, String> {
    let sample = &d[0];
    let manifest = sample.manifest.encode().map_err(|e| e.to_string())?;
    let elf_at = envelope::HEADER_LEN + manifest.len();
    let other_key = SigningKey::from_bytes(&[7; 32]);
    let mut seeds: Seeds = d.iter().map(|x| (format!("{}.qvd", x.name), x.envelope.clone())).collect();
    seeds.extend([
        ("bad-tampered-elf.qvd".into(), patched(&sample.envelope, elf_at + 300, &[sample.elf[300] ^ 1])),
        ("bad-unknown-key.qvd".into(), qvq_sign::sign(&sample.manifest, &sample.elf, &other_key)?),
        // Signed by the trusted key, refused for what they carry.
        (
            "bad-signed-wrong-machine.qvd".into(),
            sign_raw(&manifest, &patched(&sample.elf, 18, &62u16.to_le_bytes()), key),
        ),
        (
            "bad-signed-manifest-trailing-byte.qvd".into(),
            sign_raw(&[manifest.as_slice(), &[0]].concat(), &sample.elf, key),
        ),
    ]);
    Ok(seeds)
}

fn manifest_seeds(d: &[Domain]) -> Result<Seeds, String> {
    let encode = |m: &Manifest| m.encode().map_err(|e| format!("manifest of {}: {e}", m.name));
    let mut seeds = Seeds::new();
    for x in d {
        seeds.push((format!("{}.bin", x.name), encode(&x.manifest)?));
    }
    for name in ["console", "relay", "shell"] {
        let entry = domains::recipe(Board::Virt)?.into_iter().find(|e| e.name == name && e.version.is_none());
        seeds.push((format!("{name}.bin"), encode(&domains::manifest(name, entry.as_ref(), true)?)?));
    }
    // Every list full and every string and limit at its maximum.
    let mut largest = d[1].manifest.clone();
    let iface = |prefix: char, i: usize| InterfaceRef {
        name: format!("{prefix}{i:0>width$}", width = MAX_INTERFACE_NAME - 1),
        hash: [i as u8; 32],
    };
    largest.name = "z".repeat(MAX_NAME);
    largest.exports = (0..MAX_INTERFACES).map(|i| iface('E', i)).collect();
    largest.imports = (0..MAX_INTERFACES).map(|i| iface('I', i)).collect();
    largest.devices = (0..MAX_DEVICES).map(|i| format!("{i}{}", "~".repeat(MAX_COMPATIBLE - 1))).collect();
    largest.toolchain = " ".repeat(MAX_TOOLCHAIN);
    (largest.heap_limit, largest.stack_size, largest.shared_heap_limit) = (MAX_HEAP, MAX_STACK, MAX_SHARED_HEAP);
    (largest.max_threads, largest.max_events) = (MAX_THREADS, MAX_EVENTS);
    seeds.push(("largest.bin".into(), encode(&largest)?));
    // Every list empty and every limit at its minimum.
    let mut smallest = d[0].manifest.clone();
    smallest.name = "a".into();
    (smallest.exports, smallest.imports, smallest.devices) = (Vec::new(), Vec::new(), Vec::new());
    smallest.toolchain = String::new();
    (smallest.heap_limit, smallest.stack_size, smallest.shared_heap_limit) = (4096, 4096, MIN_SHARED_HEAP);
    (smallest.max_threads, smallest.max_events) = (MIN_THREADS, 0);
    seeds.push(("smallest.bin".into(), encode(&smallest)?));
    let hello = encode(&d[1].manifest)?;
    seeds.push(("bad-trailing-byte.bin".into(), [hello.as_slice(), &[0]].concat()));
    seeds.push(("bad-format-version-1.bin".into(), patched(&hello, 0, &[1])));
    // Two imports of one name: encoded as two names, then the second renamed.
    let mut twice = d[1].manifest.clone();
    twice.imports = vec![iface('I', 0), iface('I', 1)];
    let bytes = encode(&twice)?;
    let second = bytes
        .windows(MAX_INTERFACE_NAME)
        .rposition(|w| w == iface('I', 1).name.as_bytes())
        .ok_or("no second import")?;
    seeds.push(("bad-duplicate-import.bin".into(), patched(&bytes, second, iface('I', 0).name.as_bytes())));
    Ok(seeds)
}

fn elf_seeds(d: &[Domain]) -> Result<Seeds, String> {
    let sample = &d[0].elf;
    let first_load = *program_headers(sample, 1).first().ok_or("the sample ELF has no PT_LOAD")?;
    let dynamic = *program_headers(sample, 2).first().ok_or("the sample ELF has no PT_DYNAMIC")?;
    Ok(vec![
        ("sample.elf".into(), sample.clone()),
        ("hello.elf".into(), d[1].elf.clone()),
        ("bad-truncated-header.elf".into(), sample[..63].to_vec()),
        ("bad-writable-code.elf".into(), patched(sample, first_load + 4, &7u32.to_le_bytes())),
        (
            "bad-needs-library.elf".into(),
            patched(sample, u64_at(sample, dynamic + 8), &1u64.to_le_bytes()),
        ),
    ])
}

/// Sets the name of the entry whose header starts at `at` to `name` (same length),
/// keeping its header CRC right.
fn rename_entry(archive: &mut [u8], at: usize, name: &[u8]) {
    let start = at + initrd::ENTRY_HEADER_LEN;
    archive[start..start + name.len()].copy_from_slice(name);
    let crc = initrd::crc32(&archive[at + 4..start + name.len()]);
    archive[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

fn initrd_seeds(d: &[Domain]) -> Result<Seeds, String> {
    let pack = |entries: &[(&str, &[u8])]| initrd::pack(entries).map_err(|e| e.to_string());
    let one = pack(&[("sample.qvd", &d[0].envelope)])?;
    let long_name = "n".repeat(initrd::MAX_NAME_LEN);
    let mut duplicate = pack(&[("a", b"x"), ("b", b"x")])?;
    // The second entry's header follows the first entry's one data byte, aligned.
    let second = initrd::align_up(initrd::ARCHIVE_HEADER_LEN + initrd::ENTRY_HEADER_LEN + 1).and_then(|d| initrd::align_up(d + 1));
    rename_entry(&mut duplicate, second.ok_or("offset overflow")?, b"a");
    let mut bad_crc = one.clone();
    let last_data = bad_crc.iter().rposition(|&b| b != 0).ok_or("an empty archive")?;
    bad_crc[last_data] ^= 1;
    Ok(vec![
        ("sample.img".into(), one.clone()),
        (
            "two-domains.img".into(),
            pack(&[("sample.qvd", &d[0].envelope), ("hello.qvd", &d[1].envelope)])?,
        ),
        ("empty.img".into(), pack(&[])?),
        ("names.img".into(), pack(&[(&long_name, b""), ("ünïcode.qvd", b"1"), ("x", &[0xa5; 17])])?),
        ("bad-data-crc.img".into(), bad_crc),
        ("bad-duplicate-name.img".into(), duplicate),
        ("bad-trailing-bytes.img".into(), [one.as_slice(), &[0; 16]].concat()),
    ])
}

fn frame(kind: Kind, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = [0u8; HEADER_LEN + MAX_PAYLOAD + CRC_LEN];
    let n = pushlink::encode(kind, seq, payload, &mut out);
    out[..n].to_vec()
}

fn hostlink_seeds(d: &[Domain]) -> Seeds {
    // What `cargo xtask swap sample` sends (`swap::Link::push`), frame by frame.
    let envelope = &d[0].envelope;
    let mut begin = [0u8; MAX_PAYLOAD];
    let n = Begin {
        size: envelope.len() as u32,
        crc: pushlink::crc32(envelope),
        flags: 0,
        name: d[0].name,
    }
    .encode(&mut begin);
    let mut push = frame(Kind::Begin, 0, &begin[..n]);
    for (i, chunk) in envelope.chunks(CHUNK).enumerate() {
        push.extend(frame(Kind::Data, i as u16, chunk));
    }
    push.extend(frame(Kind::End, 0, &[]));
    // A push as the window allows it to arrive: chunks out of order, one twice, one lost and
    // resent, then one past the window (which ends the transfer).
    let chunks: Vec<&[u8]> = envelope.chunks(CHUNK).collect();
    let mut window = frame(Kind::Begin, 0, &begin[..n]);
    let order: Vec<usize> = [1, 0, 0, 3, 2, 5, 6, 4].into_iter().filter(|i| *i < chunks.len()).collect();
    for i in order {
        window.extend(frame(Kind::Data, i as u16, chunks[i]));
    }
    window.extend(frame(Kind::Data, 2 + WINDOW, &[0x5a; CHUNK]));
    window.extend(frame(Kind::End, 0, &[]));
    // What the kernel answers.
    let replies = [
        frame(Kind::Info, 0, b"0.1.0"),
        frame(
            Kind::Ack,
            0,
            &BeginAck {
                version: VERSION,
                window: WINDOW,
            }
            .encode(),
        ),
        frame(Kind::Ack, 3, &[]),
        frame(Kind::Nak, 4, b"chunk 4 is missing (chunk 5 came after it): resend"),
        frame(Kind::Result, 0, b"\x01swapped sample 0.1.0 -> 0.2.0"),
    ]
    .concat();
    // Noise, a damaged frame, a length past MAX_PAYLOAD, a kind nobody knows, then END.
    let mut damaged = frame(Kind::Data, 1, b"damaged");
    damaged[HEADER_LEN] ^= 0x20;
    let mut oversized = frame(Kind::Data, 2, b"x");
    oversized[6..8].copy_from_slice(&(MAX_PAYLOAD as u16 + 1).to_le_bytes());
    let mut unknown = frame(Kind::Query, 9, b"?");
    unknown[2] = 0x7f;
    let crc = pushlink::crc32(&unknown[2..HEADER_LEN + 1]);
    unknown[HEADER_LEN + 1..].copy_from_slice(&crc.to_le_bytes());
    let noisy = [b"QQxS noise Q".to_vec(), damaged, oversized, unknown, frame(Kind::End, 0, &[])].concat();
    vec![
        ("push-sample.bin".into(), push),
        ("push-window.bin".into(), window),
        ("query-hello.bin".into(), frame(Kind::Query, 0, b"hello")),
        ("kernel-replies.bin".into(), replies),
        ("noisy.bin".into(), noisy),
        ("bad-noise-only.bin".into(), b"QQQ SQ no frame here QS\x01".to_vec()),
    ]
}

/// The disk the `fat_volume` check mounts its input as the start of (its `FUZZ_DISK_BYTES`).
const FAT_DISK_BYTES: u64 = 4 << 20;

fn tool(cmd: &mut std::process::Command) -> Result<(), String> {
    let out = cmd
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e} (`cargo xtask setup` installs dosfstools and mtools)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// A FAT volume of `kib` KiB made by `mkfs.fat` with `args`, with `files` (path on the
/// volume, bytes; a path ending in `/` is a directory) copied in by mtools.
fn fat_image(work: &std::path::Path, args: &[&str], kib: u64, files: &[(&str, &[u8])]) -> Result<Vec<u8>, String> {
    let img = work.join("volume.img");
    let _ = std::fs::remove_file(&img);
    tool(
        std::process::Command::new("mkfs.fat")
            .args(args)
            .args(["-i", "51760000", "-C"])
            .arg(&img)
            .arg(kib.to_string()),
    )?;
    for (path, bytes) in files {
        if let Some(dir) = path.strip_suffix('/') {
            tool(std::process::Command::new("mmd").arg("-i").arg(&img).arg(format!("::{dir}")))?;
        } else {
            let src = work.join("file");
            std::fs::write(&src, bytes).map_err(|e| e.to_string())?;
            tool(std::process::Command::new("mcopy").arg("-i").arg(&img).arg(&src).arg(format!("::{path}")))?;
        }
    }
    std::fs::read(&img).map_err(|e| e.to_string())
}

/// `bytes` without its trailing zeros (the check reads zeros past its input).
fn trimmed(mut bytes: Vec<u8>) -> Vec<u8> {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    bytes.truncate(end);
    bytes
}

/// FAT16 volumes made by dosfstools and filled by mtools, for a disk of `FAT_DISK_BYTES`:
/// the whole disk, an empty one, one inside an MBR partition; and volumes the FS code must
/// refuse (FAT12, no boot signature, a partition past the disk's end).
fn fat_volume_seeds() -> Result<Seeds, String> {
    let work = std::env::temp_dir().join(format!("qvq-fat-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let made = (|| {
        let kib = FAT_DISK_BYTES / 1024;
        let files: &[(&str, &[u8])] = &[
            ("/README.TXT", b"a FAT16 seed volume for the fat_volume fuzz target\r\n"),
            ("/DOCS/", b""),
            ("/DOCS/NOTE.TXT", b"a note in a directory\r\n"),
            ("/a long file name.txt", b"its directory entry has a long name\r\n"),
            ("/BIG.BIN", &[0x5a; 5000]),
        ];
        let whole = fat_image(&work, &["-F", "16", "-s", "1"], kib, files)?;
        let empty = fat_image(&work, &["-F", "16", "-s", "1"], kib, &[])?;
        // An MBR with one FAT16 partition (type 0x0e) from sector 8 to the disk's end.
        const START: u64 = 8;
        let sectors = FAT_DISK_BYTES / 512 - START;
        let volume = fat_image(&work, &["-F", "16", "-s", "1", "-h", "8"], sectors / 2, &files[..2])?;
        let mbr = |len: u64| {
            let mut m = vec![0u8; (START * 512) as usize];
            m[446 + 4] = 0x0e;
            m[446 + 8..446 + 12].copy_from_slice(&(START as u32).to_le_bytes());
            m[446 + 12..446 + 16].copy_from_slice(&(len as u32).to_le_bytes());
            m[510] = 0x55;
            m[511] = 0xaa;
            m
        };
        let partitioned = [mbr(sectors), volume.clone()].concat();
        let past_the_end = [mbr(sectors + 1), volume].concat();
        let fat12 = fat_image(&work, &["-F", "12"], kib, &[])?;
        let mut unsigned = whole.clone();
        unsigned[510] = 0;
        Ok::<Seeds, String>(vec![
            ("fat16-files.img".into(), trimmed(whole)),
            ("fat16-empty.img".into(), trimmed(empty)),
            ("mbr-fat16.img".into(), trimmed(partitioned)),
            ("bad-fat12.img".into(), trimmed(fat12)),
            ("bad-no-boot-signature.img".into(), trimmed(unsigned)),
            ("bad-partition-past-the-disk.img".into(), trimmed(past_the_end)),
        ])
    })();
    let _ = std::fs::remove_dir_all(&work);
    made
}

/// Replaces the files of `fuzz/corpus/<target>/` with `seeds`, keeping the `crash-*`
/// regression seeds (inputs that once broke a property).
fn write(target: &str, seeds: &Seeds) -> Result<(), String> {
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("crash-") {
            std::fs::remove_file(entry.path()).map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
        }
    }
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
    }
    let total: usize = seeds.iter().map(|(_, b)| b.len()).sum();
    println!("fuzz/corpus/{target}/: {} seeds, {total} bytes", seeds.len());
    Ok(())
}

/// Writes every target's seed corpus.
pub fn write_all() -> Result<bool, String> {
    let key = corpus_key()?;
    let d = domains(&key)?;
    write("envelope", &envelope_seeds(&d))?;
    write("verify", &verify_seeds(&d, &key)?)?;
    write("manifest", &manifest_seeds(&d)?)?;
    write("elf", &elf_seeds(&d)?)?;
    write("elf_differential", &elf_seeds(&d)?)?;
    write("initrd", &initrd_seeds(&d)?)?;
    write("hostlink", &hostlink_seeds(&d))?;
    write("fat_volume", &fat_volume_seeds()?)?;
    println!("check them: cargo test --manifest-path fuzz/Cargo.toml --no-default-features");
    Ok(true)
}
