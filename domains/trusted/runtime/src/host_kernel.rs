//! A fake kernel for the runtime's host unit tests: a services table whose DMA buffers are
//! host memory and whose device grants are fake virtio-mmio transports (plain memory, so
//! a test can play the device: read the rings the runtime set up and write the answers a
//! broken or hostile device would). Every other service aborts the test process: the code
//! under test is not expected to reach it.

use interfaces::abi::{StateExportFn, StateImportFn};
use interfaces::{DeviceGrant, DmaGrant, KernelServices};
use std::alloc::{alloc_zeroed, Layout};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// Fake transports, one per test that needs a device (grant index = transport index).
pub const TRANSPORTS: usize = 16;
const TRANSPORT_BYTES: usize = 0x200;

#[repr(C, align(4096))]
struct Registers([u32; TRANSPORT_BYTES / 4]);

static mut REGISTERS: [Registers; TRANSPORTS] = [const { Registers([0; TRANSPORT_BYTES / 4]) }; TRANSPORTS];

fn transport_base(index: usize) -> usize {
    // SAFETY: only the address is taken; the memory is reached through raw pointers.
    (unsafe { core::ptr::addr_of_mut!(REGISTERS[index]) }) as usize
}

fn unexpected(what: &str) -> ! {
    eprintln!("host_kernel: the code under test called `{what}`, which these tests do not provide");
    std::process::abort()
}

unsafe extern "C" fn log(ptr: *const u8, len: usize) {
    // SAFETY: the runtime passes a live buffer of this length.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    println!("domain log: {}", String::from_utf8_lossy(bytes));
}
unsafe extern "C" fn panic(ptr: *const u8, len: usize) -> ! {
    // SAFETY: as in `log`.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    eprintln!("domain panic: {}", String::from_utf8_lossy(bytes));
    std::process::abort()
}
unsafe extern "C" fn export(_: *const u8, _: usize, _: *const [u8; 32], _: *const (), _: *const u8, _: *const (), _: u32) -> i32 {
    unexpected("export")
}
unsafe extern "C" fn import(_: *const u8, _: usize, _: *const [u8; 32]) -> i64 {
    unexpected("import")
}
unsafe extern "C" fn slot_generation(_: u32) -> u32 {
    unexpected("slot_generation")
}
unsafe extern "C" fn spawn(_: extern "C" fn(usize), _: usize, _: *const u8, _: usize) -> i32 {
    unexpected("spawn")
}
unsafe extern "C" fn sleep_ms(_: u64) {
    std::thread::yield_now()
}
unsafe extern "C" fn yield_now() {
    std::thread::yield_now()
}
unsafe extern "C" fn uptime_ns() -> u64 {
    0
}
unsafe extern "C" fn event_new() -> i64 {
    unexpected("event_new")
}
unsafe extern "C" fn event_wait(_: u32, _: u64) -> u64 {
    unexpected("event_wait")
}
unsafe extern "C" fn event_signal(_: u32) {
    unexpected("event_signal")
}
unsafe extern "C" fn state_hooks(_: *const [u8; 32], _: usize, _: StateExportFn, _: usize, _: StateImportFn, _: usize) -> i32 {
    unexpected("state_hooks")
}
unsafe extern "C" fn device(index: u32, out: *mut DeviceGrant) -> i32 {
    if index as usize >= TRANSPORTS {
        return -1;
    }
    let grant = DeviceGrant {
        mmio_base: transport_base(index as usize),
        mmio_size: TRANSPORT_BYTES,
        has_irq: 1,
        kind: interfaces::abi::DEVICE_VIRTIO_MMIO,
    };
    // SAFETY: the runtime passes a live `DeviceGrant`.
    unsafe { out.write(grant) };
    0
}
unsafe extern "C" fn irq_wait(_: u32) -> i32 {
    unexpected("irq_wait")
}
unsafe extern "C" fn irq_done(_: u32) {
    unexpected("irq_done")
}
unsafe extern "C" fn rref_alloc(_: usize, _: usize) -> *mut u8 {
    unexpected("rref_alloc")
}
unsafe extern "C" fn rref_free(_: *mut u8) {
    unexpected("rref_free")
}
unsafe extern "C" fn rref_return(_: *mut u8) -> i32 {
    unexpected("rref_return")
}
unsafe extern "C" fn rref_claim(_: *mut u8) -> i32 {
    unexpected("rref_claim")
}

static NEXT_HANDLE: AtomicU32 = AtomicU32::new(1);

