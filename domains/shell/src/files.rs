//! `ls [PATH]`, `cat PATH`, `write PATH TEXT...`, `rm PATH`, `mkdir PATH`, `df`: files on
//! the disk's FAT volume through the `Files` interface (the fs domain). Imported when a
//! command runs, as `blk` does: a board without the fs domain simply has none. Errors are
//! the interface's `fs_status` text and the fs domain's detail.

use alloc::format;
use alloc::string::String;
use runtime::interfaces::files::{self, Files};
use runtime::interfaces::{fs_status, Envelope, FileChunk, FileStat, FsAnswer, ImportError, RRef, RpcError, RpcResult, Text, ENVELOPE_MAX, FILE_CHUNK};

pub const HELP: &str = "ls [PATH] | cat PATH | write PATH TEXT | rm PATH | mkdir PATH | df  (files on the disk's FAT volume; paths from its root, like /DOCS/NOTE.TXT; new names 8.3)\n";

/// `cat` shows at most this many bytes of a file.
const CAT_LIMIT: u64 = 64 * 1024;

/// The Files interface, or the line that says why there is none.
fn fs(cmd: &str) -> Result<files::Proxy, String> {
    files::import().map_err(|e| match e {
        ImportError::NotDeclared => format!("{cmd}: no file system on this board (no domain in its recipe exports Files)\n"),
        ImportError::NotExported => format!("{cmd}: the file system domain is not running (it may be restarting)\n"),
        _ => format!("{cmd}: cannot import Files: {e}\n"),
    })
}

/// `path` as the interface's text (callers check its length first: `Text` would cut it).
fn text(path: &str) -> RRef<Text> {
    RRef::new(Text::from_bytes(path.as_bytes()).0)
}

/// The path as the interface's text, or why it cannot be one.
fn path_text(cmd: &str, path: &str) -> Result<RRef<Text>, String> {
    if path.len() > Text::CAPACITY {
        return Err(format!("{cmd}: the path is longer than {} bytes\n", Text::CAPACITY));
    }
    Ok(text(path))
}

/// A call that changes nothing, made again (once the fs domain serves) if the domain
/// crashed or was restarting: reading twice is harmless.
fn idempotent<T>(mut call: impl FnMut() -> RpcResult<T>) -> RpcResult<T> {
    match call() {
        Err(e @ (RpcError::Crashed | RpcError::Unavailable)) => runtime::interfaces::abi::await_restart(|| Some(call())).unwrap_or(Err(e)),
        r => r,
    }
}

/// `status` with the fs domain's `detail` (printable ASCII only: it comes from another
/// domain), as one message.
fn failure(status: u32, detail: &Text) -> String {
    let detail: String = detail
        .as_bytes()
        .iter()
        .map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '?' })
        .collect();
    if detail.is_empty() {
        String::from(fs_status::describe(status))
    } else {
        format!("{}: {detail}", fs_status::describe(status))
    }
}

fn answered(cmd: &str, path: &str, r: RpcResult<RRef<FsAnswer>>, done: &str) -> String {
    match r {
        Ok(a) if a.status == fs_status::OK => format!("{cmd} {path}: {done}\n"),
        Ok(a) => format!("{cmd} {path}: {}\n", failure(a.status, &a.detail)),
        Err(e) => format!("{cmd} {path}: error: {e}\n"),
    }
}

fn entry_line(s: &FileStat) -> String {
    let name = String::from_utf8_lossy(s.name.as_bytes());
    let cut = if s.name_cut != 0 { "..." } else { "" };
    if s.is_dir != 0 {
        format!("   <dir>  {name}{cut}/\n")
    } else {
        format!("{:>8}  {name}{cut}\n", s.size)
    }
}

