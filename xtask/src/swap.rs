//! `cargo xtask swap NAME`: rebuild and sign a domain (or take an envelope signed
//! elsewhere, `--envelope`), then push it over the host link to the QEMU that `cargo xtask
//! run` started, which swaps it in (pushlink/PROTOCOL.md). It stops before building when
//! the link reports no running NAME. The version it signs comes from this machine's own
//! state, never from what the link reports; whether a board's kernel has the receiver at
//! all is the board recipe's `host_link`.

use crate::board::Board;
use pushlink::{Begin, BeginAck, Decoder, Kind, Received, CHUNK, CRC_LEN, FLAG_FRESH, HEADER_LEN, MAX_NAME, MAX_PAYLOAD, VERSION, WINDOW};
use qvq_sign::loader::manifest::{Manifest, Version};
use serde::Deserialize;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to wait for an acknowledgement, and for the swap's result.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
const RESULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Resends of one chunk the kernel reported damaged or missing.
const RESENDS: u32 = 3;
/// With the window full and no answer for this long, the first unacknowledged chunk is
/// sent again (its ACK, or the chunk itself, was lost). Such resends are not counted in
/// `RESENDS`; a transfer with no progress for `ACK_TIMEOUT` is given up.
const RETRANSMIT: Duration = Duration::from_millis(500);

/// Faults a test injects into a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Damage chunk `n` once on the wire (its CRC no longer matches); the push resends it.
    CorruptChunkOnce(u16),
    /// Stop after sending `n` chunks, as if the cable were pulled.
    StopAfterChunks(u16),
    /// Leave chunk `n` out the first time (lost on the way); the kernel asks for it.
    DropChunkOnce(u16),
    /// Send chunk `n` twice.
    DuplicateChunk(u16),
    /// Send chunk `n + 1` before chunk `n`.
    SwapChunks(u16),
}

/// The host end of the link.
pub struct Link {
    stream: UnixStream,
    decoder: Decoder,
    /// What the kernel NAKed along the way (reported to the user).
    pub naks: Vec<String>,
    /// The last push's transfer: envelope bytes and the time from BEGIN to the last chunk
    /// acknowledged (the swap's own time not included).
    pub transfer: Option<Throughput>,
}

/// How fast a push moved its envelope.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    pub bytes: usize,
    pub time: Duration,
}

impl Throughput {
    pub fn kib_per_s(&self) -> f64 {
        self.bytes as f64 / 1024.0 / self.time.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Throughput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes in {:.3} s: {:.1} KiB/s", self.bytes, self.time.as_secs_f64(), self.kib_per_s())
    }
}

pub enum Reply {
    Frame(Kind, u16, Vec<u8>),
    Damaged,
}

/// The kernel's answer to a DATA chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Every chunk below this one is in.
    Ack(u16),
    /// Send this chunk again (damaged, or missing while later ones arrived).
    Resend(u16),
}

