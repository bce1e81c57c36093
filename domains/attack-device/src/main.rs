//! Attack domain (class: device-grant abuse). Its manifest grants one device without an
//! interrupt (the test fixture picks one per board). It claims indices past its grants,
//! waits for an interrupt the grant does not have, and touches the edges of the granted
//! MMIO range; the variant (manifest minor version) picks the out-of-range access that
//! must crash it: 1 `read32(size)`, 2 `read32(usize::MAX - 3)`, 3 `write32(size, 0)`,
//! 4 `read32(size - 2)` (unaligned, straddling the end).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use runtime::Device;

fn abuse() {
    let variant = runtime::version().1;
    let beyond = [1u32, 2, 3, 64, 1000, u32::MAX];
    let mut refused = 0;
    for i in beyond {
        match Device::claim(i) {
            None => refused += 1,
            Some(d) => runtime::println!("ESCAPE: claim({i}) granted {} bytes", d.mmio.size()),
        }
    }
    runtime::println!("claims past the grant refused: {refused} of {}", beyond.len());
    let Some(d) = Device::claim(0) else {
        runtime::println!("no grant 0: the fixture must grant one device");
        return;
    };
    let again = Device::claim(0).is_some();
    let size = d.mmio.size();
    runtime::println!("grant 0: {size:#x} bytes, interrupt {}, claimed twice {again}", d.has_irq());
    d.irq_done();
    runtime::println!("irq_done on a grant without an interrupt returned");
    let waited = d.wait_irq();
    runtime::println!("wait_irq on a grant without an interrupt returned {waited}");
    let last = d.mmio.read32(size - 4);
    runtime::println!("read32(size-4) fine ({last:#x})");
    let v = match variant {
        1 => d.mmio.read32(size),
        2 => d.mmio.read32(usize::MAX - 3),
        3 => {
            d.mmio.write32(size, 0);
            0
        }
        _ => d.mmio.read32(size - 2),
    };
    runtime::println!("ESCAPE: the out-of-range access of variant {variant} returned {v:#x}");
}

fn init() -> Result<(), &'static str> {
    runtime::spawn("abuse", abuse).map_err(|_| "cannot spawn")
}

runtime::entry!(init);