/// `ls [PATH]`: a directory's entries (or a file's size and name).
pub fn ls(words: &[&str], print: &dyn Fn(&str)) {
    let path = match words {
        [] => "/",
        [p] => p,
        _ => return print("usage: ls [PATH]\n"),
    };
    let run = || -> Result<(), String> {
        let fs = fs("ls")?;
        let st = idempotent(|| fs.stat(text(path))).map_err(|e| format!("ls {path}: error: {e}\n"))?;
        if st.status != fs_status::OK {
            return Err(format!("ls {path}: {}\n", failure(st.status, &st.detail)));
        }
        if st.is_dir == 0 {
            print(&entry_line(&st));
            return Ok(());
        }
        let mut shown = 0u32;
        for index in 0..u32::MAX {
            let e = idempotent(|| fs.list(text(path), index)).map_err(|e| format!("ls {path}: error: {e}\n"))?;
            match e.status {
                fs_status::OK => print(&entry_line(&e)),
                fs_status::NO_MORE_ENTRIES => break,
                s => return Err(format!("ls {path}: {}\n", failure(s, &e.detail))),
            }
            shown += 1;
        }
        print(&format!("ls {path}: {shown} entries\n"));
        Ok(())
    };
    if path.len() > Text::CAPACITY {
        return print(&format!("ls: the path is longer than {} bytes\n", Text::CAPACITY));
    }
    if let Err(e) = run() {
        print(&e);
    }
}

/// `cat PATH`: the file's bytes (control characters other than newline and tab as `.`).
pub fn cat(words: &[&str], print: &dyn Fn(&str)) {
    let [path] = words else {
        return print("usage: cat PATH\n");
    };
    if path.len() > Text::CAPACITY {
        return print(&format!("cat: the path is longer than {} bytes\n", Text::CAPACITY));
    }
    let fs = match fs("cat") {
        Ok(f) => f,
        Err(e) => return print(&e),
    };
    let mut offset = 0u64;
    let mut ends_in_newline = true;
    while offset < CAT_LIMIT {
        let chunk: RRef<FileChunk> = match idempotent(|| fs.read(text(path), offset)) {
            Ok(c) => c,
            Err(e) => return print(&format!("cat {path}: error: {e}\n")),
        };
        if chunk.status != fs_status::OK {
            return print(&format!("cat {path}: {}\n", failure(chunk.status, &chunk.detail)));
        }
        let n = chunk.len as usize;
        if n > FILE_CHUNK {
            return print(&format!("cat {path}: the file system answered {n} bytes for a {FILE_CHUNK}-byte chunk\n"));
        }
        if n == 0 {
            break;
        }
        let shown: String = chunk.bytes[..n]
            .iter()
            .map(|&b| match b {
                b'\n' | b'\t' | 0x20..=0x7e => b as char,
                _ => '.',
            })
            .collect();
        print(&shown);
        ends_in_newline = chunk.bytes[n - 1] == b'\n';
        offset += n as u64;
    }
    if !ends_in_newline {
        print("\n");
    }
    if offset >= CAT_LIMIT {
        print(&format!("cat {path}: (only the first {CAT_LIMIT} bytes shown)\n"));
    }
}

/// `write PATH TEXT...` (the whole line, so the text keeps its spaces): the file holds the
/// text and a newline afterwards, made if it did not exist.
pub fn write(line: &str) -> String {
    let rest = line.trim_start().strip_prefix("write").unwrap_or("").trim_start();
    let (path, text) = match rest.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&rest[..i], rest[i..].trim_start()),
        None => (rest, ""),
    };
    if path.is_empty() || text.is_empty() {
        return String::from("usage: write PATH TEXT... (replaces the file's content with TEXT and a newline)\n");
    }
    let mut data = String::from(text);
    data.push('\n');
    if data.len() > FILE_CHUNK {
        return format!("write: at most {FILE_CHUNK} bytes in one command\n");
    }
    let fs = match fs("write") {
        Ok(f) => f,
        Err(e) => return e,
    };
    // Replace: cut an existing file to nothing, then write (a crash between the two
    // leaves it empty; README "Files").
    let p = match path_text("write", path) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match fs.truncate(p, 0) {
        Ok(a) if a.status == fs_status::OK || a.status == fs_status::NOT_FOUND => {}
        r => return answered("write", path, r, ""),
    }
    let Some(mut chunk) = RRef::<FileChunk>::try_new_zeroed() else {
        return String::from("write: no room on the shared heap for a chunk\n");
    };
    chunk.bytes[..data.len()].copy_from_slice(data.as_bytes());
    chunk.len = data.len() as u32;
    let p = match path_text("write", path) {
        Ok(p) => p,
        Err(e) => return e,
    };
    answered("write", path, fs.write(p, 0, chunk), &format!("wrote {} bytes", data.len()))
}

