//! QvQ: a language-isolated microkernel for AArch64.
//!
//! Boot order: vectors → boot map and MMU → device tree (board fills gaps) → console →
//! frames, page tables, heap → interrupts and timer → initrd → threads.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
#[cfg(feature = "selftest")]
mod bench;
#[cfg(feature = "selftest")]
mod bench_block;
#[cfg(feature = "selftest")]
mod bench_growth;
mod bsp;
mod console;
mod devicetree;
mod domain;
mod driver;
mod exception;
#[cfg(feature = "hostlink")]
mod hostlink;
mod irq;
mod keyring;
mod log;
mod memory;
mod monitor;
mod power;
mod sched;
#[cfg(feature = "selftest")]
mod selftest;
mod sync;
mod time;

use devicetree::{InitrdInfo, Platform};
use memory::Region;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// On every tick: the domains' CPU-budget watchdog looks at the interrupted call first,
/// then the scheduler accounts the tick.
static TICK_HOOKS: [fn(); 2] = [domain::watchdog_tick, sched::tick];

/// First Rust code, called by boot.s at EL1 on the boot stack, MMU off, IRQs masked;
/// `entry_el` is the exception level the loader started us at.
#[no_mangle]
pub extern "C" fn kernel_entry(dtb: usize, entry_el: u64) -> ! {
    arch::exception::install_vectors();
    arch::pmu::enable();
    memory::early_init(bsp::BOOT_MAP);
    let semihosting = arch::semihosting::probe();
    let (mut platform, dt_error) = match devicetree::parse(dtb, bsp::BOOT_RAM) {
        Ok(p) => (p, None),
        Err(e) => (Platform::empty(), Some(e)),
    };
    let filled = bsp::fill_gaps(&mut platform);

    let uart = platform.uart.expect("fill_gaps provides a UART");
    let uart_clock = platform.uart_clock_hz.unwrap_or(bsp::DEFAULTS.uart_clock_hz);
    // SAFETY: the boot map covers the board's device range as Device memory, and this is
    // the only driver of the console UART.
    let pl011 = unsafe { driver::pl011::Pl011::new(uart.reg.base) };
    pl011.init(uart_clock);
    console::init(pl011);

    let counter_hz = match arch::timer::reported_frequency() {
        0 => platform.timer_frequency.unwrap_or(bsp::DEFAULTS.counter_hz),
        f => f,
    };
    time::init(counter_hz);
    time::on_tick(&TICK_HOOKS);

    kprintln!();
    kprintln!("QvQ {VERSION} - a language-isolated microkernel for AArch64 (board {})", bsp::NAME);
    info!("boot: entered at EL{entry_el}, running at EL1, device tree pointer {dtb:#x}");
    match dt_error {
        Some(e) => warn!("devicetree: {e}; falling back to {} board defaults", bsp::NAME),
        None => info!("devicetree: {} at {}", platform.model, platform.dtb),
    }
    for note in filled.as_slice() {
        warn!("devicetree: {note}");
    }
    if platform.memory.overflowed || platform.reserved.overflowed {
        warn!("devicetree: more memory or reserved ranges than QvQ tracks; extra ones ignored");
    }
    info!("console: PL011 at {:#x} ({})", uart.reg.base, uart.name);
    info!("semihosting: {}", if semihosting { "available" } else { "not available" });
    if !platform.bootargs.is_empty() {
        info!("command line: {}", platform.bootargs);
    }
    power::set_psci(platform.psci);

    let initrd = check_initrd(&platform);
    let mut reserved = devicetree::List::<Region, 24>::new();
    reserved.push(platform.dtb);
    if let Some(r) = initrd {
        reserved.push(r);
    }
    for r in platform.reserved.as_slice() {
        reserved.push(*r);
    }
    let mut devices = devicetree::List::<Region, 4>::new();
    devices.push(uart.reg);
    if let Some((d, c)) = platform.gic {
        devices.push(d);
        devices.push(c);
    }
    for r in [platform.bcm_local, platform.bcm_armctrl].into_iter().flatten() {
        devices.push(r);
    }
    match memory::init(platform.memory.as_slice(), reserved.as_slice(), devices.as_slice()) {
        Ok(m) => info!(
            "memory: {} MiB RAM, {} free frames, {} KiB kernel heap; text RX, rodata R, data RW+XN, stack guards unmapped",
            m.ram_bytes >> 20,
            m.free_frames,
            m.heap_bytes >> 10
        ),
        Err(e) => {
            warn!("memory: {e}; cannot continue");
            power::exit(exception::FAULT_EXIT_STATUS);
        }
    }

    init_interrupts(&platform);

    let initrd_bytes = initrd.map(|r| {
        // SAFETY: the range lies in RAM (checked), is mapped, and the frame allocator
        // keeps it reserved for the kernel's lifetime.
        unsafe { core::slice::from_raw_parts(r.base as *const u8, r.size) }
    });
    keyring::log();
    // Validated once (every offset, length and CRC); the domain layer keeps the result.
    let archive = initrd_bytes.and_then(|bytes| match initrd::Archive::parse_with(bytes, initrd_crc32) {
        Ok(a) => {
            info!("initrd: {} entries", a.len());
            Some(a)
        }
        Err(e) => {
            warn!("initrd: rejected: {e}");
            None
        }
    });

    sched::init();
    let bootargs = platform.bootargs;
    let uart_device = platform.uart;
    if let Err(e) = sched::spawn("init", sched::Priority::Normal, move || {
        init_thread(bootargs, initrd_bytes, archive, uart_device)
    }) {
        warn!("sched: cannot start the init thread: {e}");
        power::exit(exception::FAULT_EXIT_STATUS);
    }
    sched::start()
}

