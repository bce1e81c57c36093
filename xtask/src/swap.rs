//! `cargo xtask swap NAME`: rebuild and sign a domain, then push it over the host link to
//! the QEMU that `cargo xtask run` started, which swaps it in (pushlink/PROTOCOL.md).

use crate::board::Board;
use pushlink::{Begin, Decoder, Kind, Received, CHUNK, CRC_LEN, HEADER_LEN, MAX_PAYLOAD};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long to wait for an acknowledgement, and for the swap's result.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
const RESULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Resends of one chunk the kernel reported damaged.
const RESENDS: u32 = 3;

/// Faults a test injects into a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Damage chunk `n` once on the wire (its CRC no longer matches); the push resends it.
    CorruptChunkOnce(u16),
    /// Stop after sending `n` chunks, as if the cable were pulled.
    StopAfterChunks(u16),
}

/// The host end of the link.
pub struct Link {
    stream: UnixStream,
    decoder: Decoder,
    /// What the kernel NAKed along the way (reported to the user).
    pub naks: Vec<String>,
}

pub enum Reply {
    Frame(Kind, u16, Vec<u8>),
    Damaged,
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

    fn send(&mut self, kind: Kind, seq: u16, payload: &[u8], damage: bool) -> Result<(), String> {
        let mut out = [0u8; HEADER_LEN + MAX_PAYLOAD + CRC_LEN];
        let n = pushlink::encode(kind, seq, payload, &mut out);
        if damage {
            out[HEADER_LEN] ^= 0x40;
        }
        self.stream.write_all(&out[..n]).map_err(|e| format!("the host link broke while sending: {e}"))
    }

    fn receive(&mut self, timeout: Duration) -> Result<Reply, String> {
        let deadline = Instant::now() + timeout;
        let mut byte = [0u8; 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no answer from the kernel within {} s (the transfer is interrupted)",
                    timeout.as_secs()
                ));
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            match self.stream.read(&mut byte) {
                Ok(0) => return Err("the host link closed (QEMU exited?)".into()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(e) => return Err(format!("the host link broke while receiving: {e}")),
            }
            match self.decoder.push(byte[0]) {
                Some(Received::Frame { kind, seq, payload }) => return Ok(Reply::Frame(kind, seq, payload.to_vec())),
                Some(Received::BadCrc { .. }) | Some(Received::UnknownKind(_)) => return Ok(Reply::Damaged),
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

    /// Waits for the ACK of `seq`. `Ok(false)`: the kernel asks for a resend.
    fn await_ack(&mut self, seq: u16) -> Result<bool, String> {
        loop {
            match self.receive(ACK_TIMEOUT)? {
                Reply::Frame(Kind::Ack, s, _) if s == seq => return Ok(true),
                Reply::Frame(Kind::Nak, _, p) => {
                    let why = String::from_utf8_lossy(&p).to_string();
                    self.naks.push(why.clone());
                    if why.ends_with("resend") {
                        return Ok(false);
                    }
                    return Err(format!("the kernel refused the transfer: {why}"));
                }
                Reply::Damaged => return Ok(false),
                _ => continue,
            }
        }
    }

    /// Pushes `envelope` for domain `name`; returns (swapped, the kernel's message).
    pub fn push(&mut self, name: &str, envelope: &[u8], flags: u32, fault: Fault) -> Result<(bool, String), String> {
        let mut begin = [0u8; MAX_PAYLOAD];
        let n = Begin {
            size: envelope.len() as u32,
            crc: pushlink::crc32(envelope),
            flags,
            name,
        }
        .encode(&mut begin);
        self.send(Kind::Begin, 0, &begin[..n], false)?;
        if !self.await_ack(0)? {
            return Err("the kernel did not accept the transfer's start".into());
        }
        for (i, chunk) in envelope.chunks(CHUNK).enumerate() {
            let seq = i as u16;
            if fault == Fault::StopAfterChunks(seq) {
                return Err(format!("stopped after {seq} chunks (injected interruption)"));
            }
            let mut damage = fault == Fault::CorruptChunkOnce(seq);
            let mut tries = 0;
            loop {
                self.send(Kind::Data, seq, chunk, damage)?;
                damage = false;
                if self.await_ack(seq)? {
                    break;
                }
                tries += 1;
                if tries > RESENDS {
                    return Err(format!("chunk {seq} was damaged {tries} times in a row; giving up"));
                }
            }
        }
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

/// The version to sign a rebuilt domain with: domain.toml's if it is newer than the running
/// one, else the running one with the patch number raised (so a rebuilt driver is newer).
pub fn next_version(declared: &str, running: Option<&str>) -> String {
    let parse = |v: &str| -> Option<(u32, u32, u32)> {
        let mut it = v.split('.').map(|x| x.parse::<u32>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    };
    match (parse(declared), running.and_then(parse)) {
        (Some(d), Some(r)) if d <= r => format!("{}.{}.{}", r.0, r.1, r.2 + 1),
        _ => declared.to_string(),
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

/// The `swap` command.
pub fn swap(board: Board, name: &str, version: Option<&str>, downgrade: bool, socket: Option<&Path>) -> Result<bool, String> {
    let socket = socket.map(Path::to_path_buf).unwrap_or_else(|| crate::paths::host_link_socket(board));
    let mut link = Link::connect(&socket, Duration::from_secs(2))?;
    let running = link.query(name)?;
    let declared = crate::domains::manifest(name, None, true)?.version.to_string();
    let version = match version {
        Some(v) => v.to_string(),
        None => next_version(&declared, running.as_deref()),
    };
    let (envelope, version) = signed_domain(board, name, Some(&version))?;
    println!(
        "xtask: {name} {version} built and signed ({} bytes); running: {}",
        envelope.len(),
        running.as_deref().unwrap_or("not running")
    );
    let flags = if downgrade { pushlink::FLAG_ALLOW_DOWNGRADE } else { 0 };
    let started = Instant::now();
    let (swapped, message) = link.push(name, &envelope, flags, Fault::None)?;
    for nak in &link.naks {
        println!("xtask: the kernel reported on the way: {nak}");
    }
    println!("xtask: kernel: {message} ({:.2} s on the host)", started.elapsed().as_secs_f64());
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::next_version;

    #[test]
    fn a_rebuild_is_signed_newer_than_what_runs() {
        assert_eq!(next_version("0.1.0", Some("0.1.0")), "0.1.1");
        assert_eq!(next_version("0.1.0", Some("0.2.3")), "0.2.4");
        assert_eq!(next_version("0.3.0", Some("0.2.3")), "0.3.0");
        assert_eq!(next_version("0.1.0", None), "0.1.0");
    }
}