/// `rm PATH` and `mkdir PATH`.
pub fn change(cmd: &str, words: &[&str]) -> String {
    let [path] = words else {
        return format!("usage: {cmd} PATH\n");
    };
    let fs = match fs(cmd) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let p = match path_text(cmd, path) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match cmd {
        "rm" => answered(cmd, path, fs.remove(p), "removed"),
        _ => answered(cmd, path, fs.mkdir(p), "made"),
    }
}

/// `df`: the volume's size and free space.
pub fn df(words: &[&str]) -> String {
    if !words.is_empty() {
        return String::from("usage: df\n");
    }
    let fs = match fs("df") {
        Ok(f) => f,
        Err(e) => return e,
    };
    match idempotent(|| fs.usage()) {
        Ok(u) if u.status == fs_status::OK => format!(
            "df: {} KiB, {} KiB used, {} KiB free\n",
            u.total_bytes / 1024,
            u.total_bytes.saturating_sub(u.free_bytes) / 1024,
            u.free_bytes / 1024
        ),
        Ok(u) => format!("df: {}\n", failure(u.status, &u.detail)),
        Err(e) => format!("df: error: {e}\n"),
    }
}

/// The prefix that names a file on the volume where a command takes a domain's envelope
/// (`swap NAME disk:PATH`, `load disk:PATH`).
pub const DISK_PREFIX: &str = "disk:";

/// The whole file at `path` (a signed envelope), read for `cmd` into the block the kernel
/// is handed; or the line that says why not.
pub fn read_envelope(cmd: &str, path: &str) -> Result<RRef<Envelope>, String> {
    let p = path_text(cmd, path)?;
    let fs = fs(cmd)?;
    let stat = idempotent(|| fs.stat(text(path))).map_err(|e| format!("{cmd} {DISK_PREFIX}{path}: error: {e}\n"))?;
    drop(p);
    if stat.status != fs_status::OK {
        return Err(format!("{cmd} {DISK_PREFIX}{path}: {}\n", failure(stat.status, &stat.detail)));
    }
    if stat.is_dir != 0 {
        return Err(format!("{cmd} {DISK_PREFIX}{path}: it is a directory\n"));
    }
    let size = stat.size as usize;
    if size > ENVELOPE_MAX {
        return Err(format!(
            "{cmd} {DISK_PREFIX}{path}: {size} bytes, more than an envelope may have ({ENVELOPE_MAX})\n"
        ));
    }
    let mut env = RRef::<Envelope>::try_new_zeroed().ok_or_else(|| format!("{cmd}: no shared-heap room for a {ENVELOPE_MAX}-byte envelope\n"))?;
    let mut at = 0usize;
    while at < size {
        let chunk: RRef<FileChunk> = idempotent(|| fs.read(text(path), at as u64)).map_err(|e| format!("{cmd} {DISK_PREFIX}{path}: error: {e}\n"))?;
        if chunk.status != fs_status::OK {
            return Err(format!("{cmd} {DISK_PREFIX}{path}: {}\n", failure(chunk.status, &chunk.detail)));
        }
        // The fs domain's answer is checked like any other input: no more than asked for.
        let n = (chunk.len as usize).min(FILE_CHUNK).min(size - at);
        if n == 0 {
            return Err(format!("{cmd} {DISK_PREFIX}{path}: the file ended at {at} of its {size} bytes\n"));
        }
        env.bytes[at..at + n].copy_from_slice(&chunk.bytes[..n]);
        at += n;
    }
    env.len = size as u32;
    Ok(env)
}
