//! Plain data types that cross domains inside `RRef`s.

use crate::rref::{RRefable, Zeroable};

/// Up to 248 bytes of text.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Text {
    pub len: u32,
    pub bytes: [u8; 248],
}

// SAFETY: plain bytes and an integer: no references, no pointers.
unsafe impl RRefable for Text {}

impl Text {
    pub const CAPACITY: usize = 248;

    /// The first up-to-248 bytes of `s`, and how many were taken.
    pub fn from_bytes(s: &[u8]) -> (Text, usize) {
        let n = s.len().min(Self::CAPACITY);
        let mut t = Text {
            len: n as u32,
            bytes: [0; 248],
        };
        t.bytes[..n].copy_from_slice(&s[..n]);
        (t, n)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(Self::CAPACITY)]
    }
}

/// Eight numbers, for the RRef-moving test call.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Numbers(pub [u64; 8]);

// SAFETY: integers only.
unsafe impl RRefable for Numbers {}

/// One domain as the kernel sees it, for the shell's `domains` command.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DomainInfo {
    pub id: u32,
    /// 0 running, 1 crashed, 2 rejected, 3 held, 4 preparing (a version being swapped in),
    /// 5 retired (swapped out).
    pub state: u32,
    pub name: [u8; 32],
    pub version: [u32; 3],
    pub key_id: [u8; 8],
    pub calls_served: u64,
    pub restarts: u32,
    pub generation: u32,
    /// Its private heap (the manifest's limit), and what it owns on the shared heap.
    pub heap_bytes: u64,
    pub shared_bytes: u64,
}

// SAFETY: integers and byte arrays only.
unsafe impl RRefable for DomainInfo {}

impl DomainInfo {
    pub fn name(&self) -> &str {
        let n = self.name.iter().position(|&b| b == 0).unwrap_or(32);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
    pub fn state_name(&self) -> &'static str {
        match self.state {
            0 => "running",
            1 => "crashed",
            2 => "rejected",
            3 => "held",
            4 => "preparing",
            _ => "retired",
        }
    }
}

/// The outcome of a hot swap, for the shell's `swap` command.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SwapReport {
    /// 1 if the new version now serves; 0 if the swap was refused (the old one still serves).
    pub swapped: u32,
    pub _pad: u32,
    /// Instructions (PMU cycles) from blocking the callee's slots to releasing the callers.
    pub window_instructions: u64,
    /// Instructions from the request to the new version serving (verification included).
    pub total_instructions: u64,
    /// What happened, or why the swap was refused.
    pub message: Text,
}

// SAFETY: integers and text bytes only.
unsafe impl RRefable for SwapReport {}

/// A domain's state, handed by one version to the next in a hot swap. The hash names the
/// type: both versions must use the same one, or the kernel refuses the swap.
///
/// # Safety
/// Implemented only by [`swap_state!`] here, for plain data declared in this crate.
pub unsafe trait SwapState: RRefable {
    const HASH: [u8; 32];
}

