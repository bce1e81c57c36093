//! What the kernel learns from the flattened device tree (the `fdt` crate parses the
//! structure; this module adds address translation through `ranges`, interrupt parents,
//! and checks). It runs before the heap exists, so it stores results in fixed arrays.

use crate::arch::psci::Conduit;
use crate::irq::IrqSpec;
use crate::memory::Region;
use fdt::node::FdtNode;
use fdt::Fdt;

#[cfg(feature = "hostlink")]
mod pci;
#[cfg(feature = "hostlink")]
pub use pci::{pci_host, pci_intx};

/// A small fixed-capacity list (no heap yet when the device tree is read).
#[derive(Clone, Copy)]
pub struct List<T: Copy + Default, const N: usize> {
    items: [T; N],
    len: usize,
    pub overflowed: bool,
}

impl<T: Copy + Default, const N: usize> List<T, N> {
    pub fn new() -> Self {
        Self {
            items: [T::default(); N],
            len: 0,
            overflowed: false,
        }
    }
    pub fn push(&mut self, v: T) {
        if self.len < N {
            self.items[self.len] = v;
            self.len += 1;
        } else {
            self.overflowed = true;
        }
    }
    pub fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }
}

/// A device node: its first register range (CPU address) and first interrupt.
#[derive(Clone, Copy, Debug)]
pub struct Device {
    pub name: &'static str,
    pub reg: Region,
    pub irq: Option<IrqSpec>,
}

/// Where the initrd is, according to `/chosen`.
#[derive(Clone, Copy, Debug)]
pub enum InitrdInfo {
    /// No `linux,initrd-start`/`-end`.
    Absent,
    Present(Region),
    /// The properties exist but make no sense.
    Malformed(&'static str),
}

/// Everything the kernel takes from the device tree.
pub struct Platform {
    pub dtb: Region,
    pub model: &'static str,
    pub memory: List<Region, 8>,
    pub reserved: List<Region, 16>,
    pub uart: Option<Device>,
    pub uart_clock_hz: Option<u32>,
    pub gic: Option<(Region, Region)>,
    pub bcm_local: Option<Region>,
    pub bcm_armctrl: Option<Region>,
    pub timer_irq: Option<IrqSpec>,
    pub timer_frequency: Option<u64>,
    pub initrd: InitrdInfo,
    pub bootargs: &'static str,
    pub psci: Option<Conduit>,
}

impl Platform {
    /// Nothing known: used when there is no usable device tree; the board fills it in.
    pub fn empty() -> Self {
        Platform {
            dtb: Region::default(),
            model: "(no device tree)",
            memory: List::new(),
            reserved: List::new(),
            uart: None,
            uart_clock_hz: None,
            gic: None,
            bcm_local: None,
            bcm_armctrl: None,
            timer_irq: None,
            timer_frequency: None,
            initrd: InitrdInfo::Absent,
            bootargs: "",
            psci: None,
        }
    }
}

/// Why no device tree could be used at all.
#[derive(Clone, Copy, Debug)]
pub enum DtbError {
    /// `x0` is zero, unaligned, or outside memory the kernel can read at boot.
    BadPointer(usize),
    /// `fdt` refused the header (bad magic, bad sizes, ...).
    Invalid(usize),
}

impl core::fmt::Display for DtbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DtbError::BadPointer(p) => write!(f, "x0 = {p:#x} does not point at readable memory"),
            DtbError::Invalid(p) => write!(f, "no valid flattened device tree at {p:#x} (bad magic or header)"),
        }
    }
}

const MAX_DEPTH: usize = 8;
const FDT_MAGIC: u32 = 0xd00d_feed;
/// Upper bound on a device tree we accept, to keep a corrupt size from running away.
const MAX_DTB_SIZE: usize = 2 << 20;

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads an address or size of `cells` 32-bit cells.
fn read_cells(bytes: &[u8], at: usize, cells: usize) -> Option<usize> {
    match cells {
        0 => Some(0),
        1 => be32(bytes, at).map(|v| v as usize),
        2 => Some(((be32(bytes, at)? as usize) << 32) | be32(bytes, at + 4)? as usize),
        _ => None,
    }
}

