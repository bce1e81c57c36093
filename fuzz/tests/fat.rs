//! The FS domain's FAT code against volumes made and checked by independent tools:
//! dosfstools' `mkfs.fat` makes them, `fsck.fat -n` checks what the code wrote, and
//! mtools reads the files back. (`cargo xtask test` installs both packages.)

use qvq_fuzz::fat::{FsError, Volume};
use qvq_fuzz::MemDisk;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qvq-fat-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (install dosfstools and mtools)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh image of `mib` MiB formatted by mkfs.fat with `args`.
fn mkfs(name: &str, mib: u64, args: &[&str]) -> PathBuf {
    let path = scratch(name);
    let _ = std::fs::remove_file(&path);
    run(Command::new("mkfs.fat").args(args).arg("-C").arg(&path).arg((mib * 1024).to_string()));
    path
}

fn mount(path: &Path) -> Volume<MemDisk> {
    Volume::mount(MemDisk::new(std::fs::read(path).unwrap())).expect("mounts")
}

fn save(v: Volume<MemDisk>, path: &Path) {
    std::fs::write(path, v.into_disk().bytes).unwrap();
}

/// `fsck.fat -n` finds nothing to fix.
fn fsck_clean(path: &Path) {
    let out = Command::new("fsck.fat").arg("-n").arg(path).output().expect("fsck.fat (install dosfstools)");
    assert!(
        out.status.success(),
        "fsck.fat -n found errors:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mtype(path: &Path, file: &str) -> Vec<u8> {
    let out = Command::new("mtype")
        .args(["-i"])
        .arg(path)
        .arg(format!("::{file}"))
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "mtype {file}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn fat16_files_written_here_read_back_in_mtools_and_pass_fsck() {
    let img = mkfs("f16.img", 16, &["-F", "16"]);
    let mut v = mount(&img);
    assert_eq!(v.geometry().kind, qvq_fuzz::fat::layout::FatKind::Fat16);
    v.write("/hello.txt", 0, b"hello from qvq\n").unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    v.write("/BIG.BIN", 0, &big).unwrap();
    v.mkdir("/docs").unwrap();
    v.write("/docs/NOTE.TXT", 0, b"first").unwrap();
    v.write("/docs/NOTE.TXT", 5, b", second").unwrap();
    let mut out = vec![0u8; 200_000];
    assert_eq!(v.read("/BIG.BIN", 0, &mut out), Ok(100_000));
    assert_eq!(&out[..100_000], &big[..]);
    let names: Vec<String> = v.list("/").unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["hello.txt", "BIG.BIN", "docs"]);
    save(v, &img);
    fsck_clean(&img);
    assert_eq!(mtype(&img, "/hello.txt"), b"hello from qvq\n");
    assert_eq!(mtype(&img, "/docs/note.txt"), b"first, second");
    assert_eq!(mtype(&img, "/BIG.BIN"), big);
}

#[test]
fn fat32_works_the_same() {
    let img = mkfs("f32.img", 40, &["-F", "32", "-s", "1"]);
    let mut v = mount(&img);
    assert_eq!(v.geometry().kind, qvq_fuzz::fat::layout::FatKind::Fat32);
    for i in 0..40 {
        v.write(&format!("/FILE{i}.TXT"), 0, format!("file number {i}").as_bytes()).unwrap();
    }
    v.mkdir("/SUB").unwrap();
    v.write("/SUB/X", 0, &[1u8; 5000]).unwrap();
    v.remove("/FILE3.TXT").unwrap();
    v.truncate("/SUB/X", 10).unwrap();
    assert_eq!(v.stat("/sub/x").map(|s| s.size), Ok(10));
    save(v, &img);
    fsck_clean(&img);
    assert_eq!(mtype(&img, "/FILE39.TXT"), b"file number 39");
    assert_eq!(mtype(&img, "/SUB/X"), [1u8; 10]);
}

#[test]
fn files_copied_in_by_mtools_with_long_names_are_found_by_them() {
    let img = mkfs("lfn.img", 16, &["-F", "16"]);
    let src = scratch("long source name.txt");
    std::fs::write(&src, b"long names work").unwrap();
    run(Command::new("mcopy")
        .arg("-i")
        .arg(&img)
        .arg(&src)
        .arg("::/A Long File Name.txt")
        .env("MTOOLS_SKIP_CHECK", "1"));
    let mut v = mount(&img);
    let list = v.list("/").unwrap();
    assert_eq!(list[0].name, "A Long File Name.txt");
    let mut out = [0u8; 64];
    assert_eq!(v.read("/a long file name.TXT", 0, &mut out), Ok(15));
    v.remove("/A Long File Name.txt").unwrap();
    save(v, &img);
    fsck_clean(&img);
}