/// Declares a swap-state type: a `#[repr(C)]` plain-data struct whose hash covers its
/// name and fields (so two versions agree on it only if they declare the same layout).
macro_rules! swap_state {
    ($(#[$doc:meta])* pub struct $name:ident { $( $(#[$fdoc:meta])* pub $field:ident : $ty:ty ),* $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy)]
        pub struct $name { $( $(#[$fdoc])* pub $field: $ty ),* }

        // SAFETY: every field is itself `RRefable` (checked below).
        unsafe impl RRefable for $name {}
        // SAFETY: declared through this macro.
        unsafe impl SwapState for $name {
            const HASH: [u8; 32] = crate::sha256::sha256_compact(stringify!($name { $($field : $ty),* }));
        }
        const _: fn() = || {
            fn plain<T: RRefable>() {}
            $( plain::<$ty>(); )*
        };
    };
}

swap_state! {
    /// The test domain's state: pings served so far.
    pub struct HelloState {
        pub served: u64,
    }
}

swap_state! {
    /// A different state type, used only by the test fixture that must be refused for
    /// declaring a state the running `hello` does not export.
    pub struct HelloCounters {
        pub pings: u64,
        pub sums: u64,
    }
}

swap_state! {
    /// The console driver's state: received bytes no reader has taken yet, oldest first.
    pub struct ConsoleState {
        pub len: u32,
        pub bytes: [u8; 512],
    }
}
// SAFETY: a u32 and a byte array: all-zero bytes are a valid value (no unread input).
unsafe impl Zeroable for ConsoleState {}

/// The growth bench's swap states (`domains/growth`): one type per state size, so the
/// bench measures the hot-swap window against the bytes handed over. Each is made in
/// place on the shared heap (`runtime::swap::keep_state_in_place`), never on a stack.
macro_rules! growth_states {
    ($($name:ident = $n:literal),*) => { $(
        swap_state! {
            /// A growth-bench state of this many bytes.
            pub struct $name {
                pub bytes: [u8; $n],
            }
        }
        // SAFETY: a byte array: all-zero bytes are a valid value.
        unsafe impl crate::rref::Zeroable for $name {}
    )* };
}
growth_states!(
    GrowthState8 = 8,
    GrowthState64 = 64,
    GrowthState512 = 512,
    GrowthState4k = 4096,
    GrowthState64k = 65536
);

/// Bytes in one block of the `Block` interface.
pub const BLOCK_SIZE: usize = 4096;
/// Requests in one `BlockBatch`.
pub const BLOCK_BATCH: usize = 32;

/// A block device's size and what it can do.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct BlockInfo {
    /// Blocks of `BLOCK_SIZE` bytes.
    pub blocks: u64,
    pub block_size: u32,
    /// 1 if writes are refused.
    pub read_only: u32,
    /// 1 if `flush` reaches stable storage (otherwise it succeeds at once).
    pub can_flush: u32,
    /// Requests one `submit` takes at most (`BLOCK_BATCH`).
    pub max_batch: u32,
}

// SAFETY: integers only.
unsafe impl RRefable for BlockInfo {}

/// What a block request asks.
pub mod block_op {
    pub const READ: u32 = 0;
    pub const WRITE: u32 = 1;
    pub const FLUSH: u32 = 2;
}

/// How a block request ended.
pub mod block_status {
    pub const OK: u32 = 0;
    /// The device reported an error.
    pub const IO_ERROR: u32 = 1;
    /// An op the device does not have (a write to a read-only device, an unknown op).
    pub const UNSUPPORTED: u32 = 2;
    /// The block number is past the end of the device.
    pub const OUT_OF_RANGE: u32 = 3;
    /// Not run (past `count`, or the batch was cut short).
    pub const NOT_DONE: u32 = 4;
    /// The device's answer made no sense (a bad length, an unknown status byte).
    pub const BAD_ANSWER: u32 = 5;
}

/// One request: `op` on block `lba` with `data` (written from, or read into).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockRequest {
    pub op: u32,
    /// Filled in by the driver: a `block_status` value.
    pub status: u32,
    pub lba: u64,
    pub data: [u8; BLOCK_SIZE],
}

// SAFETY: integers and bytes only.
unsafe impl RRefable for BlockRequest {}
// SAFETY: integers and bytes: all-zero is valid.
unsafe impl Zeroable for BlockRequest {}

/// A batch of block requests, moved to the driver and back as one `RRef` (as RedLeaf's
/// `submit_and_poll_rref` moves its deque). Make one with `RRef::try_new_zeroed`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockBatch {
    /// How many of `requests` to run, from the first (at most `BLOCK_BATCH`).
    pub count: u32,
    pub _pad: u32,
    pub requests: [BlockRequest; BLOCK_BATCH],
}

// SAFETY: plain data.
unsafe impl RRefable for BlockBatch {}
// SAFETY: all-zero is valid.
unsafe impl Zeroable for BlockBatch {}

/// The largest signed envelope a domain can hand the kernel for a swap (`Kernel::
/// swap_envelope`): 192 KiB, three times the largest domain QvQ builds (the shell).
pub const ENVELOPE_MAX: usize = 192 * 1024;

/// A signed domain envelope (`loader/FORMAT.md`) a domain read from somewhere (the disk)
/// and hands the kernel: the kernel verifies it exactly as an initrd entry or a host push.
/// Make one with `RRef::try_new_zeroed`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Envelope {
    /// Bytes of `bytes` in use (at most `ENVELOPE_MAX`; more is refused).
    pub len: u32,
    pub _pad: u32,
    pub bytes: [u8; ENVELOPE_MAX],
}

// SAFETY: an integer and bytes only.
unsafe impl RRefable for Envelope {}
// SAFETY: all-zero is valid.
unsafe impl Zeroable for Envelope {}

/// Pins of the BCM2835 GPIO block (`Gpio`): 0 to 53.
pub const GPIO_PINS: u32 = 54;

/// A pin's function, as the BCM2835's GPFSEL registers encode it (3 bits a pin).
pub mod gpio_function {
    pub const INPUT: u32 = 0;
    pub const OUTPUT: u32 = 1;
    pub const ALT0: u32 = 4;
    pub const ALT1: u32 = 5;
    pub const ALT2: u32 = 6;
    pub const ALT3: u32 = 7;
    pub const ALT4: u32 = 3;
    pub const ALT5: u32 = 2;

    /// The function's name ("input", "output", "alt0"...); `None` past 7.
    pub fn name(function: u32) -> Option<&'static str> {
        Some(match function {
            INPUT => "input",
            OUTPUT => "output",
            ALT0 => "alt0",
            ALT1 => "alt1",
            ALT2 => "alt2",
            ALT3 => "alt3",
            ALT4 => "alt4",
            ALT5 => "alt5",
            _ => return None,
        })
    }
}

