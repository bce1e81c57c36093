//! The PCI host bridge in the device tree: where its configuration space and I/O window
//! are, and which interrupt a device's INTx pin raises (the host link's 16550 on virt).

use super::{be32, boot_fdt, enabled, is_compatible, prop_u32, read_cells};
use crate::irq::IrqSpec;
use crate::memory::Region;

/// PCI address space code (bits 24-25 of a child address's first cell) of I/O space.
const PCI_SPACE_IO: u32 = 0b01;

/// The first enabled generic ECAM PCI host bridge at the root: its configuration space
/// and its I/O window (CPU addresses). Child addresses in `ranges` are 3 cells.
pub fn pci_host() -> Option<(Region, Region)> {
    let fdt = boot_fdt()?;
    let root = fdt.find_node("/")?;
    let parent_cells = prop_u32(root, "#address-cells").unwrap_or(2) as usize;
    let node = root
        .children()
        .find(|n| enabled(*n) && is_compatible(n.property("compatible").map(|p| p.value), &["pci-host-ecam-generic"]))?;
    let size_cells = prop_u32(node, "#size-cells").unwrap_or(2) as usize;
    let root_size_cells = prop_u32(root, "#size-cells").unwrap_or(1) as usize;
    let reg = node.property("reg")?.value;
    let ecam = Region {
        base: read_cells(reg, 0, parent_cells)?,
        size: read_cells(reg, parent_cells * 4, root_size_cells)?,
    };
    let ranges = node.property("ranges")?.value;
    let entry = (3 + parent_cells + size_cells) * 4;
    let io = (0..ranges.len() / entry).find_map(|i| {
        let at = i * entry;
        let space = (be32(ranges, at)? >> 24) & 0b11;
        (space == PCI_SPACE_IO).then_some(())?;
        Some(Region {
            base: read_cells(ranges, at + 12, parent_cells)?,
            size: read_cells(ranges, at + 12 + parent_cells * 4, size_cells)?,
        })
    })?;
    Some((ecam, io))
}

/// The interrupt of PCI INTx `pin` (1 = INTA) of device `slot` on bus 0 of the host bridge
/// `pci_host` found, from its `interrupt-map` (child: 3 address cells and 1 interrupt cell,
/// masked by `interrupt-map-mask`; then the parent's phandle, address and specifier).
pub fn pci_intx(slot: u32, pin: u32) -> Option<IrqSpec> {
    let fdt = boot_fdt()?;
    let root = fdt.find_node("/")?;
    let node = root
        .children()
        .find(|n| enabled(*n) && is_compatible(n.property("compatible").map(|p| p.value), &["pci-host-ecam-generic"]))?;
    let map = node.property("interrupt-map")?.value;
    let mask = node.property("interrupt-map-mask").map(|p| p.value);
    let m = |i: usize| mask.and_then(|v| be32(v, i * 4)).unwrap_or(u32::MAX);
    let (want_hi, want_pin) = ((slot << 11) & m(0), pin & m(3));
    let mut at = 0;
    while at < map.len() {
        let (hi, child_pin, phandle) = (be32(map, at)?, be32(map, at + 12)?, be32(map, at + 16)?);
        let parent = fdt.find_phandle(phandle)?;
        let address_cells = prop_u32(parent, "#address-cells").unwrap_or(0) as usize;
        let irq_cells = prop_u32(parent, "#interrupt-cells")? as usize;
        let spec_at = at + 20 + address_cells * 4;
        if hi & m(0) == want_hi && child_pin & m(3) == want_pin && irq_cells <= 4 {
            let mut cells = [0u32; 4];
            for (i, c) in cells.iter_mut().enumerate().take(irq_cells) {
                *c = be32(map, spec_at + i * 4)?;
            }
            let controller = parent.compatible()?.first();
            return Some(IrqSpec::new(controller, &cells[..irq_cells]));
        }
        at = spec_at + irq_cells * 4;
    }
    None
}