/// Checks the initrd range from `/chosen` against RAM and the kernel; returns it if usable.
fn check_initrd(p: &Platform) -> Option<Region> {
    let r = match p.initrd {
        InitrdInfo::Absent => {
            warn!("initrd: none (no linux,initrd-start in /chosen); booting without domains");
            return None;
        }
        InitrdInfo::Malformed(why) => {
            warn!("initrd: ignored: {why}");
            return None;
        }
        InitrdInfo::Present(r) => r,
    };
    let image = memory::kernel_layout().image;
    if !p.memory.as_slice().iter().any(|m| m.contains(&r)) {
        warn!("initrd: {r} lies outside RAM; ignored");
        None
    } else if r.overlaps(&image) {
        warn!("initrd: {r} overlaps the kernel image {image}; ignored");
        None
    } else if r.overlaps(&p.dtb) {
        warn!("initrd: {r} overlaps the device tree {}; ignored", p.dtb);
        None
    } else {
        info!("initrd: {r}, {} bytes", r.size);
        Some(r)
    }
}

fn init_interrupts(p: &Platform) {
    use alloc::boxed::Box;
    let controller: &'static dyn irq::IrqController = if let Some((d, c)) = p.gic {
        // SAFETY: both frames were mapped as device memory by `memory::init`; this is
        // their only driver.
        Box::leak(Box::new(unsafe { driver::gicv2::GicV2::new(d.base, c.base) }))
    } else if let Some(local) = p.bcm_local {
        // SAFETY: as above, for the BCM2836/BCM2835 controllers.
        Box::leak(Box::new(unsafe {
            driver::bcm2836_intc::Bcm2836Intc::new(local.base, p.bcm_armctrl.map(|r| r.base))
        }))
    } else {
        warn!("irq: no interrupt controller; running without interrupts (no preemption, polled time)");
        return;
    };
    for r in [p.gic.map(|g| g.0), p.gic.map(|g| g.1), p.bcm_local, p.bcm_armctrl].into_iter().flatten() {
        driver::kept::keep(r, "the interrupt controller");
    }
    irq::set_controller(controller);
    info!("irq: {}", controller.name());

    match p.timer_irq.and_then(|s| irq::translate(&s)) {
        Some(n) => match time::start_tick(n) {
            Ok(()) => info!("timer: generic timer, {} Hz counter, {} Hz tick on irq {n}", time::frequency(), time::TICK_HZ),
            Err(e) => warn!("timer: cannot use irq {n}: {e}; no preemption"),
        },
        None => warn!("timer: its interrupt is not one the controller knows; no preemption"),
    }
    match p.uart.and_then(|u| u.irq).and_then(|s| irq::translate(&s)) {
        Some(n) => match console::enable_input(n) {
            Ok(()) => info!("console: input on irq {n}"),
            Err(e) => warn!("console: cannot use irq {n}: {e}; no console input"),
        },
        None => warn!("console: UART has no usable interrupt; no console input"),
    }
}

/// CRC-32 of an initrd entry: by the CPU's CRC32 instructions where it has them.
fn initrd_crc32(bytes: &[u8]) -> u32 {
    arch::crc32::crc32(bytes).unwrap_or_else(|| initrd::crc32(bytes))
}

fn init_thread(bootargs: &'static str, initrd: Option<&'static [u8]>, archive: Option<initrd::Archive<'static>>, uart: Option<devicetree::Device>) {
    // Boot every domain before any thread a domain starts gets the CPU, so the boot log
    // is complete before the shell's prompt.
    sched::set_priority(sched::Priority::High);
    let number = |key| devicetree::bootarg(bootargs, key).and_then(|v| v.parse::<u64>().ok());
    if number("qvq.restart_limit").is_some() || number("qvq.restart_window_ms").is_some() {
        domain::set_restart_rate_limit(
            number("qvq.restart_limit").unwrap_or(3) as usize,
            number("qvq.restart_window_ms").unwrap_or(1000),
        );
    }
    domain::boot(archive, uart);
    #[cfg(feature = "hostlink")]
    domain::push::start();
    #[cfg(not(feature = "hostlink"))]
    info!("push: this kernel has no host-link receiver (built without the `hostlink` feature); swaps come from the initrd only");
    domain::hand_over_console();
    let s = sched::stats();
    info!("QvQ ready: {} threads, tick {} Hz", s.threads, time::TICK_HZ);
    sched::set_priority(sched::Priority::Normal);
    if let Some(name) = devicetree::bootarg(bootargs, "qvq.test") {
        #[cfg(feature = "selftest")]
        selftest::run(name);
        #[cfg(not(feature = "selftest"))]
        warn!("qvq.test={name}: this kernel was built without the selftests (`cargo xtask run --selftest`)");
    }
    if !domain::shell_running() {
        monitor::run(initrd)
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = arch::cpu::irq_save();
    log::force_unlock();
    kprintln!();
    kprintln!("KERNEL PANIC in {}: {}", sched::describe_current(), info);
    power::exit(4)
}