/// A pin's pull resistor, as the BCM2835's GPPUD register encodes it.
pub mod gpio_pull {
    pub const NONE: u32 = 0;
    pub const DOWN: u32 = 1;
    pub const UP: u32 = 2;
}

/// Why the GPIO driver refused a request. A `Gpio` method answers an `i64`: its result
/// (0 or more), or minus one of these codes; `GpioError::read` splits the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpioError {
    /// Not a pin: the BCM2835 has pins 0 to 53.
    NoSuchPin = 1,
    /// The system uses the pin (`Gpio::user` says who); it is not the caller's to change.
    SystemPin = 2,
    /// A function the driver does not offer: only input and output (an alternate
    /// function would hand the pin to a peripheral the driver cannot vouch for).
    FunctionRefused = 3,
    /// Not a pull setting (`gpio_pull`: 0 none, 1 down, 2 up).
    NoSuchPull = 4,
    /// The driver answered something that is neither a result nor one of these codes.
    BadAnswer = 5,
}

impl GpioError {
    /// What a `Gpio` method answers for this refusal.
    pub const fn answer(self) -> i64 {
        -(self as i64)
    }

    /// A `Gpio` method's answer: the result, or why it was refused. Any other value (a
    /// buggy or hostile driver's) is `BadAnswer`.
    pub fn read(answer: i64) -> Result<u32, GpioError> {
        match answer {
            0.. => u32::try_from(answer).map_err(|_| GpioError::BadAnswer),
            -1 => Err(GpioError::NoSuchPin),
            -2 => Err(GpioError::SystemPin),
            -3 => Err(GpioError::FunctionRefused),
            -4 => Err(GpioError::NoSuchPull),
            _ => Err(GpioError::BadAnswer),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            GpioError::NoSuchPin => "no such pin (the BCM2835 has pins 0 to 53)",
            GpioError::SystemPin => "the system uses this pin",
            GpioError::FunctionRefused => "only input and output are offered (an alternate function would hand the pin to a peripheral)",
            GpioError::NoSuchPull => "not a pull setting (0 none, 1 down, 2 up)",
            GpioError::BadAnswer => "the driver's answer made no sense",
        }
    }
}

impl core::fmt::Display for GpioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.describe())
    }
}

/// How an `Entropy::fill` ended.
pub mod entropy_status {
    pub const OK: u32 = 0;
    /// `len` was more than `RandomBytes::CAPACITY`.
    pub const TOO_MANY: u32 = 1;
    /// The hardware had no word ready within the driver's bounded wait (its warm-up
    /// never ended, or it stopped producing).
    pub const NOT_READY: u32 = 2;
    /// Not filled: the value the caller sends, so a driver that never sets it is caught.
    pub const NOT_DONE: u32 = 3;
    /// The hardware gave the same 32-bit word twice in a row: the continuous test of
    /// FIPS 140-2 (4.9.2) says it is stuck, and its bytes are not handed out.
    pub const STUCK: u32 = 4;

    /// The status's meaning, for a caller's message.
    pub fn describe(status: u32) -> &'static str {
        match status {
            OK => "ok",
            TOO_MANY => "more bytes than one request holds",
            NOT_READY => "the hardware produced no random word in time (its warm-up never ended, or it stopped)",
            NOT_DONE => "the driver did not fill the request",
            STUCK => "the hardware repeated a word (the continuous test failed): its output is not random",
            _ => "an unknown status",
        }
    }
}

/// Random bytes from an `Entropy` driver: the caller sets `len`, the driver `status` and
/// the first `len` bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RandomBytes {
    pub len: u32,
    pub status: u32,
    pub bytes: [u8; 256],
}

// SAFETY: integers and bytes only.
unsafe impl RRefable for RandomBytes {}

impl RandomBytes {
    pub const CAPACITY: usize = 256;

    /// A request for `len` bytes (`status` NOT_DONE until a driver fills it).
    pub fn request(len: u32) -> RandomBytes {
        RandomBytes {
            len,
            status: entropy_status::NOT_DONE,
            bytes: [0; 256],
        }
    }
}

