//! `qvq-initrd pack | list | extract`, and its exit statuses.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qvq-initrd")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn pack_list_extract_round_trip() {
    let dir = std::env::temp_dir().join(format!("qvq-initrd-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.qvd"), dir.join("b.qvd"));
    std::fs::write(&a, b"first entry").unwrap();
    std::fs::write(&b, vec![0x5a; 1000]).unwrap();
    let img = dir.join("initrd.img");
    let o = run(&["pack", "-o", img.to_str().unwrap(), a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["list", img.to_str().unwrap()]);
    assert!(o.status.success());
    let listing = text(&o);
    assert!(
        listing.contains("a.qvd") && listing.contains("11") && listing.contains("b.qvd") && listing.contains("1000"),
        "{listing}"
    );
    let out = dir.join("out");
    assert!(run(&["extract", img.to_str().unwrap(), out.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read(out.join("a.qvd")).unwrap(), b"first entry");
    assert_eq!(std::fs::read(out.join("b.qvd")).unwrap(), vec![0x5a; 1000]);

    // A corrupted archive is refused with the specific reason, and nothing is extracted.
    let mut bytes = std::fs::read(&img).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 1;
    let bad = dir.join("bad.img");
    std::fs::write(&bad, bytes).unwrap();
    let o = run(&["extract", bad.to_str().unwrap(), dir.join("out2").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("data CRC mismatch"), "{}", text(&o));
    assert!(!dir.join("out2").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["unpack"]).status.code(), Some(2));
    assert_eq!(run(&["pack"]).status.code(), Some(2));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    assert_eq!(run(&["list", "/nonexistent/initrd.img"]).status.code(), Some(1));
}

/// `qvq-initrd list | head -c 1`: the reader takes one byte of a listing far larger than a
/// pipe holds, then closes the pipe; the listing's next write fails with EPIPE.
#[test]
fn a_reader_closing_the_pipe_early_gets_no_panic() {
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("qvq-initrd-pipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let entries: Vec<(String, Vec<u8>)> = (0..2400).map(|i| (format!("{i:0>250}.qvd"), vec![1])).collect();
    let img = dir.join("big.img");
    std::fs::write(&img, initrd::pack(&entries).unwrap()).unwrap();
    let listing = run(&["list", img.to_str().unwrap()]);
    assert!(
        listing.stdout.len() > 512 << 10,
        "{} bytes is not much more than a 64 KiB pipe holds",
        listing.stdout.len()
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_qvq-initrd"))
        .args(["list", img.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    stdout.read_exact(&mut one).unwrap();
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "qvq-initrd printed on standard error");

    // Before the pipe was ever read: the same.
    let small = dir.join("small.img");
    std::fs::write(&small, initrd::pack(&entries[..20]).unwrap()).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_qvq-initrd"))
        .args(["extract", small.to_str().unwrap(), dir.join("out").to_str().unwrap()])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stderr).as_ref()), (Some(0), ""));
    assert_eq!(std::fs::read_dir(dir.join("out")).unwrap().count(), 20, "extract did its work all the same");
    std::fs::remove_dir_all(&dir).unwrap();
}
