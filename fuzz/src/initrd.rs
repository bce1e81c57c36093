//! The initrd archive reader.

use crate::Outcome;
use initrd::{Archive, Entry, ALIGN, MAX_NAME_LEN};

/// Entries whose `find` is checked (each `find` walks the archive again).
const FIND_CHECKED: usize = 16;

/// `Archive::parse`: an accepted archive iterates to `len()` entries, each a valid unique
/// name and a slice of the input at an aligned offset; `find` returns each; and the format
/// is canonical: `pack` of the entries gives back the input byte for byte.
pub fn initrd(data: &[u8]) -> Outcome {
    let Ok(archive) = Archive::parse(data) else {
        return Outcome::Refused;
    };
    let entries: Vec<Entry> = archive.entries().collect();
    assert_eq!(entries.len(), archive.len());
    assert_eq!(archive.is_empty(), entries.is_empty());
    for (i, e) in entries.iter().enumerate() {
        assert!(
            !e.name.is_empty() && e.name.len() <= MAX_NAME_LEN && !e.name.contains(['/', '\0']),
            "name {:?}",
            e.name
        );
        assert_eq!(e.data_offset % ALIGN, 0);
        assert_eq!(data.get(e.data_offset..e.data_offset + e.data.len()), Some(e.data));
        assert!(entries[..i].iter().all(|earlier| earlier.name != e.name), "{:?} twice", e.name);
        if i < FIND_CHECKED {
            assert_eq!(archive.find(e.name), Some(*e));
        }
    }
    let pairs: Vec<(&str, &[u8])> = entries.iter().map(|e| (e.name, e.data)).collect();
    let repacked = initrd::pack(&pairs).expect("the entries of a valid archive can be packed");
    assert!(repacked == data, "pack(parse(x)) != x: the archive format is not canonical");
    Outcome::Accepted
}