fn prop_u32(node: FdtNode<'_, 'static>, name: &str) -> Option<u32> {
    node.property(name).and_then(|p| be32(p.value, 0))
}

fn prop_str(node: FdtNode<'_, 'static>, name: &str) -> Option<&'static str> {
    let v = node.property(name)?.value;
    let v = v.split(|&b| b == 0).next()?;
    core::str::from_utf8(v).ok()
}

/// True if the raw `compatible` list (NUL-separated) names one of `with`.
fn is_compatible(list: Option<&[u8]>, with: &[&str]) -> bool {
    list.is_some_and(|c| c.split(|&b| b == 0).any(|s| with.iter().any(|w| w.as_bytes() == s)))
}

fn enabled(node: FdtNode<'_, 'static>) -> bool {
    !matches!(prop_str(node, "status"), Some("disabled") | Some("fail"))
}

/// One bus level on the path from the root: how its children encode addresses, and how
/// they map to the parent bus.
#[derive(Clone, Copy, Default)]
struct Bus {
    address_cells: usize,
    size_cells: usize,
    /// Raw `ranges` of the node that owns this bus; `None` means identity.
    ranges: Option<&'static [u8]>,
    parent_address_cells: usize,
}

/// Translates `addr` (on the innermost bus of `chain`) to a CPU physical address.
fn translate(chain: &[Bus], mut addr: usize) -> Option<usize> {
    for bus in chain.iter().rev() {
        let Some(ranges) = bus.ranges else { continue };
        if ranges.is_empty() {
            continue;
        }
        let entry = 4 * (bus.address_cells + bus.parent_address_cells + bus.size_cells);
        if entry == 0 {
            return None;
        }
        let mut found = None;
        let mut at = 0;
        while at + entry <= ranges.len() {
            let child = read_cells(ranges, at, bus.address_cells)?;
            let parent = read_cells(ranges, at + 4 * bus.address_cells, bus.parent_address_cells)?;
            let size = read_cells(ranges, at + 4 * (bus.address_cells + bus.parent_address_cells), bus.size_cells)?;
            if addr >= child && addr - child < size {
                found = Some(parent.checked_add(addr - child)?);
                break;
            }
            at += entry;
        }
        addr = found?;
    }
    Some(addr)
}

/// The bus chain seen by `node`'s children: `chain` plus the bus `node` defines.
/// `chain` is at most `MAX_DEPTH` long (the walk stops deeper), so this always fits.
fn child_chain(node: FdtNode<'_, 'static>, chain: &[Bus]) -> ([Bus; MAX_DEPTH + 1], usize) {
    let mut inner = [Bus::default(); MAX_DEPTH + 1];
    let depth = chain.len().min(MAX_DEPTH);
    inner[..depth].copy_from_slice(&chain[..depth]);
    inner[depth] = Bus {
        address_cells: prop_u32(node, "#address-cells").unwrap_or(2) as usize,
        size_cells: prop_u32(node, "#size-cells").unwrap_or(1) as usize,
        ranges: node.property("ranges").map(|r| r.value),
        parent_address_cells: chain.last().map_or(2, |b| b.address_cells),
    };
    (inner, depth + 1)
}

/// A walk of the tree: `parse`'s (no `target`) or `find_devices`' (the nodes of `target`).
struct Walker<'q> {
    platform: Platform,
    stdout_name: Option<&'static str>,
    fdt: Fdt<'static>,
    /// `find_devices`: the compatible string looked for, and every enabled match.
    target: Option<&'q str>,
    found: alloc::vec::Vec<Device>,
    /// The last interrupt parent looked up: (phandle, `#interrupt-cells`, its compatible).
    irq_parent: core::cell::Cell<Option<(u32, usize, &'static str)>>,
}

