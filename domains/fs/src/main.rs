//! The file-system domain: the FAT16/FAT32 volume on the board's block device (`fat`,
//! over `disk::BlockSectors` and the `Block` interface), exported as `Files`.
//!
//! Every byte it reads from the disk is untrusted: the FAT code checks the volume's layout
//! and every structure before using it, so a corrupted or hostile image is an error for
//! the caller (`fs_status::CORRUPT` with what is wrong), never a panic. The volume is
//! mounted on the first call, not in `init` (the block driver may start later, or be
//! restarting); a call that cannot mount it answers why (and logs it), and the next call
//! tries again. A call that fails with a disk error drops the mount (and its cache): the
//! next one mounts afresh.
//!
//! Crash consistency is the FAT code's (`fat` module doc): file data first, then each
//! operation's metadata in one `Sectors::write`, which `BlockSectors` sends as one
//! `Block` batch. A crash of this domain mid-call loses at most that call.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod disk;
mod fat;

use disk::BlockSectors;
use fat::{FsError, Volume};
use runtime::interfaces::files::{self, Files};
use runtime::interfaces::{fs_status, FileChunk, FileStat, FsAnswer, FsUsage, RRef, RpcError, RpcResult, Text, FILE_CHUNK};
use runtime::Mutex;

/// Why a call failed: the FAT code's error, or no disk to mount, or a malformed request.
#[derive(Clone, Copy, Debug)]
enum Failure {
    Fs(FsError),
    NoDisk(&'static str),
    BadRequest(&'static str),
    /// `list` past the directory's last entry.
    NoMoreEntries,
}

impl From<FsError> for Failure {
    fn from(e: FsError) -> Failure {
        Failure::Fs(e)
    }
}

impl Failure {
    /// The `fs_status` code and the detail that goes with it.
    fn status(self) -> (u32, &'static str) {
        use fs_status::*;
        match self {
            Failure::NoDisk(why) => (NO_DISK, why),
            Failure::BadRequest(why) => (BAD_REQUEST, why),
            Failure::NoMoreEntries => (NO_MORE_ENTRIES, ""),
            Failure::Fs(e) => match e {
                FsError::Io => (IO, ""),
                FsError::NoVolume => (NO_VOLUME, ""),
                FsError::Corrupt(what) => (CORRUPT, what),
                FsError::Unsupported(what) => (UNSUPPORTED, what),
                FsError::NotFound => (NOT_FOUND, ""),
                FsError::NotADirectory => (NOT_A_DIRECTORY, ""),
                FsError::IsADirectory => (IS_A_DIRECTORY, ""),
                FsError::AlreadyExists => (ALREADY_EXISTS, ""),
                FsError::DirectoryNotEmpty => (DIRECTORY_NOT_EMPTY, ""),
                FsError::BadPath(why) => (BAD_PATH, why),
                FsError::NotShortName => (NOT_SHORT_NAME, ""),
                FsError::NoSpace => (NO_SPACE, ""),
                FsError::BadOffset => (BAD_OFFSET, ""),
                FsError::IsRoot => (IS_ROOT, ""),
                FsError::ReadOnly => (READ_ONLY, ""),
            },
        }
    }
}

fn text(s: &str) -> Text {
    Text::from_bytes(s.as_bytes()).0
}

/// The answer for `r`: OK, or the failure's status and detail.
fn answer(r: Result<(), Failure>) -> FsAnswer {
    let (status, detail) = match r {
        Ok(()) => (fs_status::OK, ""),
        Err(f) => f.status(),
    };
    FsAnswer {
        status,
        _pad: 0,
        detail: text(detail),
    }
}

/// The path a caller sent: UTF-8, within the text's capacity.
fn path_of(path: &Text) -> Result<&str, Failure> {
    if path.len as usize > Text::CAPACITY {
        return Err(Failure::BadRequest("a path's length is past the text's 248 bytes"));
    }
    core::str::from_utf8(path.as_bytes()).map_err(|_| Failure::Fs(FsError::BadPath("not UTF-8")))
}

struct FsDomain {
    /// Mounted on the first call (and again after a disk error).
    volume: Mutex<Option<Volume<BlockSectors>>>,
}

static FS: FsDomain = FsDomain { volume: Mutex::new(None) };

impl FsDomain {
    /// `f` on the mounted volume, mounting it first if it is not.
    fn with_volume<R>(&self, f: impl FnOnce(&mut Volume<BlockSectors>) -> Result<R, FsError>) -> Result<R, Failure> {
        self.volume.with(|slot| {
            let volume = match slot {
                Some(v) => v,
                None => {
                    let disk = BlockSectors::open().map_err(|why| {
                        runtime::println!("cannot mount: no disk: {why}");
                        Failure::NoDisk(why)
                    })?;
                    let v = Volume::mount(disk).map_err(|e| {
                        runtime::println!("cannot mount: {e}");
                        Failure::Fs(e)
                    })?;
                    let g = v.geometry();
                    runtime::println!(
                        "mounted a {} volume at sector {}: {} clusters of {} bytes",
                        match g.kind {
                            fat::layout::FatKind::Fat16 => "FAT16",
                            fat::layout::FatKind::Fat32 => "FAT32",
                        },
                        g.start,
                        g.clusters,
                        g.cluster_bytes()
                    );
                    slot.insert(v)
                }
            };
            let r = f(volume);
            if let Err(FsError::Io) = r {
                runtime::println!("a disk error: the volume is mounted again on the next call");
                *slot = None;
            }
            r.map_err(Failure::Fs)
        })
    }

    fn stat_answer(&self, r: Result<fat::Stat, Failure>) -> RpcResult<RRef<FileStat>> {
        let mut answer = FileStat {
            status: fs_status::OK,
            is_dir: 0,
            size: 0,
            name: text(""),
            name_cut: 0,
            _pad: 0,
            detail: text(""),
        };
        match r {
            Ok(s) => {
                let (name, taken) = Text::from_bytes(s.name.as_bytes());
                answer.name = name;
                answer.name_cut = (taken < s.name.len()) as u32;
                answer.is_dir = s.is_dir as u32;
                answer.size = s.size as u64;
            }
            Err(f) => {
                let (status, detail) = f.status();
                answer.status = status;
                answer.detail = text(detail);
            }
        }
        RRef::try_new(answer).map_err(|_| RpcError::Refused)
    }
}

impl Files for FsDomain {
    fn stat(&self, path: RRef<Text>) -> RpcResult<RRef<FileStat>> {
        let r = path_of(&path).and_then(|p| self.with_volume(|v| v.stat(p)));
        self.stat_answer(r)
    }

    fn list(&self, path: RRef<Text>, index: u32) -> RpcResult<RRef<FileStat>> {
        let r = path_of(&path)
            .and_then(|p| self.with_volume(|v| v.list(p)))
            .and_then(|entries| entries.into_iter().nth(index as usize).ok_or(Failure::NoMoreEntries));
        self.stat_answer(r)
    }

    fn read(&self, path: RRef<Text>, offset: u64) -> RpcResult<RRef<FileChunk>> {
        let mut chunk = RRef::<FileChunk>::try_new_zeroed().ok_or(RpcError::Refused)?;
        let r = path_of(&path).and_then(|p| self.with_volume(|v| v.read(p, offset, &mut chunk.bytes)));
        match r {
            Ok(n) => chunk.len = n as u32,
            Err(f) => {
                let (status, detail) = f.status();
                chunk.status = status;
                chunk.detail = text(detail);
            }
        }
        Ok(chunk)
    }

    fn write(&self, path: RRef<Text>, offset: u64, chunk: RRef<FileChunk>) -> RpcResult<RRef<FsAnswer>> {
        let r = path_of(&path).and_then(|p| {
            let data = chunk
                .bytes
                .get(..chunk.len as usize)
                .ok_or(Failure::BadRequest("a chunk's len is past its 4096 bytes"))?;
            self.with_volume(|v| v.write(p, offset, data))
        });
        RRef::try_new(answer(r)).map_err(|_| RpcError::Refused)
    }

    fn truncate(&self, path: RRef<Text>, len: u64) -> RpcResult<RRef<FsAnswer>> {
        let r = path_of(&path).and_then(|p| self.with_volume(|v| v.truncate(p, len)));
        RRef::try_new(answer(r)).map_err(|_| RpcError::Refused)
    }

    fn remove(&self, path: RRef<Text>) -> RpcResult<RRef<FsAnswer>> {
        let r = path_of(&path).and_then(|p| self.with_volume(|v| v.remove(p)));
        RRef::try_new(answer(r)).map_err(|_| RpcError::Refused)
    }

    fn mkdir(&self, path: RRef<Text>) -> RpcResult<RRef<FsAnswer>> {
        let r = path_of(&path).and_then(|p| self.with_volume(|v| v.mkdir(p)));
        RRef::try_new(answer(r)).map_err(|_| RpcError::Refused)
    }

    fn usage(&self) -> RpcResult<RRef<FsUsage>> {
        let r = self.with_volume(|v| v.usage());
        let (status, detail, (total_bytes, free_bytes)) = match r {
            Ok(u) => (fs_status::OK, "", u),
            Err(f) => {
                let (s, d) = f.status();
                (s, d, (0, 0))
            }
        };
        RRef::try_new(FsUsage {
            status,
            _pad: 0,
            total_bytes,
            free_bytes,
            detail: text(detail),
        })
        .map_err(|_| RpcError::Refused)
    }
}

const _: () = assert!(FILE_CHUNK >= 512);

fn init() -> Result<(), &'static str> {
    files::export(&FS).map_err(|_| "cannot export Files")?;
    let (major, minor, patch) = runtime::version();
    runtime::println!("fs {major}.{minor}.{patch} ready (the volume is mounted on the first call)");
    Ok(())
}

runtime::entry!(init);