impl Link {
    /// Connects to QEMU's socket, waiting up to `wait` for it to appear.
    pub fn connect(path: &Path, wait: Duration) -> Result<Link, String> {
        let deadline = Instant::now() + wait;
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    return Ok(Link {
                        stream,
                        decoder: Decoder::new(),
                        naks: Vec::new(),
                        transfer: None,
                    })
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "cannot connect to the host link {}: {e} (is QEMU running from `cargo xtask run` for this board?)",
                        path.display()
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub(crate) fn send(&mut self, kind: Kind, seq: u16, payload: &[u8], damage: bool) -> Result<(), String> {
        let mut out = [0u8; HEADER_LEN + MAX_PAYLOAD + CRC_LEN];
        let n = pushlink::encode(kind, seq, payload, &mut out);
        if damage {
            out[HEADER_LEN] ^= 0x40;
        }
        self.stream.write_all(&out[..n]).map_err(|e| format!("the host link broke while sending: {e}"))
    }

    fn receive(&mut self, timeout: Duration) -> Result<Reply, String> {
        self.receive_within(timeout)?
            .ok_or_else(|| format!("no answer from the kernel within {} s (the transfer is interrupted)", timeout.as_secs()))
    }

    /// The next frame from the kernel; `None` if none came within `timeout`.
    fn receive_within(&mut self, timeout: Duration) -> Result<Option<Reply>, String> {
        let deadline = Instant::now() + timeout;
        let mut byte = [0u8; 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            match self.stream.read(&mut byte) {
                Ok(0) => return Err("the host link closed (QEMU exited?)".into()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(e) => return Err(format!("the host link broke while receiving: {e}")),
            }
            match self.decoder.push(byte[0]) {
                Some(Received::Frame { kind, seq, payload }) => return Ok(Some(Reply::Frame(kind, seq, payload.to_vec()))),
                Some(Received::BadCrc { .. }) | Some(Received::UnknownKind(_)) => return Ok(Some(Reply::Damaged)),
                None => {}
            }
        }
    }

    /// The running version of `name` (`None` if it does not run).
    pub fn query(&mut self, name: &str) -> Result<Option<String>, String> {
        self.send(Kind::Query, 0, name.as_bytes(), false)?;
        loop {
            match self.receive(ACK_TIMEOUT)? {
                Reply::Frame(Kind::Info, _, p) => {
                    let v = String::from_utf8_lossy(&p).to_string();
                    return Ok((!v.is_empty()).then_some(v));
                }
                Reply::Frame(Kind::Nak, _, p) => return Err(format!("the kernel refused the query: {}", String::from_utf8_lossy(&p))),
                _ => continue,
            }
        }
    }

    /// The kernel's answer to a chunk: `Ok(Some(next))` for an ACK (every chunk below
    /// `next` is in), `Ok(None)` for a NAK asking for chunk `seq` again (`Answer::Resend`),
    /// `Err` if it ended the transfer. `None` from `receive_within`'s timeout.
    fn answer(&mut self, timeout: Duration) -> Result<Option<Answer>, String> {
        loop {
            match self.receive_within(timeout)? {
                None => return Ok(None),
                Some(Reply::Frame(Kind::Ack, next, _)) => return Ok(Some(Answer::Ack(next))),
                Some(Reply::Frame(Kind::Nak, seq, p)) => {
                    let why = String::from_utf8_lossy(&p).to_string();
                    self.naks.push(why.clone());
                    if why.ends_with("resend") {
                        return Ok(Some(Answer::Resend(seq)));
                    }
                    return Err(format!("the kernel refused the transfer: {why}"));
                }
                // A damaged answer: the next ACK says where the kernel is.
                Some(_) => continue,
            }
        }
    }

    /// Sends BEGIN: the kernel's window once it ACKs it, `Err` with the kernel's reason
    /// otherwise (a kernel of another protocol version is named as such).
    pub fn begin(&mut self, begin: &Begin) -> Result<u16, String> {
        self.begin_as(VERSION, begin)
    }

    /// `begin`, claiming protocol `version` (tests of a version mismatch).
    pub fn begin_as(&mut self, version: u16, begin: &Begin) -> Result<u16, String> {
        let mut payload = [0u8; MAX_PAYLOAD];
        let n = begin.encode_as(version, &mut payload);
        self.send(Kind::Begin, 0, &payload[..n], false)?;
        loop {
            match self.receive(ACK_TIMEOUT)? {
                Reply::Frame(Kind::Ack, _, p) => {
                    return match BeginAck::decode(&p) {
                        Some(a) if a.version == VERSION => Ok(a.window.clamp(1, WINDOW)),
                        Some(a) => Err(format!(
                            "the kernel speaks host-link protocol {}, this host protocol {VERSION}: rebuild and restart the kernel (`cargo xtask run`) from this tree",
                            a.version
                        )),
                        None => Err(format!(
                            "the kernel acknowledged BEGIN as host-link protocol 1 does; this host speaks protocol {VERSION}: rebuild and restart the kernel (`cargo xtask run`) from this tree"
                        )),
                    };
                }
                Reply::Frame(Kind::Nak, _, p) => {
                    let why = String::from_utf8_lossy(&p).to_string();
                    self.naks.push(why.clone());
                    if why.contains("unknown frame kind 0x5") {
                        return Err(format!(
                            "the kernel speaks host-link protocol 1 (it does not know protocol {VERSION}'s BEGIN, kind 0x05): rebuild and restart the kernel (`cargo xtask run`) from this tree"
                        ));
                    }
                    return Err(format!("the kernel refused the transfer: {why}"));
                }
                Reply::Damaged => return Err("the kernel's answer to BEGIN was damaged on the way".into()),
                _ => continue,
            }
        }
    }

    /// Sends DATA chunk `seq` (`damage`d on the wire if asked) and waits for the kernel's
    /// answer: `Ok(Answer::Ack(next))`, `Ok(Answer::Resend(n))`, or `Err` if it ends the
    /// transfer (or does not answer).
    pub fn chunk(&mut self, seq: u16, bytes: &[u8], damage: bool) -> Result<Answer, String> {
        self.send(Kind::Data, seq, bytes, damage)?;
        self.answer(ACK_TIMEOUT)?
            .ok_or_else(|| format!("no answer to chunk {seq} within {} s", ACK_TIMEOUT.as_secs()))
    }

    /// The next NAK's text (other frames skipped).
    pub fn answer_nak(&mut self) -> Result<String, String> {
        loop {
            if let Reply::Frame(Kind::Nak, _, p) = self.receive(ACK_TIMEOUT)? {
                return Ok(String::from_utf8_lossy(&p).to_string());
            }
        }
    }

    /// Pushes `envelope` for domain `name` with BEGIN `flags` (`FLAG_FRESH` or 0); returns
    /// (swapped, the kernel's message). Up to the kernel's window of chunks are in flight;
    /// the kernel's ACKs are cumulative, and a chunk it asks for again is resent.
    pub fn push(&mut self, name: &str, envelope: &[u8], flags: u32, fault: Fault) -> Result<(bool, String), String> {
        let size = u32::try_from(envelope.len()).map_err(|_| format!("a {}-byte envelope is too large for the link", envelope.len()))?;
        let started = Instant::now();
        self.transfer = None;
        let window = self.begin(&Begin {
            size,
            crc: pushlink::crc32(envelope),
            flags,
            name,
        })? as usize;
        let chunks: Vec<&[u8]> = envelope.chunks(CHUNK).collect();
        let total = chunks.len();
        // Chunks below `acked` are in; chunks below `sent` were sent at least once.
        let (mut acked, mut sent) = (0usize, 0usize);
        let mut resends = vec![0u32; total];
        let mut progress = Instant::now();
        while acked < total {
            // An interruption after `n` chunks: they are sent, and taken, then nothing more.
            let stop = match fault {
                Fault::StopAfterChunks(n) => n as usize,
                _ => usize::MAX,
            };
            if acked >= stop {
                return Err(format!("stopped after {stop} chunks (injected interruption)"));
            }
            while sent < total && sent < acked + window && sent < stop {
                let seq = sent as u16;
                match fault {
                    Fault::DropChunkOnce(n) if n == seq => {}
                    Fault::SwapChunks(n) if n == seq && sent + 1 < total && sent + 1 < acked + window => {
                        self.send(Kind::Data, seq + 1, chunks[sent + 1], false)?;
                        self.send(Kind::Data, seq, chunks[sent], false)?;
                        sent += 1;
                    }
                    Fault::DuplicateChunk(n) if n == seq => {
                        self.send(Kind::Data, seq, chunks[sent], false)?;
                        self.send(Kind::Data, seq, chunks[sent], false)?;
                    }
                    _ => self.send(Kind::Data, seq, chunks[sent], fault == Fault::CorruptChunkOnce(seq))?,
                }
                sent += 1;
            }
            match self.answer(RETRANSMIT)? {
                Some(Answer::Ack(next)) => {
                    if next as usize > acked {
                        acked = (next as usize).min(total);
                        progress = Instant::now();
                    }
                }
                Some(Answer::Resend(seq)) => {
                    let i = seq as usize;
                    if i >= total {
                        return Err(format!("the kernel asked for chunk {seq}, past the last ({})", total - 1));
                    }
                    resends[i] += 1;
                    if resends[i] > RESENDS {
                        return Err(format!("chunk {seq} was damaged or lost {} times in a row; giving up", resends[i]));
                    }
                    self.send(Kind::Data, seq, chunks[i], false)?;
                }
                None if progress.elapsed() >= ACK_TIMEOUT => {
                    return Err(format!(
                        "no progress for {} s after {acked} of {total} chunks (the transfer is interrupted)",
                        ACK_TIMEOUT.as_secs()
                    ));
                }
                // Nothing for a while with the window out: the first chunk not acknowledged,
                // or its ACK, was lost.
                None => self.send(Kind::Data, acked as u16, chunks[acked], false)?,
            }
        }
        self.transfer = Some(Throughput {
            bytes: envelope.len(),
            time: started.elapsed(),
        });
        self.end()
    }

    /// Sends END; returns (swapped, the kernel's message), or the kernel's NAK as `Err`.
    pub fn end(&mut self) -> Result<(bool, String), String> {
        self.send(Kind::End, 0, &[], false)?;
        loop {
            match self.receive(RESULT_TIMEOUT)? {
                Reply::Frame(Kind::Result, _, p) if !p.is_empty() => return Ok((p[0] == 1, String::from_utf8_lossy(&p[1..]).to_string())),
                Reply::Frame(Kind::Nak, _, p) => return Err(format!("the kernel refused the envelope: {}", String::from_utf8_lossy(&p))),
                _ => continue,
            }
        }
    }
}

/// Builds and signs domain `name` for `board` (recipe grants, this machine's dev key),
/// with `version` or (if `None`) domain.toml's.
pub fn signed_domain(board: Board, name: &str, version: Option<&str>) -> Result<(Vec<u8>, String), String> {
    let elf_path = crate::domains::build_domain_elf(name)?;
    let elf = std::fs::read(&elf_path).map_err(|e| format!("cannot read {}: {e}", elf_path.display()))?;
    let recipe = crate::domains::recipe(board)?;
    let mut entry = recipe.into_iter().find(|e| e.name == name && e.version.is_none());
    if let Some(v) = version {
        let e = entry.get_or_insert_with(|| crate::domains::RecipeEntry {
            name: name.into(),
            devices: Vec::new(),
            ..Default::default()
        });
        e.version = Some(v.into());
    }
    let manifest = crate::domains::manifest(name, entry.as_ref(), true)?;
    let key = qvq_sign::read_signing_key(&crate::image::ensure_dev_key()?)?;
    let version = manifest.version.to_string();
    Ok((qvq_sign::sign(&manifest, &elf, &key)?, version))
}

/// Where `swap` records the highest version it signed of each domain for `board`
/// (`target/qvq/<board>/signed-versions/<name>`), so no number is signed twice.
pub fn records_dir(board: Board) -> PathBuf {
    crate::paths::out_dir(board).join("signed-versions")
}

/// Refuses what cannot be a domain name (it becomes a file name under `records`).
fn check_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(ok) {
        return Err(format!("{name:?} is not a domain name (1 to {MAX_NAME} of a-z, 0-9, _ and -)"));
    }
    Ok(())
}

/// The version `records` holds for `name`, if any.
fn recorded(records: &Path, name: &str) -> Result<Option<Version>, String> {
    let path = records.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Version::parse(text.trim())
            .map(Some)
            .ok_or_else(|| format!("{}: {:?} is not a version (fix or delete the file)", path.display(), text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Records that `version` of `name` was signed (keeping the highest ever recorded).
pub fn record_signed(records: &Path, name: &str, version: &Version) -> Result<(), String> {
    check_name(name)?;
    if recorded(records, name)?.is_some_and(|r| r >= *version) {
        return Ok(());
    }
    std::fs::create_dir_all(records).map_err(|e| format!("cannot create {}: {e}", records.display()))?;
    let path = records.join(name);
    std::fs::write(&path, format!("{version}\n")).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Every version of `name` this machine knows of, with where it comes from: domain.toml's,
/// the board recipe's further versions, and the highest `swap` signed (`records`).
fn local_versions(board: Board, name: &str, records: &Path) -> Result<Vec<(Version, String)>, String> {
    let mut local = vec![(crate::domains::manifest(name, None, true)?.version, format!("domains/{name}/domain.toml"))];
    let recipe = crate::paths::recipe(board);
    for e in crate::domains::recipe(board)?.iter().filter(|e| e.name == name) {
        if let Some(v) = &e.version {
            let parsed = Version::parse(v).ok_or_else(|| format!("{}: {name} version {v:?} is not MAJOR.MINOR.PATCH", recipe.display()))?;
            local.push((parsed, recipe.display().to_string()));
        }
    }
    if let Some(v) = recorded(records, name)? {
        local.push((v, records.join(name).display().to_string()));
    }
    Ok(local)
}

/// The version to sign a rebuilt `name` with: the highest `local` one with its patch number
/// raised by one. `running` (what the link reports) is only compared: if it is higher than
/// anything local, the choice is the user's (`--version`), never the link's.
pub fn choose_version(name: &str, local: &[(Version, String)], running: Option<&Version>) -> Result<Version, String> {
    let (base, from) = local
        .iter()
        .max_by(|a, b| a.0.cmp(&b.0))
        .ok_or_else(|| format!("no local version of {name} to start from"))?;
    if let Some(r) = running.filter(|r| *r > base) {
        return Err(format!(
            "the host link reports {name} {r} running, higher than any version signed on this machine (the highest: {base}, from {from}); \
             what the link reports is never the base of a signature: pass --version X.Y.Z (above {r}) to choose the version yourself"
        ));
    }
    let patch = base.patch.checked_add(1).ok_or_else(|| {
        format!(
            "{name} {base} (from {from}): the patch number cannot be raised past {}; pass --version X.Y.Z with a higher minor or major number",
            u32::MAX
        )
    })?;
    Ok(Version { patch, ..base.clone() })
}

/// What the link reports as running, as a version (`None`: not running).
fn reported_version(name: &str, text: Option<&str>) -> Result<Option<Version>, String> {
    let Some(text) = text else { return Ok(None) };
    let shown: String = text.chars().take(40).collect();
    Version::parse(text)
        .map(Some)
        .ok_or_else(|| format!("the host link reports {name} running as {shown:?}, which is not a version"))
}

/// What `cargo xtask swap` was asked for, beside the domain's name and the board.
#[derive(Default)]
pub struct SwapOptions<'a> {
    /// Sign as this version (instead of `choose_version`'s).
    pub version: Option<&'a str>,
    /// The host link's socket (default: the board's).
    pub socket: Option<&'a Path>,
    /// Push this envelope, signed elsewhere, instead of building and signing.
    pub envelope: Option<&'a Path>,
    /// Ask for a fresh start: no state is handed over.
    pub fresh: bool,
}

/// Reads an envelope signed elsewhere for domain `name`: its bytes and its manifest (read,
/// not verified: the kernel verifies it). Refused if it is not an envelope of `name`.
pub fn read_envelope(path: &Path, name: &str) -> Result<(Vec<u8>, Manifest), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("--envelope {}: cannot read it: {e}", path.display()))?;
    let m = envelope_manifest(&bytes).map_err(|e| format!("--envelope {}: {e}", path.display()))?;
    if m.name != name {
        return Err(format!(
            "--envelope {}: it is an envelope of domain {:?} (version {}), not {name:?}; pass the name its manifest says",
            path.display(),
            m.name,
            m.version
        ));
    }
    Ok((bytes, m))
}

/// The manifest inside envelope `bytes` (its structure checked, its signature not).
fn envelope_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let e = qvq_sign::loader::Envelope::parse(bytes).map_err(|e| format!("not a domain envelope: {}", qvq_sign::loader::LoadError::from(e)))?;
    Manifest::decode(e.manifest).map_err(|e| format!("its manifest is unreadable: {e}"))
}

/// Why a swap of `name` cannot start: nothing of that name runs on the board. `in_recipe`:
/// the board recipe (`recipe`, its path) lists it.
fn not_running(name: &str, recipe: &str, in_recipe: bool) -> String {
    if in_recipe {
        format!(
            "{name} is not running on the board (the host link reports no running {name}), though {recipe} lists it: \
             it was rejected at boot, or crashed and is held or restarting (see `domains` in the shell and the boot log); \
             `restart {name}` in the shell brings a held domain back. Only a running domain can be swapped; nothing was pushed"
        )
    } else {
        format!(
            "{name} is not running on the board (the host link reports no running {name}), and only a running domain can be swapped. \
             A domain must be in the board recipe ({recipe}) to boot: add a [[domain]] entry for {name} there and restart \
             `cargo xtask run`; loading a new domain at run time does not exist yet. Nothing was built or pushed"
        )
    }
}

/// The `swap` command: pushes `options.envelope`, or builds and signs `name` as
/// `options.version` or (if `None`) `choose_version`'s, recording what it signs in
/// `records`. Stops before building or pushing if `name` does not run.
pub fn swap(board: Board, name: &str, options: &SwapOptions, records: &Path) -> Result<bool, String> {
    check_name(name)?;
    let version = options
        .version
        .map(|v| Version::parse(v).ok_or_else(|| format!("--version {v:?}: not MAJOR.MINOR.PATCH")))
        .transpose()?;
    if version.is_some() && options.envelope.is_some() {
        return Err("--version and --envelope do not go together: an envelope signed elsewhere has its version".into());
    }
    let given = options.envelope.map(|path| read_envelope(path, name).map(|e| (path, e))).transpose()?;
    let socket = options.socket.map(Path::to_path_buf).unwrap_or_else(|| crate::paths::host_link_socket(board));
    let mut link = Link::connect(&socket, Duration::from_secs(2))?;
    let Some(running) = reported_version(name, link.query(name)?.as_deref())? else {
        let in_recipe = crate::domains::recipe(board)?.iter().any(|e| e.name == name);
        return Err(not_running(name, &crate::paths::recipe(board).display().to_string(), in_recipe));
    };
    let (envelope, signed) = match given {
        Some((path, (bytes, m))) => {
            println!(
                "xtask: pushing {} ({name} {}, signed elsewhere, {} bytes); the link reports {running} running",
                path.display(),
                m.version,
                bytes.len()
            );
            (bytes, m.version)
        }
        None => {
            let version = match version {
                Some(v) => v,
                None => choose_version(name, &local_versions(board, name, records)?, Some(&running))?,
            };
            let (envelope, version) = signed_domain(board, name, Some(&version.to_string()))?;
            let signed = Version::parse(&version).ok_or_else(|| format!("signed {name} as {version:?}, which is not a version"))?;
            record_signed(records, name, &signed)?;
            println!(
                "xtask: {name} {version} built and signed ({} bytes); the link reports {running} running",
                envelope.len()
            );
            (envelope, signed)
        }
    };
    if signed <= running {
        println!("xtask: {signed} is not newer than what runs: the kernel will refuse it unless its manifest is signed as a permitted downgrade");
    }
    if options.fresh {
        println!("xtask: fresh start asked: the running version's state will be discarded, not handed over");
    }
    let started = Instant::now();
    let flags = if options.fresh { FLAG_FRESH } else { 0 };
    let (swapped, message) = link.push(name, &envelope, flags, Fault::None)?;
    for nak in &link.naks {
        println!("xtask: the kernel reported on the way: {nak}");
    }
    if let Some(t) = link.transfer {
        println!("xtask: host link: {t}");
    }
    println!("xtask: kernel: {message} ({:.2} s on the host)", started.elapsed().as_secs_f64());
    Ok(swapped)
}

/// The board recipe's top-level switch for the kernel's host-link receiver
/// (`host_link = true` in `initrd/<board>.toml`; absent means off).
pub fn recipe_enables_host_link(board: Board) -> Result<bool, String> {
    #[derive(Deserialize)]
    struct Switch {
        #[serde(default)]
        host_link: bool,
    }
    let path = crate::paths::recipe(board);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let s: Switch = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(s.host_link)
}

#[cfg(test)]
mod tests {
    use super::{check_name, choose_version, not_running, read_envelope, record_signed, recorded, reported_version, Version};

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn local(versions: &[&str]) -> Vec<(Version, String)> {
        versions.iter().map(|s| (v(s), format!("source of {s}"))).collect()
    }

