//! One run of a domain: what `instantiate` makes from a verified image (the relocated,
//! mapped image and the pristine copy of its data, the private heap, the services table,
//! the device grants), or `reinstantiate` from a crashed run's kept image, and the call of
//! its initialisation. Everything an instance owns is freed when it is dropped, or all but
//! its image when it is kept for a restart (`into_kept`); `reclaim` (lifecycle.rs) first
//! takes back what others hold for it (interrupt routes, shared heap).

use super::continuation::{call_into, EntryKind};
use super::grants::{self, Grant, GrantError};
use super::image::{self, LoadFailure, LoadedImage};
use super::pristine::{Kept, Pristine};
use super::registry::registry;
use super::DomainId;
use crate::memory::{FrameRange, PAGE_SIZE};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use interfaces::KernelServices;
use loader::manifest::Manifest;

/// How a domain hands its state to its next version (registered by its runtime).
#[derive(Clone, Copy)]
pub struct StateHooks {
    pub hash: [u8; 32],
    /// The state type's size: the block handed over must be exactly this big.
    pub size: usize,
    pub export: interfaces::abi::StateExportFn,
    pub export_context: usize,
    pub import: interfaces::abi::StateImportFn,
    pub import_context: usize,
}

/// What one run of a domain owns; all of it goes when the domain dies.
pub struct Instance {
    pub image: LoadedImage,
    /// The image's writable segments as they were before the domain first ran.
    pristine: Pristine,
    heap: FrameRange,
    services: Box<KernelServices>,
    pub grants: Vec<Grant>,
    pub state_hooks: Option<StateHooks>,
}

impl Instance {
    pub fn heap_bytes(&self) -> usize {
        self.heap.bytes()
    }

    pub fn heap_region(&self) -> crate::memory::Region {
        crate::memory::Region {
            base: self.heap.base(),
            size: self.heap.bytes(),
        }
    }

    pub fn services(&self) -> *const KernelServices {
        &*self.services
    }

    /// Ends this run but keeps its image (code not executable) and pristine data for a
    /// restart; the rest (heap, services table, grants) is freed. `None` if the image could
    /// not be kept (its mapping could not be changed): it is freed too.
    pub fn into_kept(self) -> Option<Kept> {
        Kept::park(self.image, self.pristine)
    }
}

/// Why a domain could not be started (or restarted, or prepared for a swap).
#[derive(Debug)]
pub enum StartError {
    Load(LoadFailure),
    /// No frames for the pristine copy of its writable data.
    NoPristineMemory,
    NoHeapMemory,
    Grant(GrantError),
    /// It is not in the registry (it was retired meanwhile).
    NoInstance,
    InitCrashed,
    InitFailed(i32),
    /// Its ELF, loaded again for a restart, no longer matches the verified digest.
    DigestMismatch,
    /// It did not export an interface its manifest declares.
    MissingExport(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Load(e) => write!(f, "cannot load: {e}"),
            StartError::NoPristineMemory => f.write_str("no memory for the pristine copy of its data"),
            StartError::NoHeapMemory => f.write_str("no memory for its heap"),
            StartError::Grant(e) => write!(f, "{e}"),
            StartError::NoInstance => f.write_str("no instance"),
            StartError::DigestMismatch => f.write_str("its image in memory no longer matches the verified digest"),
            StartError::InitCrashed => f.write_str("crashed during initialisation"),
            StartError::InitFailed(code) => write!(f, "initialisation failed (code {code})"),
            StartError::MissingExport(name) => write!(f, "did not export {name}, which its manifest declares"),
        }
    }
}

/// Loads an instance of domain `id` from its verified ELF. With `route_irqs` false (a
/// version prepared for a swap) its interrupts are routed only when the swap commits.
pub fn instantiate(id: DomainId, m: &Manifest, elf: &loader::ElfImage, route_irqs: bool) -> Result<Instance, StartError> {
    super::quota::set(id, m);
    let image = image::load(elf).map_err(StartError::Load)?;
    let pristine = Pristine::capture(&image).ok_or(StartError::NoPristineMemory)?;
    let (heap, grants, services) = the_rest(id, m, route_irqs)?;
    Ok(Instance {
        image,
        pristine,
        heap,
        services,
        grants,
        state_hooks: None,
    })
}

/// A new instance of domain `id` (crashed, its threads gone) on its kept image, which is
/// made as it was before the domain first ran (its writable segments copied back from the
/// pristine copy, its code executable again): no copy, relocation or re-mapping of the ELF.
/// If it fails, the image is kept again for the next attempt.
pub fn reinstantiate(id: DomainId, m: &Manifest, kept: Kept) -> Result<Instance, StartError> {
    super::quota::set(id, m);
    let (image, pristine) = kept.unpark().map_err(StartError::Load)?;
    match the_rest(id, m, true) {
        Ok((heap, grants, services)) => Ok(Instance {
            image,
            pristine,
            heap,
            services,
            grants,
            state_hooks: None,
        }),
        Err(why) => {
            if let Some(kept) = Kept::park(image, pristine) {
                super::pristine::keep(id, kept);
            }
            Err(why)
        }
    }
}

/// What an instance holds besides its image: its heap, device grants and services table.
fn the_rest(id: DomainId, m: &Manifest, route_irqs: bool) -> Result<(FrameRange, Vec<Grant>, Box<KernelServices>), StartError> {
    let heap = FrameRange::alloc(m.heap_limit as usize / PAGE_SIZE).ok_or(StartError::NoHeapMemory)?;
    let uart = registry().uart();
    let grants = grants::grant_devices(id, m, uart, route_irqs).map_err(StartError::Grant)?;
    let v = &m.version;
    let services = Box::new(super::services::table(id, heap.base(), heap.bytes(), [v.major, v.minor, v.patch]));
    Ok((heap, grants, services))
}

struct InitCall {
    entry: usize,
    services: *const KernelServices,
    result: i32,
}

unsafe extern "C" fn invoke_init(data: *mut u8, _table: *const (), _state: *const ()) {
    // SAFETY: `data` is the `InitCall` in `run_init`; `entry` is the verified, relocated,
    // RX-mapped entry point of a domain built with the runtime's `entry!` (this ABI), and
    // `services` the domain's table, owned by its instance for as long as it runs.
    unsafe {
        let call = &mut *(data as *mut InitCall);
        let entry: extern "C" fn(&'static KernelServices) -> i32 = core::mem::transmute(call.entry);
        call.result = entry(&*call.services);
    }
}

/// Calls the initialisation of domain `id` (its instance installed); checks it exported
/// what its manifest declares.
pub fn run_init(id: DomainId, m: &Manifest) -> Result<(), StartError> {
    let (entry, services) = {
        let r = registry();
        let inst = r.get(id).and_then(|d| d.instance()).ok_or(StartError::NoInstance)?;
        (inst.image.entry, inst.services())
    };
    let mut call = InitCall { entry, services, result: -1 };
    let code = call_into(
        id,
        EntryKind::Kernel,
        invoke_init,
        &mut call as *mut InitCall as *mut u8,
        core::ptr::null(),
        core::ptr::null(),
    );
    if code != 0 {
        return Err(StartError::InitCrashed);
    }
    if call.result != 0 {
        return Err(StartError::InitFailed(call.result));
    }
    let r = registry();
    match m.exports.iter().find(|e| !r.exported_by(id, &e.name)) {
        Some(e) => Err(StartError::MissingExport(e.name.clone())),
        None => Ok(()),
    }
}