#[test]
fn an_mbr_partition_is_found() {
    // A 1 MiB gap, then a FAT16 partition made by mkfs.fat at that offset.
    let part = mkfs("part.img", 16, &["-F", "16"]);
    let mut disk = vec![0u8; 1 << 20];
    disk.extend(std::fs::read(&part).unwrap());
    let e = 446;
    disk[e + 4] = 0x0e;
    disk[e + 8..e + 12].copy_from_slice(&2048u32.to_le_bytes());
    disk[e + 12..e + 16].copy_from_slice(&((16u32 << 20) / 512).to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xaa;
    let mut v = Volume::mount(MemDisk::new(disk)).expect("mounts the partition");
    assert_eq!(v.geometry().start, 2048);
    v.write("/IN.TXT", 0, b"inside").unwrap();
    let bytes = v.into_disk().bytes;
    let back = scratch("part-back.img");
    std::fs::write(&back, &bytes[1 << 20..]).unwrap();
    fsck_clean(&back);
    assert_eq!(mtype(&back, "/IN.TXT"), b"inside");
}

#[test]
fn hostile_paths_and_names_are_refused_with_their_reason() {
    let img = mkfs("paths.img", 16, &["-F", "16"]);
    let mut v = mount(&img);
    let long = "x".repeat(256);
    for (path, want) in [
        ("/../etc", "`.` and `..`"),
        ("/a/./b", "`.` and `..`"),
        ("//a", "an empty part"),
        ("/a/", "an empty part"),
        ("/a\u{1}b", "control character"),
        ("/a:b", "control character or one of"),
        (long.as_str(), "longer than 255"),
    ] {
        match v.write(path, 0, b"x") {
            Err(FsError::BadPath(why)) => assert!(why.contains(want), "{path:?}: {why}"),
            other => panic!("{path:?}: {other:?}"),
        }
    }
    for name in ["/toolongname.txt", "/a.text", "/a.b.c", "/.hidden", "/sp ace", "/é.txt"] {
        assert_eq!(v.write(name, 0, b"x"), Err(FsError::NotShortName), "{name}");
    }
    assert_eq!(v.write("/", 0, b"x"), Err(FsError::IsRoot));
    assert_eq!(v.remove("/"), Err(FsError::IsRoot));
    assert_eq!(v.write("/NODIR/A.TXT", 0, b"x"), Err(FsError::NotFound));
    v.write("/F.TXT", 0, b"abc").unwrap();
    assert_eq!(v.write("/F.TXT", 4, b"x"), Err(FsError::BadOffset), "no holes");
    assert_eq!(v.write("/F.TXT/G", 0, b"x"), Err(FsError::NotADirectory));
    v.mkdir("/D").unwrap();
    v.write("/D/E", 0, b"e").unwrap();
    assert_eq!(v.remove("/D"), Err(FsError::DirectoryNotEmpty));
    assert_eq!(v.mkdir("/d"), Err(FsError::AlreadyExists));
    save(v, &img);
    fsck_clean(&img);
}

#[test]
fn usage_counts_clusters_taken_and_given_back() {
    let img = mkfs("df.img", 16, &["-F", "16"]);
    let mut v = mount(&img);
    let (total, free0) = v.usage().unwrap();
    assert!(total > 15 << 20 && free0 <= total);
    v.write("/A", 0, &vec![0u8; 64 * 1024]).unwrap();
    let (_, free1) = v.usage().unwrap();
    assert_eq!(free0 - free1, 64 * 1024);
    v.remove("/A").unwrap();
    assert_eq!(v.usage().unwrap().1, free0);
}

/// One operation of the crash test's sequence.
type Operation = Box<dyn Fn(&mut Volume<MemDisk>) -> Result<(), FsError>>;

/// Each step of a sequence of operations, cut short after every possible number of disk
/// writes (a crash of the domain between two batches): the volume always passes fsck, and
/// every operation that returned before the cut is there.
#[test]
fn a_crash_between_any_two_disk_writes_leaves_a_clean_volume_with_every_acknowledged_write() {
    let img = mkfs("crash.img", 16, &["-F", "16"]);
    let pristine = std::fs::read(&img).unwrap();
    let ops: Vec<Operation> = vec![
        Box::new(|v| v.write("/A.TXT", 0, b"one")),
        Box::new(|v| v.mkdir("/DIR")),
        Box::new(|v| v.write("/DIR/B.BIN", 0, &vec![2u8; 20_000])),
        Box::new(|v| v.write("/A.TXT", 3, b", two")),
        Box::new(|v| v.truncate("/DIR/B.BIN", 100)),
        Box::new(|v| v.remove("/A.TXT")),
        Box::new(|v| v.write("/C.TXT", 0, b"three")),
    ];
    let mut cut = 0;
    loop {
        let mut disk = MemDisk::new(pristine.clone());
        disk.writes_left = Some(cut);
        let mut v = Volume::mount(disk).unwrap();
        let done = ops.iter().take_while(|op| op(&mut v).is_ok()).count();
        let bytes = v.into_disk().bytes;
        let path = scratch("crash-cut.img");
        std::fs::write(&path, &bytes).unwrap();
        fsck_clean(&path);
        let mut v = mount(&path);
        let mut buf = [0u8; 64];
        if (1..4).contains(&done) {
            assert_eq!(v.read("/A.TXT", 0, &mut buf), Ok(3), "cut {cut}");
        }
        if done >= 3 {
            assert_eq!(v.stat("/DIR/B.BIN").map(|s| s.size), Ok(if done >= 5 { 100 } else { 20_000 }), "cut {cut}");
        }
        if (4..6).contains(&done) {
            assert_eq!(v.read("/A.TXT", 0, &mut buf), Ok(8), "cut {cut}");
        }
        if done >= 6 {
            assert_eq!(v.stat("/A.TXT"), Err(FsError::NotFound), "cut {cut}");
        }
        if done == ops.len() {
            assert_eq!(v.read("/C.TXT", 0, &mut buf), Ok(5));
            break;
        }
        cut += 1;
    }
    assert!(cut > ops.len(), "some operations took more than one write ({cut} cuts)");
}
