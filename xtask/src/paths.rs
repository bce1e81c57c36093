//! Where things are: the workspace, the domains, the keys, and what the build writes under
//! `target/`. Every other module takes its paths from here, so none of them needs another
//! just for a path.

use crate::board::Board;
use crate::setup::KERNEL_TARGET;
use std::path::{Path, PathBuf};

/// The root workspace (the folder above xtask/).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `target/qvq/<board>/`: kernel8.img, kernel.elf, initrd.img, test initrds, sockets.
pub fn out_dir(board: Board) -> PathBuf {
    workspace_root().join("target/qvq").join(board.name())
}

/// The domain workspace (`domains/`).
pub fn domains_dir() -> PathBuf {
    workspace_root().join("domains")
}

/// A domain crate's folder, `domains/<name>/`.
pub fn domain_dir(name: &str) -> PathBuf {
    domains_dir().join(name)
}

/// Where the domain workspace builds for the kernel's target (`target/domains/`).
pub fn domains_target_dir() -> PathBuf {
    workspace_root().join("target/domains")
}

/// Where host builds of the domain workspace (its unit and compile-fail tests, clippy) go.
pub fn domains_host_target_dir() -> PathBuf {
    workspace_root().join("target/domains-host")
}

/// The built ELF of domain package `name`.
pub fn domain_elf(name: &str) -> PathBuf {
    domains_target_dir().join(KERNEL_TARGET).join("release").join(name)
}

/// Where signed domains go: `target/qvq/domains/<entry>.qvd`.
pub fn signed_domains_dir() -> PathBuf {
    workspace_root().join("target/qvq/domains")
}

/// The board recipe, `initrd/<board>.toml`.
pub fn recipe(board: Board) -> PathBuf {
    workspace_root().join("initrd").join(format!("{}.toml", board.name()))
}

/// The local, git-ignored development keys (`keys/dev/`).
pub fn dev_keys_dir() -> PathBuf {
    workspace_root().join("keys/dev")
}

/// The private key of this machine's limited test key (it may sign only `hello`).
pub fn limited_test_key() -> PathBuf {
    dev_keys_dir().join("limited-test.key.pem")
}

/// The private key of this machine's revoked test key.
pub fn revoked_test_key() -> PathBuf {
    dev_keys_dir().join("revoked-test.key.pem")
}

/// The project's device tree source for QEMU raspi3b.
pub fn rpi3_dts() -> PathBuf {
    workspace_root().join("kernel/src/bsp/rpi3/rpi3.dts")
}

/// The host link socket `cargo xtask run` connects the second serial port to.
pub fn host_link_socket(board: Board) -> PathBuf {
    out_dir(board).join("hostlink.sock")
}