impl Walker<'_> {
    fn reg(&self, node: FdtNode<'_, 'static>, chain: &[Bus], index: usize) -> Option<Region> {
        let bus = chain.last()?;
        let reg = node.property("reg")?.value;
        let entry = 4 * (bus.address_cells + bus.size_cells);
        if entry == 0 {
            return None;
        }
        let at = index.checked_mul(entry)?;
        let addr = read_cells(reg, at, bus.address_cells)?;
        let size = read_cells(reg, at + 4 * bus.address_cells, bus.size_cells)?;
        Some(Region {
            base: translate(chain, addr)?,
            size,
        })
    }

    fn irq(&self, node: FdtNode<'_, 'static>, inherited_parent: Option<u32>, index: usize) -> Option<IrqSpec> {
        let phandle = prop_u32(node, "interrupt-parent").or(inherited_parent)?;
        // Finding a phandle searches the whole tree; nodes nearly all share one parent.
        let (cells, controller) = match self.irq_parent.get() {
            Some((p, cells, controller)) if p == phandle => (cells, controller),
            _ => {
                let parent = self.fdt.find_phandle(phandle)?;
                let cells = prop_u32(parent, "#interrupt-cells")? as usize;
                let controller = parent.compatible()?.all().next()?;
                self.irq_parent.set(Some((phandle, cells, controller)));
                (cells, controller)
            }
        };
        if cells == 0 || cells > 4 {
            return None;
        }
        let value = node.property("interrupts")?.value;
        let mut raw = [0u32; 4];
        for (i, cell) in raw.iter_mut().enumerate().take(cells) {
            *cell = be32(value, 4 * (index * cells + i))?;
        }
        Some(IrqSpec::new(controller, &raw[..cells]))
    }

    fn visit(&mut self, node: FdtNode<'_, 'static>, chain: &[Bus], irq_parent: Option<u32>) {
        if prop_str(node, "device_type") == Some("memory") && enabled(node) {
            if self.target.is_none() {
                for i in 0.. {
                    match self.reg(node, chain, i) {
                        Some(r) if r.size > 0 => self.platform.memory.push(r),
                        _ => break,
                    }
                }
            }
            return;
        }
        if !enabled(node) {
            return;
        }
        let compatible = node.property("compatible").map(|p| p.value); // one lookup per node
        let has = |with: &[&str]| is_compatible(compatible, with);
        if self.target.is_none() {
            // `parse`'s walk indexes every device for `find_devices`.
            if let (Some(c), Some(reg)) = (compatible, self.reg(node, chain, 0)) {
                let device = Some(Device {
                    name: node.name,
                    reg,
                    irq: self.irq(node, irq_parent, 0),
                });
                INDEX.lock().push(Indexed { compatible: c, device });
            }
        }
        if let Some(t) = self.target {
            // A search: only the matches (the platform's devices were found by `parse`).
            if has(&[t]) {
                if let Some(reg) = self.reg(node, chain, 0) {
                    self.found.push(Device {
                        name: node.name,
                        reg,
                        irq: self.irq(node, irq_parent, 0),
                    });
                }
            }
            if node.name == "reserved-memory" {
                return;
            }
        } else if has(&["arm,pl011"]) {
            let is_stdout = self.stdout_name == Some(node.name);
            if self.platform.uart.is_none() || is_stdout {
                if let Some(reg) = self.reg(node, chain, 0) {
                    let irq = self.irq(node, irq_parent, 0);
                    self.platform.uart = Some(Device { name: node.name, reg, irq });
                    self.platform.uart_clock_hz = prop_u32(node, "clock-frequency");
                }
            }
        } else if has(crate::driver::gicv2::COMPATIBLE) {
            if let (Some(d), Some(c)) = (self.reg(node, chain, 0), self.reg(node, chain, 1)) {
                self.platform.gic = Some((d, c));
            }
        } else if has(&[crate::driver::bcm2836_intc::LOCAL_COMPATIBLE]) {
            self.platform.bcm_local = self.reg(node, chain, 0);
        } else if has(crate::driver::bcm2836_intc::ARMCTRL_COMPATIBLE) {
            self.platform.bcm_armctrl = self.reg(node, chain, 0);
        } else if has(&["arm,armv8-timer", "arm,armv7-timer"]) {
            // Entry 1 is the non-secure EL1 physical timer, the one QvQ uses.
            self.platform.timer_irq = self.irq(node, irq_parent, 1);
            self.platform.timer_frequency = prop_u32(node, "clock-frequency").map(|f| f as u64);
        } else if has(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]) {
            self.platform.psci = match prop_str(node, "method") {
                Some("hvc") => Some(Conduit::Hvc),
                Some("smc") => Some(Conduit::Smc),
                _ => None,
            };
        } else if node.name == "reserved-memory" {
            // Its children are carved out of RAM; they use this node's cell sizes.
            let (inner, depth) = child_chain(node, chain);
            for child in node.children() {
                if let Some(r) = self.reg(child, &inner[..depth], 0) {
                    self.platform.reserved.push(r);
                }
            }
            return;
        }
        if chain.len() >= MAX_DEPTH {
            return;
        }
        let (inner, depth) = child_chain(node, chain);
        let child_parent = prop_u32(node, "interrupt-parent").or(irq_parent);
        for child in node.children() {
            self.visit(child, &inner[..depth], child_parent);
        }
    }
}