/// How a `Files` call ended: every answer of the interface carries one of these in its
/// `status`, and `describe` says it for a person (the FS domain's `FsError`, one code a
/// variant; `detail` in the answer adds the reason for `CORRUPT`, `UNSUPPORTED`,
/// `BAD_PATH` and `NO_DISK`).
pub mod fs_status {
    pub const OK: u32 = 0;
    /// The disk refused a read or write.
    pub const IO: u32 = 1;
    /// No FAT partition in the MBR and no FAT boot sector at sector 0.
    pub const NO_VOLUME: u32 = 2;
    /// The volume's structures contradict themselves (`detail`: which).
    pub const CORRUPT: u32 = 3;
    /// A volume the FS domain does not handle (`detail`: which kind).
    pub const UNSUPPORTED: u32 = 4;
    pub const NOT_FOUND: u32 = 5;
    pub const NOT_A_DIRECTORY: u32 = 6;
    pub const IS_A_DIRECTORY: u32 = 7;
    pub const ALREADY_EXISTS: u32 = 8;
    pub const DIRECTORY_NOT_EMPTY: u32 = 9;
    /// The path breaks a rule (`detail`: which).
    pub const BAD_PATH: u32 = 10;
    /// A name to create does not fit 8.3.
    pub const NOT_SHORT_NAME: u32 = 11;
    pub const NO_SPACE: u32 = 12;
    /// A write past the end of the file (no holes), or past 4 GiB - 1.
    pub const BAD_OFFSET: u32 = 13;
    pub const IS_ROOT: u32 = 14;
    pub const READ_ONLY: u32 = 15;
    /// `list`: the directory has no entry at that index (the listing's end).
    pub const NO_MORE_ENTRIES: u32 = 16;
    /// No block device to mount (`detail`: why: the driver is not running...).
    pub const NO_DISK: u32 = 17;
    /// The request itself is malformed: a chunk's `len` past its capacity.
    pub const BAD_REQUEST: u32 = 18;
    /// Not answered: the value a caller sends, so an FS domain that never sets it is caught.
    pub const NOT_DONE: u32 = 19;

    /// The status's meaning, for a caller's message (with `detail`, when there is one,
    /// after a colon).
    pub fn describe(status: u32) -> &'static str {
        match status {
            OK => "ok",
            IO => "the disk refused a read or write",
            NO_VOLUME => "no FAT volume: neither a FAT partition in the MBR nor a FAT boot sector at sector 0",
            CORRUPT => "the volume is corrupt",
            UNSUPPORTED => "not supported",
            NOT_FOUND => "no such file or directory",
            NOT_A_DIRECTORY => "a part of the path is a file, not a directory",
            IS_A_DIRECTORY => "it is a directory",
            ALREADY_EXISTS => "it exists already",
            DIRECTORY_NOT_EMPTY => "the directory is not empty",
            BAD_PATH => "bad path",
            NOT_SHORT_NAME => "new names must be 8.3: 1-8 letters, digits or $%'-_@~`!(){}^#&, optionally a dot and 1-3 more",
            NO_SPACE => "no space left (or FAT16's root directory is full)",
            BAD_OFFSET => "the offset is past the end of the file, or the file would pass 4 GiB",
            IS_ROOT => "not possible on the root directory",
            READ_ONLY => "the file is read-only",
            NO_MORE_ENTRIES => "no more entries",
            NO_DISK => "no disk",
            BAD_REQUEST => "a malformed request",
            NOT_DONE => "the file system did not answer the request",
            _ => "an unknown status",
        }
    }
}

/// Bytes in one `FileChunk` (what one `Files::read` or `write` moves).
pub const FILE_CHUNK: usize = 4096;

/// The answer of a `Files` call that changes the volume (`write`, `truncate`, `remove`,
/// `mkdir`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FsAnswer {
    /// An `fs_status` value.
    pub status: u32,
    pub _pad: u32,
    /// The reason, for the statuses that have one (else empty).
    pub detail: Text,
}

// SAFETY: integers and text bytes only.
unsafe impl RRefable for FsAnswer {}

/// What `Files::stat` and `Files::list` say about an entry.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileStat {
    pub status: u32,
    /// 1 for a directory.
    pub is_dir: u32,
    /// Bytes (0 for a directory).
    pub size: u64,
    /// The entry's name (its long name if it has one); 1 in `name_cut` if it had more
    /// than `Text::CAPACITY` bytes.
    pub name: Text,
    pub name_cut: u32,
    pub _pad: u32,
    pub detail: Text,
}

// SAFETY: integers and text bytes only.
unsafe impl RRefable for FileStat {}

/// File bytes, read (`Files::read` fills `len` and `bytes`) or to write (the caller does).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileChunk {
    pub status: u32,
    pub len: u32,
    pub bytes: [u8; FILE_CHUNK],
    pub detail: Text,
}

// SAFETY: integers and bytes only.
unsafe impl RRefable for FileChunk {}
// SAFETY: integers and bytes: all-zero is valid.
unsafe impl Zeroable for FileChunk {}

/// What `Files::usage` says (the shell's `df`): the data area's size and free bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FsUsage {
    pub status: u32,
    pub _pad: u32,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub detail: Text,
}

// SAFETY: integers and text bytes only.
unsafe impl RRefable for FsUsage {}
