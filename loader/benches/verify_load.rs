//! `cargo bench -p loader`: verify and load (relocate) a 64 KiB and a 1 MiB domain.
//! The cost should be linear: one SHA-256 pass, one Ed25519 verification, one pass over
//! the relocations, one copy.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ed25519_dalek::{Signer, SigningKey};
use loader::envelope::{assemble, key_id, statement};
use loader::manifest::{Manifest, RestartPolicy, Version};
use loader::{verify, Keyring, Revocations};

#[path = "../src/testkit.rs"]
#[allow(dead_code)]
mod testkit;

fn envelope(size: usize, key: &SigningKey) -> Vec<u8> {
    // One relocation per 64 bytes of image, a typical density for Rust code with vtables.
    let elf = testkit::build(size, size / 64, 4096).bytes;
    let manifest = Manifest {
        name: "bench".into(),
        version: Version { major: 1, minor: 0, patch: 0 },
        exports: vec![],
        imports: vec![],
        devices: vec![],
        heap_limit: 1 << 20,
        stack_size: 1 << 16,
        shared_heap_limit: 256 << 10,
        max_threads: 16,
        max_events: 64,
        restart: RestartPolicy::Restart,
        toolchain: "bench".into(),
        safe_rust_checked: true,
        min_version: Default::default(),
        downgrade: false,
    }
    .encode()
    .unwrap();
    let sig = key.sign(&statement(&manifest, elf.len() as u32, &loader::sha256(&elf)));
    assemble(&manifest, &elf, &key_id(&key.verifying_key().to_bytes()), &sig.to_bytes())
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[42; 32]);
    let mut ring = Keyring::new();
    ring.add(key.verifying_key().to_bytes()).unwrap();
    let revoked = Revocations::default();
    let mut group = c.benchmark_group("verify+load");
    for (label, size) in [("64KiB", 64 << 10), ("1MiB", 1 << 20)] {
        let env = envelope(size, &key);
        let mut mem = vec![0u8; size + (1 << 20)];
        group.throughput(Throughput::Bytes(env.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &env, |b, env| {
            b.iter(|| {
                let d = verify(env, &ring, &revoked).unwrap();
                d.elf.load_into(&mut mem, 0x4000_0000).unwrap().len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
