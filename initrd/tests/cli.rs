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
