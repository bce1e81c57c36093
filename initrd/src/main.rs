//! `qvq-initrd`: pack, list and extract QvQ initrd archives.
//! Exit status: 0 success, 1 refused archive or I/O problem, 2 usage error. A reader that
//! closes the output pipe early (`| head`) does not change the status and prints nothing.

use clap::{Parser, Subcommand};
use std::fmt::Write as _;
use std::io::Write as _;
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
    List {
        /// The archive.
        image: PathBuf,
    },
    /// Validate an archive and write each entry into DIR.
    Extract {
        /// The archive.
        image: PathBuf,
        /// Where to write the entries (created if missing).
        dir: PathBuf,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Runs one command; returns what it prints on standard output (writing to a String
/// cannot fail, so `writeln!`'s result is ignored).
fn run(cli: Cli) -> Result<String, (u8, String)> {
    let mut o = String::new();
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
            let _ = writeln!(o, "{}: {} entries, {} bytes", out.display(), entries.len(), img.len());
        }
        Command::List { image } => {
            let bytes = read(&image).map_err(|e| (1, e))?;
            let ar = initrd::Archive::parse(&bytes).map_err(|e| (1, format!("{}: {e}", image.display())))?;
            let _ = writeln!(o, "{:<32} {:>10} {:>10}", "NAME", "SIZE", "OFFSET");
            for e in ar.entries() {
                let _ = writeln!(o, "{:<32} {:>10} {:>#10x}", e.name, e.data.len(), e.data_offset);
            }
        }
        Command::Extract { image, dir } => {
            let bytes = read(&image).map_err(|e| (1, e))?;
            let ar = initrd::Archive::parse(&bytes).map_err(|e| (1, format!("{}: {e}", image.display())))?;
            std::fs::create_dir_all(&dir).map_err(|e| (1, format!("cannot create {}: {e}", dir.display())))?;
            for e in ar.entries() {
                let path = dir.join(e.name);
                std::fs::write(&path, e.data).map_err(|err| (1, format!("cannot write {}: {err}", path.display())))?;
                let _ = writeln!(o, "{}", path.display());
            }
        }
    }
    Ok(o)
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
        Ok(text) => {
            // A reader that stopped reading (`| head`) is not an error of this command.
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    let _ = writeln!(std::io::stderr(), "qvq-initrd: cannot write to standard output: {e}");
                    ExitCode::from(1)
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err((code, msg)) => {
            let _ = writeln!(std::io::stderr(), "qvq-initrd: {msg}");
            ExitCode::from(code)
        }
    }
}
