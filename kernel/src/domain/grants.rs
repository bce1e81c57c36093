//! Device grants: the devices a domain's signed manifest names (by device-tree
//! `compatible`), mapped for it, with their interrupts routed to it; and the services a
//! driver uses on them (`device`, `irq_wait`, `irq_done`). A grant's interrupt stays masked
//! from when it fires until the domain says `irq_done` and then waits for it again
//! (`irq_done` unmasks it at once only if a thread of the domain waits for it already).
//! Nobody is told of an interrupt before a thread waits for it, so taking it earlier only
//! cuts into whatever the CPU runs then; unmasked on the wait, it is taken inside the wait.
//! That also keeps where a device's completion lands in the instruction stream out of
//! what the block benchmark counts (`bench_block`, which leaves out each `irq_wait`).

use super::registry::{registry, State};
use super::DomainId;
use crate::arch::mmu::MapError;
use crate::devicetree::Device;
use crate::irq::{IrqError, IrqNumber};
use crate::memory::Region;
use crate::sched::WaitQueue;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use interfaces::abi::{DEVICE_FW_CFG, DEVICE_PLAIN, DEVICE_VIRTIO_MMIO};
use interfaces::DeviceGrant;
use loader::manifest::Manifest;

pub struct Grant {
    mmio: Region,
    /// `interfaces::abi::DEVICE_*`.
    kind: u32,
    pub irq: Option<IrqNumber>,
    irq_pending: bool,
    /// The domain said `irq_done` since the interrupt last fired: the next `irq_wait`
    /// unmasks it.
    irq_rearm: bool,
    /// Threads of the domain in `irq_wait` on this grant now (`irq_done` unmasks the
    /// interrupt at once for them).
    irq_waiting: u32,
    /// Boxed: a waiter holds its address; freed with the instance, after `wake_waiters`.
    irq_waiters: Box<WaitQueue>,
}

impl Grant {
    /// Wakes whoever waits for this grant's interrupt (its domain is going away).
    pub fn wake_waiters(&self) {
        self.irq_waiters.wake_all();
    }
}

/// Why a manifest's device could not be granted.
#[derive(Debug)]
pub enum GrantError {
    NotInDeviceTree(String),
    /// `virtio,mmio:ID` where no transport has device ID `ID` behind it.
    NoVirtioDevice(u32),
    /// (the device asked for, what the kernel keeps there)
    KernelOwned(String, &'static str),
    Map(String, MapError),
    Route(String, IrqNumber, IrqError),
    /// (the device asked for, the domain that holds it)
    HeldBy(String, String),
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::NotInDeviceTree(c) => write!(f, "device {c:?} is not in the device tree"),
            GrantError::NoVirtioDevice(id) => write!(
                f,
                "no virtio-mmio transport has a device of ID {id} behind it (a block device is 2: `cargo xtask run` attaches a disk)"
            ),
            GrantError::KernelOwned(c, what) => write!(f, "device {c:?} is {what}, which the kernel keeps; it is never granted"),
            GrantError::HeldBy(c, holder) => write!(f, "device {c:?} is granted to domain {holder} already: a device has one driver"),
            GrantError::Map(c, e) => write!(f, "cannot map {c}: {e:?}"),
            GrantError::Route(c, n, e) => write!(f, "cannot route irq {n} of {c}: {e}"),
        }
    }
}

/// Grants the devices `m` names. The console UART the kernel knows is used when the
/// device tree has no `arm,pl011` node. With `route_irqs` false (a version prepared for a
/// swap), the interrupts are routed only when the swap commits (`route_irq`).
pub fn grant_devices(id: DomainId, m: &Manifest, uart: Option<Device>, route_irqs: bool) -> Result<Vec<Grant>, GrantError> {
    let mut out = Vec::new();
    for (index, compatible) in m.devices.iter().enumerate() {
        let (dev, kind) = match virtio_device_id(compatible) {
            Some(id) => (find_virtio(id).ok_or(GrantError::NoVirtioDevice(id))?, DEVICE_VIRTIO_MMIO),
            None => (
                crate::devicetree::find_device(compatible)
                    .or_else(|| uart.filter(|_| compatible == "arm,pl011"))
                    .ok_or_else(|| GrantError::NotInDeviceTree(compatible.clone()))?,
                // A transport granted without an ID is still a transport: its address
                // registers stay the runtime's.
                if compatible.starts_with(VIRTIO_MMIO) {
                    DEVICE_VIRTIO_MMIO
                } else if compatible == "qemu,fw-cfg-mmio" {
                    DEVICE_FW_CFG
                } else {
                    DEVICE_PLAIN
                },
            ),
        };
        if let Some(what) = kernel_owned(compatible, &dev) {
            return Err(GrantError::KernelOwned(compatible.clone(), what));
        }
        if let Some(holder) = holder_of(dev.reg, &m.name, compatible) {
            return Err(GrantError::HeldBy(compatible.clone(), holder));
        }
        crate::memory::map_device(dev.reg).map_err(|e| GrantError::Map(compatible.clone(), e))?;
        let irq = dev.irq.and_then(|s| crate::irq::translate(&s));
        if let (Some(n), true) = (irq, route_irqs) {
            route_irq(id, index, n, false).map_err(|e| GrantError::Route(compatible.clone(), n, e))?;
        }
        out.push(Grant {
            mmio: dev.reg,
            kind,
            irq,
            irq_pending: false,
            irq_rearm: false,
            irq_waiting: 0,
            irq_waiters: Box::new(WaitQueue::new()),
        });
    }
    Ok(out)
}

