//! Interrupt dispatch: one controller (chosen from the device tree) and a table of handlers
//! that drivers register into.

use crate::sync::IrqLock;
use alloc::collections::BTreeMap;

/// An interrupt number in the active controller's numbering.
pub type IrqNumber = u32;

/// What every interrupt controller driver provides.
pub trait IrqController: Send + Sync {
    fn name(&self) -> &'static str;
    /// Unmasks `irq`; false if this controller has no such line.
    fn enable(&self, irq: IrqNumber) -> bool;
    fn disable(&self, irq: IrqNumber);
    /// The highest-priority pending interrupt, acknowledged; `None` if spurious.
    fn claim(&self) -> Option<IrqNumber>;
    /// Signals the end of handling `irq`.
    fn complete(&self, irq: IrqNumber);
    /// Decodes a device-tree `interrupts` specifier whose parent is the controller node
    /// with compatible string `controller`.
    fn translate(&self, controller: &str, cells: &[u32]) -> Option<IrqNumber>;
}

/// A registered handler: a function and an opaque word it gets back.
#[derive(Clone, Copy)]
pub struct Handler {
    pub name: &'static str,
    pub func: fn(IrqNumber, usize),
    pub context: usize,
    /// The domain the interrupt is delivered to (0: the kernel itself).
    pub owner: u32,
    /// A kernel handler a driver domain may take over (the boot console's input); every
    /// other kernel handler (the timer's) stays the kernel's.
    pub handover: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    NoController,
    AlreadyRegistered,
    /// The kernel keeps this interrupt for itself (the timer's).
    KernelOwned,
    NoSuchLine,
}

impl core::fmt::Display for IrqError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            IrqError::NoController => "no interrupt controller",
            IrqError::AlreadyRegistered => "interrupt already has a handler",
            IrqError::KernelOwned => "the kernel keeps this interrupt for itself",
            IrqError::NoSuchLine => "the controller has no such interrupt line",
        })
    }
}

static CONTROLLER: IrqLock<Option<&'static dyn IrqController>> = IrqLock::new("irq controller", None);
static HANDLERS: IrqLock<BTreeMap<IrqNumber, Handler>> = IrqLock::new("irq handlers", BTreeMap::new());

pub fn set_controller(c: &'static dyn IrqController) {
    *CONTROLLER.lock() = Some(c);
}

pub fn controller() -> Option<&'static dyn IrqController> {
    *CONTROLLER.lock()
}

/// Decodes a device-tree interrupt specifier with the active controller.
pub fn translate(spec: &IrqSpec) -> Option<IrqNumber> {
    controller()?.translate(spec.controller, spec.cells())
}

/// Installs `handler` for `irq` and unmasks it.
pub fn register(irq: IrqNumber, handler: Handler) -> Result<(), IrqError> {
    let c = controller().ok_or(IrqError::NoController)?;
    {
        let mut table = HANDLERS.lock();
        if table.contains_key(&irq) {
            return Err(IrqError::AlreadyRegistered);
        }
        table.insert(irq, handler);
    }
    if !c.enable(irq) {
        HANDLERS.lock().remove(&irq);
        return Err(IrqError::NoSuchLine);
    }
    Ok(())
}

/// Like `register`, but replaces a handler the kernel itself installed and marked
/// `handover`: this is how a driver domain takes over a device the kernel drove during
/// boot (the console). Any other kernel handler is refused (`KernelOwned`).
pub fn register_taking_over(irq: IrqNumber, handler: Handler) -> Result<(), IrqError> {
    {
        let mut table = HANDLERS.lock();
        match table.get(&irq) {
            Some(h) if h.owner != 0 => return Err(IrqError::AlreadyRegistered),
            Some(h) if !h.handover => return Err(IrqError::KernelOwned),
            Some(_) => {
                table.remove(&irq);
            }
            None => {}
        }
    }
    register(irq, handler)
}

/// Removes `irq`'s handler if domain `owner` installed it (a hot swap may have handed the
/// line to the next version already). True if it did.
pub fn unregister_if_owner(irq: IrqNumber, owner: u32) -> bool {
    let owned = HANDLERS.lock().get(&irq).is_some_and(|h| h.owner == owner);
    if owned {
        unregister(irq);
    }
    owned
}

/// Masks `irq` and removes its handler.
pub fn unregister(irq: IrqNumber) {
    if let Some(c) = controller() {
        c.disable(irq);
    }
    HANDLERS.lock().remove(&irq);
}

/// (irq, handler name) for every registered handler.
pub fn for_each_handler(mut f: impl FnMut(IrqNumber, &'static str)) {
    for (irq, h) in HANDLERS.lock().iter() {
        f(*irq, h.name);
    }
}

/// Called by the exception vector on IRQ, with interrupts masked.
pub fn handle_interrupt() {
    let Some(c) = controller() else { return };
    while let Some(irq) = c.claim() {
        let handler = HANDLERS.lock().get(&irq).copied();
        match handler {
            Some(h) => (h.func)(irq, h.context),
            None => {
                // Nobody asked for it: mask it so it cannot storm.
                c.disable(irq);
                crate::warn!("irq: interrupt {irq} has no handler; masked it");
            }
        }
        c.complete(irq);
    }
}

/// An `interrupts` specifier and the controller it belongs to.
#[derive(Clone, Copy, Debug)]
pub struct IrqSpec {
    /// The matching `compatible` string of the interrupt parent.
    pub controller: &'static str,
    raw: [u32; 4],
    len: usize,
}

impl IrqSpec {
    /// A specifier a board module supplies when the device tree has none.
    pub fn new(controller: &'static str, cells: &[u32]) -> Self {
        let mut raw = [0; 4];
        let len = cells.len().min(4);
        raw[..len].copy_from_slice(&cells[..len]);
        Self { controller, raw, len }
    }

    pub fn cells(&self) -> &[u32] {
        &self.raw[..self.len]
    }
}
