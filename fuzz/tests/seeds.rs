//! Replays every seed in `corpus/<target>/` through its target's check, on stable Rust (no
//! libFuzzer): the properties are exercised in every `cargo xtask test`, and the seeds stay
//! what they claim to be. A seed whose file name starts with `bad-` must be refused by its
//! parser; a `crash-*` seed (an input that once broke a property, kept as a regression
//! test) may be either; every other seed must be accepted (a real artifact or a valid edge
//! case), so a format change that makes the seeds stale fails here until
//! `cargo xtask fuzz --seed` regenerates them.

use qvq_fuzz::{Outcome, TARGETS};
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = corpus().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (make it with `cargo xtask fuzz --seed`)", dir.display()))
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_passes_its_targets_check() {
    let mut stale = Vec::new();
    let mut total = 0;
    for t in TARGETS {
        let files = seeds(t.name);
        assert!(files.len() >= 3, "corpus/{} has {} seeds; expected a handful", t.name, files.len());
        for path in files {
            let bytes = std::fs::read(&path).expect("a readable seed");
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let want = match name {
                n if n.starts_with("bad-") => Some(Outcome::Refused),
                n if n.starts_with("crash-") => None,
                _ => Some(Outcome::Accepted),
            };
            // The check itself panics (failing this test) if a property breaks.
            let got = (t.check)(&bytes);
            if let Some(want) = want.filter(|w| *w != got) {
                stale.push(format!("corpus/{}/{name}: {got:?}, expected {want:?}", t.name));
            }
            total += 1;
        }
    }
    assert!(
        stale.is_empty(),
        "seeds no longer what their names say (regenerate with `cargo xtask fuzz --seed`):\n{}",
        stale.join("\n")
    );
    println!("{total} seeds replayed through {} targets", TARGETS.len());
}

#[test]
fn every_corpus_has_a_fuzz_target_and_every_check_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(corpus()).expect("corpus/ exists") {
        let name = entry.expect("a readable directory entry").file_name().to_string_lossy().to_string();
        let file = root.join("fuzz_targets").join(format!("{name}.rs"));
        assert!(file.exists(), "corpus/{name} belongs to no fuzz target ({} is missing)", file.display());
    }
    for t in TARGETS {
        let file = root.join("fuzz_targets").join(format!("{}.rs", t.name));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("qvq_fuzz::{}(data)", t.name)),
            "{} does not call its check",
            file.display()
        );
    }
}

#[test]
fn the_corpus_key_is_the_one_the_signed_seeds_use() {
    let id = loader::envelope::key_id(&qvq_fuzz::corpus_key().verifying_key().to_bytes());
    for seed in seeds("verify").iter().filter(|p| !p.to_string_lossy().contains("bad-")) {
        let bytes = std::fs::read(seed).expect("a readable seed");
        let env = loader::Envelope::parse(&bytes).expect("a good verify seed parses");
        assert_eq!(env.key_id, id, "{} is signed by another key", seed.display());
    }
}
