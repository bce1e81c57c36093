//! Picks the board's linker script. Nothing here generates or rewrites sources.
fn main() {
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let virt = std::env::var_os("CARGO_FEATURE_VIRT").is_some();
    let rpi3 = std::env::var_os("CARGO_FEATURE_RPI3").is_some();
    let board = match (virt, rpi3) {
        (true, false) => "virt",
        (false, true) => "rpi3",
        _ => panic!("build the kernel with exactly one board feature: `cargo xtask build --board virt|rpi3`"),
    };
    let bsp = dir.join("src/bsp").join(board);
    println!("cargo:rustc-link-search={}", dir.join("src/arch/aarch64").display());
    println!("cargo:rustc-link-arg=-T{}", bsp.join("link.ld").display());
    println!("cargo:rerun-if-changed={}", bsp.join("link.ld").display());
    println!("cargo:rerun-if-changed={}", dir.join("src/arch/aarch64/kernel.ld").display());
}