    #[test]
    fn the_highest_local_version_plus_one_patch_is_signed() {
        assert_eq!(choose_version("hello", &local(&["0.1.0"]), None), Ok(v("0.1.1")));
        assert_eq!(choose_version("hello", &local(&["0.1.0", "0.2.0", "0.1.7"]), Some(&v("0.1.0"))), Ok(v("0.2.1")));
        // What runs, as long as it is not above the local versions, does not matter.
        assert_eq!(choose_version("hello", &local(&["0.3.0"]), Some(&v("0.3.0"))), Ok(v("0.3.1")));
        assert_eq!(choose_version("hello", &local(&["0.3.0"]), Some(&v("0.0.9"))), Ok(v("0.3.1")));
    }

    #[test]
    fn a_link_reporting_a_higher_version_is_refused_not_followed() {
        let e = choose_version("hello", &local(&["0.1.0", "0.2.0"]), Some(&v("9.9.9"))).unwrap_err();
        assert!(
            e.contains("reports hello 9.9.9 running, higher than any version signed on this machine (the highest: 0.2.0, from source of 0.2.0)"),
            "{e}"
        );
        assert!(e.contains("pass --version X.Y.Z"), "{e}");
        let e = choose_version("hello", &local(&["0.2.0"]), Some(&v("0.2.1"))).unwrap_err();
        assert!(e.contains("0.2.1 running"), "{e}");
    }