/// Reads `/chosen/linux,initrd-start` and `-end` (32- or 64-bit cells).
fn initrd_info(fdt: &Fdt<'static>) -> InitrdInfo {
    let Some(chosen) = fdt.find_node("/chosen") else { return InitrdInfo::Absent };
    let read = |name| {
        chosen.property(name).map(|p| match p.value.len() {
            4 => be32(p.value, 0).map(|v| v as usize),
            8 => read_cells(p.value, 0, 2),
            _ => None,
        })
    };
    match (read("linux,initrd-start"), read("linux,initrd-end")) {
        (None, None) => InitrdInfo::Absent,
        (Some(Some(start)), Some(Some(end))) if end > start => InitrdInfo::Present(Region {
            base: start,
            size: end - start,
        }),
        (Some(Some(_)), Some(Some(_))) => InitrdInfo::Malformed("linux,initrd-end is not above linux,initrd-start"),
        (Some(_), None) | (None, Some(_)) => InitrdInfo::Malformed("only one of linux,initrd-start and linux,initrd-end is present"),
        _ => InitrdInfo::Malformed("linux,initrd-start/-end are neither 32- nor 64-bit cells"),
    }
}

/// Parses the device tree at physical address `ptr`. `readable` is RAM the boot map
/// covers; the pointer must lie inside it before anything is read.
pub fn parse(ptr: usize, readable: Region) -> Result<Platform, DtbError> {
    if ptr == 0 || !ptr.is_multiple_of(8) || !readable.contains(&Region { base: ptr, size: 40 }) {
        return Err(DtbError::BadPointer(ptr));
    }
    // SAFETY: the 40-byte header lies in mapped RAM (checked above) and is 8-byte aligned.
    let header = unsafe { core::slice::from_raw_parts(ptr as *const u8, 40) };
    if be32(header, 0) != Some(FDT_MAGIC) {
        return Err(DtbError::Invalid(ptr));
    }
    let size = be32(header, 4).unwrap_or(0) as usize;
    if !(40..=MAX_DTB_SIZE).contains(&size) || !readable.contains(&Region { base: ptr, size }) {
        return Err(DtbError::Invalid(ptr));
    }
    // SAFETY: the whole blob lies in mapped RAM (checked above). The frame allocator
    // reserves it, so it stays valid and unchanged for the kernel's lifetime.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(ptr as *const u8, size) };
    let fdt = Fdt::new(bytes).map_err(|_| DtbError::Invalid(ptr))?;

    let mut reserved = List::new();
    for r in fdt.memory_reservations() {
        reserved.push(Region {
            base: r.address() as usize,
            size: r.size(),
        });
    }
    let chosen = fdt.find_node("/chosen");
    let stdout_name = chosen.and_then(|c| prop_str(c, "stdout-path")).and_then(|path| {
        let path = path.split(':').next()?;
        let path = if path.starts_with('/') { path } else { fdt.aliases()?.resolve(path)? };
        path.rsplit('/').next()
    });
    let platform = Platform {
        dtb: Region { base: ptr, size },
        model: fdt.find_node("/").and_then(|r| prop_str(r, "model")).unwrap_or("(no model)"),
        reserved,
        initrd: initrd_info(&fdt),
        bootargs: chosen.and_then(|c| prop_str(c, "bootargs")).unwrap_or(""),
        ..Platform::empty()
    };
    let walker = walk(Walker {
        platform,
        stdout_name,
        fdt,
        target: None,
        found: alloc::vec::Vec::new(),
        irq_parent: core::cell::Cell::new(None),
    });
    DTB.store(bytes.as_ptr() as usize, core::sync::atomic::Ordering::Relaxed);
    DTB_SIZE.store(size, core::sync::atomic::Ordering::Relaxed);
    Ok(walker.platform)
}

