//! `qvq-initrd`: pack, list and extract QvQ initrd archives.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "qvq-initrd", version, about = "Pack, list and extract QvQ initrd archives (format: initrd/FORMAT.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pack FILES, in the order given, into a new archive; each entry is named after its file name.
    Pack {
        /// Where to write the archive.
        #[arg(short, long)]
        out: PathBuf,
        /// Files to pack (normally signed `.qvd` domain envelopes).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate an archive and list its entries (name, size, offset).
    List { image: PathBuf },
    /// Validate an archive and write each entry into DIR.
    Extract { image: PathBuf, dir: PathBuf },
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn run(cli: Cli) -> Result<(), (u8, String)> {
    match cli.command {
        Command::Pack { out, files } => {
            let mut entries = Vec::new();
            for f in &files {
                let name = f
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or((2, format!("{}: no usable file name", f.display())))?
                    .to_string();
                entries.push((name, read(f).map_err(|e| (1, e))?));
            }
            let img = initrd::pack(&entries).map_err(|e| (1, e.to_string()))?;
            std::fs::write(&out, &img).map_err(|e| (1, format!("cannot write {}: {e}", out.display())))?;
            println!("{}: {} entries, {} bytes", out.display(), entries.len(), img.len());
        }
        Command::List { image } => {
            let bytes = read(&image).map_err(|e| (1, e))?;
            let ar = initrd::Archive::parse(&bytes).map_err(|e| (1, format!("{}: {e}", image.display())))?;
            println!("{:<32} {:>10} {:>10}", "NAME", "SIZE", "OFFSET");
            for e in ar.entries() {
                println!("{:<32} {:>10} {:>#10x}", e.name, e.data.len(), e.data_offset);
            }
        }
        Command::Extract { image, dir } => {
            let bytes = read(&image).map_err(|e| (1, e))?;
            let ar = initrd::Archive::parse(&bytes).map_err(|e| (1, format!("{}: {e}", image.display())))?;
            std::fs::create_dir_all(&dir).map_err(|e| (1, format!("cannot create {}: {e}", dir.display())))?;
            for e in ar.entries() {
                let path = dir.join(e.name);
                std::fs::write(&path, e.data).map_err(|err| (1, format!("cannot write {}: {err}", path.display())))?;
                println!("{}", path.display());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("qvq-initrd: {msg}");
            ExitCode::from(code)
        }
    }
}
