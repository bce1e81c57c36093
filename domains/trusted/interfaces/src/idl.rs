//! QvQ's IDL: every interface, in one `interfaces!` invocation (see `declare.rs`).
//!
//! A method's arguments and result are plain values (integers, `bool`, `char`, `()`) or
//! an `RRef` of a plain-data type from `types.rs`. The hash covers the interface's name and
//! every method's name, argument names and types and result type, not the doc comments:
//! renaming an argument changes the hash, and a domain that exports the old hash cannot be
//! swapped for one that exports the new one. `cargo xtask new-domain --export NAME` adds a
//! block here for a new interface.

use crate::*;

interfaces! {
    /// A character console. The PL011 driver domain exports it.
    pub mod console: Console {
        /// Writes `text` (its first `len` bytes).
        fn write(&self, text: RRef<Text>) -> RpcResult<()>;
        /// Waits for the next received byte.
        fn read_byte(&self) -> RpcResult<u8>;
    }

    /// The kernel's introspection and control interface, exported by the kernel itself.
    pub mod kernel: Kernel {
        fn domain_count(&self) -> RpcResult<u32>;
        fn domain_info(&self, index: u32) -> RpcResult<RRef<DomainInfo>>;
        fn free_frames(&self) -> RpcResult<u64>;
        /// Restarts domain `id` (crashed, held, or running) from its verified image.
        fn restart(&self, id: u32) -> RpcResult<()>;
        /// Fault injection: domain `id` crashes now, as if it had panicked.
        fn crash(&self, id: u32) -> RpcResult<()>;
        fn poweroff(&self, status: u32) -> RpcResult<()>;
        /// Hot-swaps domain `name` for initrd entry `entry` (empty: the newest entry
        /// newer than the running version). A lower version goes in only if its signed
        /// manifest says `downgrade`; nothing goes in below the rollback floor. `fresh`:
        /// the new version starts without the old one's state (needed when their state
        /// hooks differ).
        fn swap(&self, name: RRef<Text>, entry: RRef<Text>, fresh: bool) -> RpcResult<RRef<SwapReport>>;
        /// Hot-swaps domain `name` for the signed envelope in `envelope` (its first `len`
        /// bytes), read by the caller from `from` (for the log, e.g. `disk:/CONSOLE.QVD`):
        /// verified and admitted exactly as an initrd entry or a host push is, with the
        /// same key policy, rollback floor and refusal messages.
        fn swap_envelope(&self, name: RRef<Text>, envelope: RRef<Envelope>, from: RRef<Text>, fresh: bool) -> RpcResult<RRef<SwapReport>>;
        /// Starts the domain in `envelope` (its first `len` bytes, read from `from`), which
        /// must not be running: verified and admitted as at boot (signature, key policy,
        /// rollback floor), one domain per name, one exporter per interface, every import
        /// served. The report's `swapped` is 1 if it started; its message says what happened.
        fn load_envelope(&self, envelope: RRef<Envelope>, from: RRef<Text>) -> RpcResult<RRef<SwapReport>>;
        /// Line `line` of what `versions NAME` shows (running, available, retired);
        /// `Refused` past the last line.
        fn versions(&self, name: RRef<Text>, line: u32) -> RpcResult<RRef<Text>>;
    }

    /// The test domain's interface: calls that succeed, move data, or fail on purpose.
    pub mod hello: Hello {
        /// Does nothing (the cost of a call itself).
        fn nop(&self) -> RpcResult<()>;
        /// Returns `x + 1` and counts the ping (the count is the state a hot swap keeps).
        fn ping(&self, x: u64) -> RpcResult<u64>;
        /// Pings served, over every version swapped in since boot (or the last restart).
        fn served(&self) -> RpcResult<u64>;
        /// The answering version's manifest version: `major << 32 | minor << 16 | patch`.
        fn version(&self) -> RpcResult<u64>;
        /// Sleeps `ms` milliseconds inside the call (a call that stays in flight).
        fn nap(&self, ms: u64) -> RpcResult<()>;
        fn sum(&self, numbers: RRef<Numbers>) -> RpcResult<u64>;
        /// Takes `numbers` and drops them: an `RRef` moved through a call, and nothing else
        /// (the bench's transfer cost).
        fn take(&self, numbers: RRef<Numbers>) -> RpcResult<()>;
        /// The sum of both: two `RRef`s moved by one call.
        fn pair(&self, a: RRef<Numbers>, b: RRef<Numbers>) -> RpcResult<u64>;
        /// `how`: 0 panic, 1 allocate without bound, 2 recurse without bound, 3 loop
        /// forever, 4 a fault in trusted code (the runtime's fault injector).
        fn fail(&self, how: u32) -> RpcResult<u64>;
    }

    /// The growth bench's interface (`cargo xtask bench`, domain `growth`): one method per
    /// number of scalar arguments, each returning the sum of its arguments.
    pub mod growth: Growth {
        fn args0(&self) -> RpcResult<u64>;
        fn args1(&self, a: u64) -> RpcResult<u64>;
        fn args2(&self, a: u64, b: u64) -> RpcResult<u64>;
        fn args4(&self, a: u64, b: u64, c: u64, d: u64) -> RpcResult<u64>;
        fn args6(&self, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> RpcResult<u64>;
    }

    /// A domain in the middle: it calls the test domain on the caller's behalf (nested
    /// calls: the shell calls relay, relay calls hello).
    pub mod relay: Relay {
        /// Calls `hello.fail(how)`; reports how that call ended (0 it returned, 1 the callee
        /// crashed, 2 it was unavailable) and that relay itself carried on.
        fn relay_fail(&self, how: u32) -> RpcResult<u32>;
    }

    /// A block device (the virtio-blk driver exports it): batches of 4 KiB requests.
    pub mod block: Block {
        /// The device's size (in 4 KiB blocks) and what it can do.
        fn info(&self) -> RpcResult<RRef<BlockInfo>>;
        /// Runs the first `count` requests of `batch` and returns it with each request's
        /// status (and, for reads, data) filled in.
        fn submit(&self, batch: RRef<BlockBatch>) -> RpcResult<RRef<BlockBatch>>;
    }

    /// A block driver's own benchmark: it runs batches itself, with no cross-domain call
    /// per batch (the "direct" figures of `cargo xtask bench`).
    pub mod block_bench: BlockBench {
        /// Runs `rounds` batches of `batch` requests (`op`: 0 read, 1 write) on blocks
        /// from 0; returns the cycles the rounds took, or `Refused` if a request failed.
        fn direct(&self, op: u32, batch: u32, rounds: u32) -> RpcResult<u64>;
    }

    /// The BCM2835 GPIO block (the rpi3's gpio driver exports it): pins 0 to 53. Each
    /// method answers an `i64`: its result (0 or more), or minus a `GpioError` code
    /// (`GpioError::read` tells which). Pins the system uses are refused (`user` names
    /// who uses them); reading a level is allowed on every pin.
    pub mod gpio: Gpio {
        /// Sets pin `pin`'s function (`gpio_function`: 0 input, 1 output; the
        /// alternate functions are refused). Answers 0.
        fn set_function(&self, pin: u32, function: u32) -> RpcResult<i64>;
        /// Pin `pin`'s function as the hardware encodes it (`gpio_function`, 0 to 7).
        fn function(&self, pin: u32) -> RpcResult<i64>;
        /// Drives pin `pin` high (an input keeps the value for when it becomes an output). Answers 0.
        fn set(&self, pin: u32) -> RpcResult<i64>;
        /// Drives pin `pin` low (an input keeps the value for when it becomes an output). Answers 0.
        fn clear(&self, pin: u32) -> RpcResult<i64>;
        /// The level on pin `pin`: 0 low, 1 high.
        fn level(&self, pin: u32) -> RpcResult<i64>;
        /// Sets pin `pin`'s pull resistor (`gpio_pull`: 0 none, 1 down, 2 up). Answers 0.
        fn pull(&self, pin: u32, pull: u32) -> RpcResult<i64>;
        /// Who uses pin `pin` ("the console's UART TXD0"), or empty text for a free pin.
        fn user(&self, pin: u32) -> RpcResult<RRef<Text>>;
    }

    /// A hardware random number generator (the rpi3's rng driver exports it).
    pub mod entropy: Entropy {
        /// Fills the first `len` bytes of `buffer` (at most `RandomBytes::CAPACITY`) with
        /// bytes from the hardware and sets its `status` (`entropy_status`); on any other
        /// status than OK those bytes are zero.
        fn fill(&self, buffer: RRef<RandomBytes>) -> RpcResult<RRef<RandomBytes>>;
    }

    /// Files on the disk's FAT volume (the fs domain exports it, over `Block`). Paths are
    /// absolute from the volume's root ("/DOCS/NOTE.TXT"), at most `Text::CAPACITY` bytes;
    /// new names must be 8.3. Every answer carries an `fs_status` (`describe` says it) and,
    /// for some statuses, a `detail`. Each call is atomic on the disk except a `write` that
    /// overwrites existing bytes (README "Files": what a crash can lose).
    pub mod files: Files {
        /// What `path` names.
        fn stat(&self, path: RRef<Text>) -> RpcResult<RRef<FileStat>>;
        /// Entry `index` (from 0) of the directory `path`; `NO_MORE_ENTRIES` past the last.
        fn list(&self, path: RRef<Text>, index: u32) -> RpcResult<RRef<FileStat>>;
        /// Up to `FILE_CHUNK` bytes of the file `path` from `offset` (`len` 0 at the end).
        fn read(&self, path: RRef<Text>, offset: u64) -> RpcResult<RRef<FileChunk>>;
        /// Writes the chunk's first `len` bytes into the file `path` at `offset` (at most
        /// its size: no holes), making the file if it does not exist.
        fn write(&self, path: RRef<Text>, offset: u64, chunk: RRef<FileChunk>) -> RpcResult<RRef<FsAnswer>>;
        /// Shortens the file `path` to `len` bytes.
        fn truncate(&self, path: RRef<Text>, len: u64) -> RpcResult<RRef<FsAnswer>>;
        /// Removes the file or empty directory `path`.
        fn remove(&self, path: RRef<Text>) -> RpcResult<RRef<FsAnswer>>;
        /// Makes the directory `path` (its parent must exist).
        fn mkdir(&self, path: RRef<Text>) -> RpcResult<RRef<FsAnswer>>;
        /// The data area's size and free bytes.
        fn usage(&self) -> RpcResult<RRef<FsUsage>>;
    }
}
