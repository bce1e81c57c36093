//! The services boundary under random arguments (selftest `services-fuzz`): the kernel
//! calls a domain's own services table *as that domain*, with values a hostile domain could
//! pass — null, small and huge addresses, the kernel's own code and data, another domain's
//! memory, the caller's own heap and stack, lengths from 0 to `usize::MAX`, functions that
//! are and are not the domain's code. Each call may return an error or crash the domain;
//! the kernel must never fault, panic or hang, and no other domain may change.

use super::continuation::{call_into, EntryKind};
use super::registry::{is_dead, registry, State};
use super::DomainId;
use interfaces::{DeviceGrant, KernelServices};

/// A small deterministic generator (xorshift64*): the same seed replays the same calls.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Addresses worth trying: (label, address).
struct Targets {
    list: alloc::vec::Vec<usize>,
}

static KERNEL_DATA: [u8; 64] = [0x5a; 64];

impl Targets {
    fn for_domain(d: DomainId, other: DomainId) -> Targets {
        let r = registry();
        let mut list = alloc::vec![0, 8, 0x1000, usize::MAX - 7, usize::MAX, 0x4000_0000, 0x3f20_1000];
        list.push(Targets::for_domain as *const () as usize); // kernel code
        list.push(KERNEL_DATA.as_ptr() as usize); // kernel data
                                                  // The shared heap's slab region: block starts, insides, slots never handed out.
        let (slabs, size) = super::slab::region();
        list.extend([slabs, slabs + 8, slabs + 64, slabs + 4096, slabs + size - 64]);
        for dom in [d, other] {
            if let Some(inst) = r.get(dom).and_then(|x| x.instance()) {
                let heap = inst.heap_region();
                list.extend([heap.base, heap.base + heap.size - 8, heap.base + heap.size - 1, heap.end()]);
                list.extend(inst.image.segments.iter().flat_map(|s| [s.0, s.0 + s.1 - 4]));
            }
        }
        Targets { list }
    }

    fn pick(&self, rng: &mut Rng, own_stack: usize) -> usize {
        match rng.below(self.list.len() as u64 + 2) as usize {
            i if i < self.list.len() => self.list[i].wrapping_add(rng.below(3) as usize * 4),
            i if i == self.list.len() => own_stack,
            _ => rng.next() as usize,
        }
    }
}

fn length(rng: &mut Rng) -> usize {
    [0, 1, 4, 32, 64, 4095, 4096, 1 << 20, usize::MAX, rng.next() as usize][rng.below(10) as usize]
}

struct FuzzCall<'a> {
    services: *const KernelServices,
    targets: &'a Targets,
    rng: Rng,
}