/// Zeroed, page-aligned host memory (never freed: tests are short), its address standing
/// for the device address too, as on the boards (identity-mapped physical memory).
unsafe extern "C" fn dma_alloc(bytes: usize, out: *mut DmaGrant) -> i32 {
    if bytes == 0 || bytes > 256 * 1024 {
        return -1;
    }
    let size = bytes.next_multiple_of(4096);
    let Ok(layout) = Layout::from_size_align(size, 4096) else { return -1 };
    // SAFETY: a layout of nonzero size.
    let addr = unsafe { alloc_zeroed(layout) } as usize;
    if addr == 0 {
        return -1;
    }
    let grant = DmaGrant {
        handle: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
        _pad: 0,
        addr,
        device_address: addr as u64,
        size,
    };
    // SAFETY: the runtime passes a live `DmaGrant`.
    unsafe { out.write(grant) };
    0
}
unsafe extern "C" fn dma_free(_: u32) {}

static mut PROXY_STATUS: u32 = 0;
static mut STACK_LIMIT: usize = 0;

static SERVICES: KernelServices = KernelServices {
    abi_version: interfaces::ABI_VERSION,
    domain_id: 1,
    heap_base: 0,
    heap_size: 0,
    version: [0, 1, 0],
    log,
    panic,
    export,
    import,
    proxy_call: 0,
    proxy_call_moving: 0,
    proxy_status: core::ptr::addr_of!(PROXY_STATUS),
    stack_limit: core::ptr::addr_of!(STACK_LIMIT),
    slot_generation,
    spawn,
    sleep_ms,
    yield_now,
    uptime_ns,
    event_new,
    event_wait,
    event_signal,
    event_wait_restartable: event_wait,
    state_hooks,
    device,
    irq_wait,
    irq_done,
    rref_alloc,
    rref_free,
    rref_return,
    rref_claim,
    dma_alloc,
    dma_free,
};

/// Installs the fake kernel (once per test process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| assert!(interfaces::set_services(&SERVICES)));
}

/// A fake virtio-mmio transport seen from the device's side.
pub struct FakeTransport {
    base: usize,
}

impl FakeTransport {
    /// Transport `index` (the grant of the same index), with its registers set as a
    /// modern (version 2) transport whose queues take up to 256 descriptors.
    pub fn modern(index: usize) -> FakeTransport {
        install();
        let t = FakeTransport { base: transport_base(index) };
        for offset in (0..TRANSPORT_BYTES).step_by(4) {
            t.set(offset, 0);
        }
        t.set(0x004, 2);
        t.set(0x034, 256);
        t
    }

    pub fn get(&self, offset: usize) -> u32 {
        // SAFETY: inside this transport's static registers; raw accesses only.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    pub fn set(&self, offset: usize, value: u32) {
        // SAFETY: as in `get`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn address(&self, low: usize) -> usize {
        (self.get(low) as u64 | (self.get(low + 4) as u64) << 32) as usize
    }

    /// The queue size the driver set.
    pub fn queue_size(&self) -> u16 {
        self.get(0x038) as u16
    }

    /// Descriptor `i`: (address, length, flags, next).
    pub fn descriptor(&self, i: u16) -> (u64, u32, u16, u16) {
        let at = self.address(0x080) + 16 * i as usize;
        // SAFETY: the descriptor table the runtime gave the device (host memory), `i` below
        // the queue size.
        unsafe {
            (
                core::ptr::read_volatile(at as *const u64),
                core::ptr::read_volatile((at + 8) as *const u32),
                core::ptr::read_volatile((at + 12) as *const u16),
                core::ptr::read_volatile((at + 14) as *const u16),
            )
        }
    }

    /// The driver's available index and its `n`-th entry.
    pub fn available(&self, n: u16) -> (u16, u16) {
        let at = self.address(0x090);
        let size = self.queue_size();
        // SAFETY: the available ring the runtime gave the device.
        unsafe {
            (
                core::ptr::read_volatile((at + 2) as *const u16),
                core::ptr::read_volatile((at + 4 + 2 * (n % size) as usize) as *const u16),
            )
        }
    }

    /// The device's used index.
    pub fn used_index(&self) -> u16 {
        // SAFETY: the used ring the runtime gave the device.
        unsafe { core::ptr::read_volatile((self.address(0x0a0) + 2) as *const u16) }
    }

    /// Sets the used index to anything, as a hostile device may.
    pub fn set_used_index(&self, index: u16) {
        // SAFETY: as in `used_index`.
        unsafe { core::ptr::write_volatile((self.address(0x0a0) + 2) as *mut u16, index) }
    }

    /// Appends a used entry (`id`, `len`) and publishes it, as a device does.
    pub fn complete(&self, id: u32, len: u32) {
        let used = self.address(0x0a0);
        let index = self.used_index();
        let entry = used + 4 + 8 * (index % self.queue_size()) as usize;
        // SAFETY: as in `used_index`; the entry is below the queue size.
        unsafe {
            core::ptr::write_volatile(entry as *mut u32, id);
            core::ptr::write_volatile((entry + 4) as *mut u32, len);
        }
        self.set_used_index(index.wrapping_add(1));
    }
}