/// The domain, other than a version of `name` (a restart, a swap's other side), that
/// holds the device at `reg` (asked for as `compatible`): one whose instance's grants
/// overlap it, or one crashed or held (waiting for a restart, its instance gone) whose
/// manifest names the same device. Two drivers of one device would race each other's
/// register sequences, and neither could trust what the device says; and a driver's
/// device must still be there when it restarts.
fn holder_of(reg: Region, name: &str, compatible: &str) -> Option<String> {
    let mut r = registry();
    let others: Vec<(DomainId, bool)> = r
        .domains()
        .filter(|d| d.name() != name && !matches!(d.state(), State::Retired | State::Rejected))
        .map(|d| (d.id(), d.manifest().devices.iter().any(|c| c == compatible)))
        .collect();
    for (other, names_it) in others {
        let overlaps = r.instance_mut(other).is_some_and(|i| i.grants.iter().any(|g| g.mmio.overlaps(&reg)));
        if overlaps || names_it {
            return Some(r.name(other));
        }
    }
    None
}

/// The device ID a grant of `virtio,mmio:ID` asks for (a transport of the tree's many
/// `virtio,mmio` nodes, chosen by the device behind it: 2 is a block device).
fn virtio_device_id(compatible: &str) -> Option<u32> {
    compatible.strip_prefix(VIRTIO_MMIO)?.strip_prefix(':')?.parse().ok()
}

const VIRTIO_MMIO: &str = "virtio,mmio";

/// The first `virtio,mmio` transport of the device tree whose device ID is `id`.
fn find_virtio(id: u32) -> Option<Device> {
    crate::devicetree::find_devices(VIRTIO_MMIO)
        .into_iter()
        .find(|dev| crate::memory::map_device(dev.reg).is_ok() && crate::driver::virtio::device_id(dev.reg) == Some(id))
}

/// Stops every device of `grants` from touching memory (a virtio transport is reset):
/// before the domain's DMA buffers are freed. Always, even when a swap's new version holds
/// the same transport: the swap lets no caller reach that version before this reset.
pub fn quiesce(grants: &[Grant]) {
    for g in grants.iter().filter(|g| g.kind == DEVICE_VIRTIO_MMIO) {
        crate::driver::virtio::reset(g.mmio);
    }
}

pub fn share_a_transport(old: DomainId, new: DomainId) -> bool {
    let regions = |d: DomainId| -> Vec<usize> {
        registry()
            .instance_mut(d)
            .map(|i| i.grants.iter().filter(|g| g.kind == DEVICE_VIRTIO_MMIO).map(|g| g.mmio.base).collect())
            .unwrap_or_default()
    };
    let theirs = regions(new);
    regions(old).iter().any(|r| theirs.contains(r))
}

/// What the kernel keeps of device `dev` (named `compatible`), if anything: a kernel-owned
/// compatible string (admission refuses those already; checked again here), or registers
/// overlapping those of a device the kernel drives, whatever the device tree calls them.
fn kernel_owned(compatible: &str, dev: &Device) -> Option<&'static str> {
    loader::policy::kernel_owned(compatible).or_else(|| crate::driver::kept::overlapping(&dev.reg))
}