static DTB: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
static DTB_SIZE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The first of [`find_devices`]: first register range (CPU address), first interrupt.
pub fn find_device(compatible: &str) -> Option<Device> {
    find_devices(compatible).into_iter().next()
}

/// An enabled node with a register range, as `parse` found it (raw `compatible` list).
#[derive(Clone, Copy, Default)]
struct Indexed {
    compatible: &'static [u8],
    device: Option<Device>,
}

/// Every enabled node with a `compatible` and a register range, in tree order.
static INDEX: crate::sync::IrqLock<List<Indexed, 128>> = crate::sync::IrqLock::new(
    "device-tree index",
    List {
        items: [Indexed { compatible: &[], device: None }; 128],
        len: 0,
        overflowed: false,
    },
);

/// Every enabled node compatible with `compatible`, in tree order: `parse`'s index (a walk
/// if the tree had more devices than it holds).
pub fn find_devices(compatible: &str) -> alloc::vec::Vec<Device> {
    {
        // Read in place: the index (11 KiB) is too large to copy onto a thread's stack.
        let index = INDEX.lock();
        if index.len > 0 && !index.overflowed {
            let matches = |i: &&Indexed| is_compatible(Some(i.compatible), &[compatible]);
            return index.as_slice().iter().filter(matches).filter_map(|i| i.device).collect();
        }
    }
    let Some(fdt) = boot_fdt() else {
        return alloc::vec::Vec::new();
    };
    walk(Walker {
        platform: Platform::empty(),
        stdout_name: None,
        fdt,
        target: Some(compatible),
        found: alloc::vec::Vec::new(),
        irq_parent: core::cell::Cell::new(None),
    })
    .found
}

/// The boot device tree (as `parse` accepted it), if any.
fn boot_fdt() -> Option<Fdt<'static>> {
    let (ptr, size) = (
        DTB.load(core::sync::atomic::Ordering::Relaxed),
        DTB_SIZE.load(core::sync::atomic::Ordering::Relaxed),
    );
    if ptr == 0 {
        return None;
    }
    // SAFETY: the same validated, reserved blob `parse` accepted.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(ptr as *const u8, size) };
    Fdt::new(bytes).ok()
}

fn walk(mut walker: Walker<'_>) -> Walker<'_> {
    let fdt = walker.fdt;
    if let Some(root) = fdt.find_node("/") {
        let root_bus = Bus {
            address_cells: prop_u32(root, "#address-cells").unwrap_or(2) as usize,
            size_cells: prop_u32(root, "#size-cells").unwrap_or(1) as usize,
            ranges: None,
            parent_address_cells: 2,
        };
        let irq_parent = prop_u32(root, "interrupt-parent");
        for child in root.children() {
            walker.visit(child, &[root_bus], irq_parent);
        }
    }
    walker
}

/// The value of `key=value` in the kernel command line, if present.
pub fn bootarg<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    bootargs.split_ascii_whitespace().find_map(|arg| {
        let (k, v) = arg.split_once('=').unwrap_or((arg, ""));
        (k == key).then_some(v)
    })
}