    #[test]
    fn a_patch_number_at_its_maximum_is_an_error_not_a_wrap() {
        let top = format!("1.2.{}", u32::MAX);
        let e = choose_version("hello", &local(&[&top]), None).unwrap_err();
        assert!(e.contains("patch number cannot be raised past 4294967295"), "{e}");
        assert!(e.contains("higher minor or major"), "{e}");
        // A link reporting u32::MAX as its patch cannot make the choice overflow either.
        let e = choose_version("hello", &local(&["0.1.0"]), Some(&v(&top))).unwrap_err();
        assert!(e.contains("higher than any version signed"), "{e}");
    }

    #[test]
    fn records_keep_the_highest_signed_version() {
        let dir = std::env::temp_dir().join(format!("qvq-swap-records-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(recorded(&dir, "hello"), Ok(None));
        record_signed(&dir, "hello", &v("0.5.0")).unwrap();
        record_signed(&dir, "hello", &v("0.3.0")).unwrap();
        assert_eq!(recorded(&dir, "hello"), Ok(Some(v("0.5.0"))));
        record_signed(&dir, "hello", &v("0.5.1")).unwrap();
        assert_eq!(recorded(&dir, "hello"), Ok(Some(v("0.5.1"))));
        std::fs::write(dir.join("hello"), "garbage").unwrap();
        assert!(recorded(&dir, "hello").unwrap_err().contains("is not a version"));
        assert!(record_signed(&dir, "../escape", &v("1.0.0")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_and_reported_versions_are_checked() {
        assert!(check_name("hello").is_ok());
        for bad in ["", "../x", "Hello", "a/b", &"x".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(reported_version("hello", None), Ok(None));
        assert_eq!(reported_version("hello", Some("0.2.0")), Ok(Some(v("0.2.0"))));
        let e = reported_version("hello", Some("0.2.0; rm -rf")).unwrap_err();
        assert!(e.contains("not a version"), "{e}");
    }

    /// An envelope of domain `name` (structure only: the ELF and signature are filler, which
    /// the host never checks and the kernel would refuse).
    fn envelope_of(name: &str) -> Vec<u8> {
        let text = format!("name = \"{name}\"\nversion = \"0.7.0\"\nheap_limit = 65536\nstack_size = 16384\nexports = []\nimports = []\n");
        let m = qvq_sign::ManifestToml::parse(&text).unwrap().encode().unwrap();
        qvq_sign::loader::envelope::assemble(&m, b"not an ELF", &[0; 32], &[0; 64])
    }

    #[test]
    fn an_envelope_of_another_domain_is_refused_before_anything_is_pushed() {
        let dir = std::env::temp_dir().join(format!("qvq-swap-envelope-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hello.qvd");
        std::fs::write(&file, envelope_of("hello")).unwrap();
        let (bytes, m) = read_envelope(&file, "hello").unwrap();
        assert_eq!(
            (bytes.len(), m.name.as_str(), m.version.to_string()),
            (envelope_of("hello").len(), "hello", "0.7.0".into())
        );
        let e = read_envelope(&file, "console").unwrap_err();
        assert!(
            e.contains("hello.qvd: it is an envelope of domain \"hello\" (version 0.7.0), not \"console\""),
            "{e}"
        );
        std::fs::write(&file, b"QVQ garbage").unwrap();
        let e = read_envelope(&file, "hello").unwrap_err();
        assert!(e.contains("not a domain envelope"), "{e}");
        let e = read_envelope(&dir.join("missing.qvd"), "hello").unwrap_err();
        assert!(e.contains("missing.qvd: cannot read it"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_domain_that_does_not_run_gets_a_hint_not_a_push() {
        let e = not_running("mydriver", "initrd/virt.toml", false);
        assert!(e.starts_with("mydriver is not running on the board"), "{e}");
        assert!(e.contains("A domain must be in the board recipe (initrd/virt.toml) to boot"), "{e}");
        assert!(e.contains("loading a new domain at run time does not exist yet"), "{e}");
        assert!(e.ends_with("Nothing was built or pushed"), "{e}");
        let e = not_running("hello", "initrd/rpi3.toml", true);
        assert!(e.contains("hello is not running on the board"), "{e}");
        assert!(e.contains("though initrd/rpi3.toml lists it"), "{e}");
        assert!(e.contains("`restart hello`"), "{e}");
    }
}