unsafe extern "C" fn invoke_fuzz(data: *mut u8, _: *const (), _: *const ()) {
    // SAFETY: `data` is the `FuzzCall` of `fuzz_services`, live for this call.
    let call = unsafe { &mut *(data as *mut FuzzCall) };
    // SAFETY: the domain's own services table, owned by its instance while it runs.
    let s = unsafe { &*call.services };
    let local = [0u8; 64];
    let stack = local.as_ptr() as usize;
    let (t, rng) = (call.targets, &mut call.rng);
    let mut p = || t.pick(rng, stack);
    let (a, b, c) = (p(), p(), p());
    let (n, m) = (length(&mut call.rng), length(&mut call.rng));
    let v = call.rng.next();
    let which = call.rng.below(20);
    // SAFETY: deliberately hostile arguments: what this test exists for. Every service
    // must refuse them or crash the calling domain (this one), never the kernel. Function
    // pointers made from addresses are only stored or refused by the kernel, never called
    // unless they are the domain's own code.
    unsafe {
        match which {
            0 => (s.log)(a as *const u8, n),
            1 => {
                let _ = (s.export)(
                    a as *const u8,
                    n,
                    b as *const [u8; 32],
                    c as *const (),
                    b as *const u8,
                    a as *const (),
                    v as u32,
                );
            }
            2 => {
                let _ = (s.import)(a as *const u8, n, b as *const [u8; 32]);
            }
            3 => {
                let _ = (s.slot_generation)(v as u32);
            }
            4 => {
                let entry: extern "C" fn(usize) = core::mem::transmute(a);
                let _ = (s.spawn)(entry, b, c as *const u8, n);
            }
            5 => (s.sleep_ms)(v % 3),
            6 => {
                let _ = (s.event_new)();
            }
            7 => {
                let _ = (s.event_wait)(v as u32 % 8, v | 1);
            }
            8 => (s.event_signal)(v as u32 % 8),
            9 => {
                let export: interfaces::abi::StateExportFn = core::mem::transmute(a);
                let import: interfaces::abi::StateImportFn = core::mem::transmute(b);
                let _ = (s.state_hooks)(c as *const [u8; 32], n, export, v as usize, import, v as usize);
            }
            10 => {
                let _ = (s.device)(v as u32 % 4, a as *mut DeviceGrant);
            }
            11 => {
                let _ = (s.irq_wait)(v as u32);
            }
            12 => (s.irq_done)(v as u32),
            13 => {
                let _ = (s.rref_alloc)(n, m);
            }
            14 => (s.rref_free)(a as *mut u8),
            15 => {
                let _ = (s.rref_return)(a as *mut u8);
            }
            16 => {
                let _ = (s.rref_claim)(a as *mut u8);
            }
            17 => {
                let _ = (s.event_wait_restartable)(v as u32 % 8, v | 1);
            }
            18 => {
                // The moving trampoline, with a random call word and blocks: refused
                // (the status says why), unless it names a slot of this domain's.
                let f: extern "C" fn(u64, usize, usize, usize) -> u64 = core::mem::transmute(s.proxy_call_moving);
                let _ = f(v | interfaces::abi::MOVING_CALL, a, b, c);
                core::ptr::write_volatile(s.proxy_status as *mut u32, 0);
            }
            _ => (s.yield_now)(),
        }
    }
}

/// What a fuzz run did.
pub struct Report {
    pub calls: u32,
    /// Calls after which the domain had crashed (and was restarted).
    pub crashes: u32,
}

/// Makes `rounds` random service calls as domain `target` (restarted whenever one crashes
/// it), with the addresses of `other` among the values tried. `None` if `target` did not
/// come back after a crash within 2 s.
pub fn fuzz_services(target: DomainId, other: DomainId, rounds: u32, seed: u64) -> Option<Report> {
    let mut rng = Rng(seed | 1);
    let mut report = Report { calls: 0, crashes: 0 };
    for _ in 0..rounds {
        let services = registry().get(target).and_then(|d| d.instance()).map(|i| i.services())?;
        let targets = Targets::for_domain(target, other);
        let mut call = FuzzCall {
            services,
            targets: &targets,
            rng: Rng(rng.next() | 1),
        };
        let code = call_into(
            target,
            EntryKind::Kernel,
            invoke_fuzz,
            &mut call as *mut FuzzCall as *mut u8,
            core::ptr::null(),
            core::ptr::null(),
        );
        report.calls += 1;
        if code != 0 || is_dead(target) {
            report.crashes += 1;
            let mut waited = 0;
            while is_dead(target) || registry().get(target).is_none_or(|d| d.state() != State::Running) {
                if waited >= 200 {
                    return None;
                }
                crate::sched::sleep_ms(10);
                waited += 1;
            }
        }
    }
    Some(report)
}

/// A digest of everything domain `d` owns in memory (image and heap): it must not change
/// while `d` does nothing.
pub fn memory_digest(d: DomainId) -> Option<[u8; 32]> {
    let (image, heap) = {
        let r = registry();
        let inst = r.get(d)?.instance()?;
        ((inst.image.base, inst.image.size), inst.heap_region())
    };
    let mut all = alloc::vec::Vec::with_capacity(image.1 + heap.size);
    // SAFETY: the image and heap of a live instance, mapped readable; the domain is idle
    // (nothing calls it during this test), so nothing writes them meanwhile.
    unsafe {
        all.extend_from_slice(core::slice::from_raw_parts(image.0 as *const u8, image.1));
        all.extend_from_slice(core::slice::from_raw_parts(heap.base as *const u8, heap.size));
    }
    Some(loader::sha256(&all))
}
