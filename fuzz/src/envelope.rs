//! The signed envelope on its own, and `verify` end to end.

use crate::Outcome;
use ed25519_dalek::Signer;
use loader::envelope::{assemble, statement, EnvelopeError, HEADER_LEN, MAX_ELF_LEN, MAX_MANIFEST_LEN, SIGNATURE_LEN};
use loader::{ElfImage, Envelope, Keyring, LoadError, Manifest, Revocations, ENVELOPE_OVERHEAD, MAGIC};

/// `Envelope::parse`: an accepted envelope is exactly header ‖ manifest ‖ ELF ‖ signature
/// with lengths within the limits, its statement is the documented bytes, and `assemble`
/// rebuilds it; a refusal tells the truth about the bytes.
pub fn envelope(data: &[u8]) -> Outcome {
    match Envelope::parse(data) {
        Ok(env) => {
            let (m, e) = (env.manifest.len(), env.elf.len());
            assert!(m <= MAX_MANIFEST_LEN as usize && e <= MAX_ELF_LEN as usize, "lengths {m}, {e} past the limits");
            assert_eq!(data.len(), ENVELOPE_OVERHEAD + m + e, "an envelope is exactly its parts");
            assert_eq!(env.key_id[..], data[20..52]);
            assert_eq!(env.elf_digest[..], data[52..84]);
            assert_eq!(env.manifest, &data[HEADER_LEN..HEADER_LEN + m]);
            assert_eq!(env.elf, &data[HEADER_LEN + m..HEADER_LEN + m + e]);
            assert_eq!(env.signature[..], data[data.len() - SIGNATURE_LEN..]);
            // The signed statement: the header without the key id, then the manifest.
            assert_eq!(env.statement(), [&data[..20], &data[52..HEADER_LEN + m]].concat());
            // `assemble` gives the same bytes, with the ELF's true digest.
            let rebuilt = assemble(env.manifest, env.elf, &env.key_id, &env.signature);
            assert_eq!(rebuilt.len(), data.len());
            assert_eq!(rebuilt[..52], data[..52]);
            assert_eq!(rebuilt[52..84], loader::sha256(env.elf));
            assert_eq!(rebuilt[84..], data[84..]);
            Outcome::Accepted
        }
        Err(err) => {
            match err {
                EnvelopeError::Truncated { need, have } => assert!(have == data.len() && need > have, "{err:?}"),
                EnvelopeError::BadMagic => assert_ne!(data[..8], MAGIC),
                EnvelopeError::UnsupportedVersion(v) => assert_eq!(v.to_le_bytes(), data[8..10]),
                EnvelopeError::ReservedNotZero => assert_ne!(data[10..12], [0, 0]),
                EnvelopeError::LengthOverflow { value, max, .. } => assert!(value > max, "{err:?}"),
                EnvelopeError::TrailingBytes { extra } => assert!(extra > 0 && extra <= data.len() - ENVELOPE_OVERHEAD, "{err:?}"),
            }
            Outcome::Refused
        }
    }
}

/// `verify` against a keyring holding only the corpus key: it agrees with the envelope's
/// parts; then the same parts signed with the corpus key (so the fuzzer gets past the
/// signature) verify exactly when the manifest decodes and the ELF validates, with the
/// first failing part's error, and revoking the key or the digest refuses them.
pub fn verify(data: &[u8]) -> Outcome {
    let key = crate::corpus_key();
    let mut ring = Keyring::new();
    let key_id = ring.add(key.verifying_key().to_bytes()).expect("the corpus key is a valid point");
    let none = Revocations::default();
    let parsed = Envelope::parse(data);
    let verified = loader::verify(data, &ring, &none);
    match (&verified, &parsed) {
        (Ok(v), Ok(env)) => {
            assert_eq!(v.key_id, key_id);
            assert_eq!(v.elf_digest, loader::sha256(env.elf));
            assert_eq!(Manifest::decode(env.manifest).as_ref(), Ok(&v.manifest));
            assert_eq!(v.elf.bytes(), env.elf);
        }
        (Ok(_), Err(e)) => panic!("verify accepted an envelope its parser refuses ({e:?})"),
        (Err(got), Err(e)) => assert_eq!(*got, LoadError::from(e.clone())),
        (Err(_), Ok(_)) => {}
    }
    if let Ok(env) = parsed {
        let digest = loader::sha256(env.elf);
        let signature = key.sign(&statement(env.manifest, env.elf.len() as u32, &digest));
        let signed = assemble(env.manifest, env.elf, &key_id, &signature.to_bytes());
        let expected = Manifest::decode(env.manifest)
            .map_err(LoadError::InvalidManifest)
            .and_then(|m| ElfImage::parse(env.elf).map(|_| m).map_err(LoadError::InvalidElf));
        let got = loader::verify(&signed, &ring, &none).map(|v| v.manifest);
        assert_eq!(got, expected, "verify of the re-signed parts");
        if got.is_ok() {
            let revoked_key = Revocations {
                keys: vec![key_id],
                ..Revocations::default()
            };
            assert_eq!(loader::verify(&signed, &ring, &revoked_key).err(), Some(LoadError::RevokedKey(key_id)));
            let revoked_digest = Revocations {
                digests: vec![digest],
                ..Revocations::default()
            };
            assert_eq!(loader::verify(&signed, &ring, &revoked_digest).err(), Some(LoadError::RevokedDigest(digest)));
            assert_eq!(loader::verify(&signed, &Keyring::new(), &none).err(), Some(LoadError::UnknownKey(key_id)));
        }
    }
    Outcome::of(verified.is_ok())
}