/// Routes interrupt `n` of grant `index` to domain `id`; `replacing` takes it from a
/// domain (a swap's old version), otherwise only from the kernel.
pub fn route_irq(id: DomainId, index: usize, n: IrqNumber, replacing: bool) -> Result<(), IrqError> {
    let h = crate::irq::Handler {
        name: "domain device",
        func: on_granted_irq,
        context: ((id as usize) << 16) | index,
        owner: id,
        handover: false,
    };
    if replacing {
        crate::irq::unregister(n);
    }
    crate::irq::register_taking_over(n, h)
}

/// The device interrupts of `d`'s grants: (grant index, interrupt).
pub fn grant_irqs(d: DomainId) -> Vec<(usize, IrqNumber)> {
    registry()
        .instance_mut(d)
        .map(|i| i.grants.iter().enumerate().filter_map(|(k, g)| g.irq.map(|n| (k, n))).collect())
        .unwrap_or_default()
}

/// Masks (or unmasks) the interrupts `irqs` at the controller.
pub fn set_masked(irqs: &[(usize, IrqNumber)], masked: bool) {
    if let Some(c) = crate::irq::controller() {
        for (_, n) in irqs {
            if masked {
                c.disable(*n);
            } else {
                c.enable(*n);
            }
        }
    }
}

fn with_grant<R>(d: DomainId, index: u32, f: impl FnOnce(&mut Grant) -> R) -> Option<R> {
    registry().instance_mut(d)?.grants.get_mut(index as usize).map(f)
}

/// Grant `index` of domain `d`, as the runtime sees it.
pub fn device(d: DomainId, index: u32) -> Option<DeviceGrant> {
    with_grant(d, index, |g| DeviceGrant {
        mmio_base: g.mmio.base,
        mmio_size: g.mmio.size,
        has_irq: g.irq.is_some() as u32,
        kind: g.kind,
    })
}

fn on_granted_irq(irq: IrqNumber, ctx: usize) {
    if let Some(c) = crate::irq::controller() {
        c.disable(irq); // stays masked until the domain says irq_done and waits again
    }
    let (d, index) = ((ctx >> 16) as DomainId, (ctx & 0xffff) as u32);
    with_grant(d, index, |g| {
        g.irq_pending = true;
        g.irq_rearm = false; // (unmasked by someone else: a swap's `set_masked`)
        g.irq_waiters.wake_all();
    });
}

/// Waits until grant `index`'s interrupt fires, unmasking it first if the domain said
/// `irq_done` since it last fired. False if the grant has no interrupt.
pub fn irq_wait(d: DomainId, index: u32) -> bool {
    #[cfg(feature = "selftest")]
    let (t0, idle0) = (crate::arch::pmu::cycles(), crate::sched::idle_cycles());
    let Some(Some((q, unmask))) = with_grant(d, index, |g| {
        let irq = g.irq?;
        g.irq_waiting += 1;
        // Pending already: this wait returns at once; the next one unmasks.
        let unmask = g.irq_rearm && !g.irq_pending;
        g.irq_rearm &= !unmask;
        Some((&*g.irq_waiters as *const WaitQueue, unmask.then_some(irq)))
    }) else {
        return false;
    };
    if let (Some(irq), Some(c)) = (unmask, crate::irq::controller()) {
        c.enable(irq);
    }
    // SAFETY: the queue lives as long as `d`'s instance; when it goes, its waiters (threads
    // of `d`) are woken first and unwound before they run again, never touching it.
    let q = unsafe { &*q };
    q.wait_until(|| with_grant(d, index, |g| core::mem::take(&mut g.irq_pending).then_some(())).flatten());
    with_grant(d, index, |g| g.irq_waiting = g.irq_waiting.saturating_sub(1));
    // The whole wait is the device's time, not the caller's work: the block benchmark
    // leaves it out (the idle cycles in it are in `idle_cycles` already).
    #[cfg(feature = "selftest")]
    crate::sched::count_device_wait((crate::arch::pmu::cycles() - t0).saturating_sub(crate::sched::idle_cycles() - idle0));
    true
}

/// The domain is done with the interrupt grant `index` last fired: unmasks it now if a
/// thread of the domain waits for it, otherwise when one next does (`irq_wait`).
pub fn irq_done(d: DomainId, index: u32) {
    let irq = with_grant(d, index, |g| {
        let irq = g.irq?;
        if g.irq_waiting > 0 {
            Some(irq)
        } else {
            g.irq_rearm = true;
            None
        }
    })
    .flatten();
    if let (Some(irq), Some(c)) = (irq, crate::irq::controller()) {
        c.enable(irq);
    }
}
