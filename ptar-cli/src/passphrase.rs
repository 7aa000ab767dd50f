//! Where passphrases come from: PTAR_PASSPHRASE, --passphrase-file, or the terminal.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

/// A passphrase to read an archive.
pub fn for_reading(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>> {
    obtain(file, false)
}

/// A passphrase for a new archive (asked twice at a terminal).
pub fn for_new_archive(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>> {
    obtain(file, true)
}

/// A new passphrase for an existing archive: the file, PTAR_NEW_PASSPHRASE, or the terminal (twice).
pub fn new_for_existing(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>> {
    obtain_from(file, "PTAR_NEW_PASSPHRASE", "New passphrase", true)
}

/// The passphrase of `ptar sync`'s existing destination: the file,
/// PTAR_DEST_PASSPHRASE, or the terminal.
pub fn dest_for_reading(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>> {
    obtain_from(
        file,
        "PTAR_DEST_PASSPHRASE",
        "Destination passphrase",
        false,
    )
}

/// The passphrase of a destination `ptar sync` creates encrypted: the file,
/// PTAR_DEST_PASSPHRASE, or the terminal (twice).
pub fn dest_for_new_archive(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>> {
    obtain_from(file, "PTAR_DEST_PASSPHRASE", "Destination passphrase", true)
}

fn obtain(file: Option<&Path>, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
    obtain_from(file, "PTAR_PASSPHRASE", "Passphrase", confirm)
}

fn obtain_from(
    file: Option<&Path>,
    var: &str,
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<Vec<u8>>> {
    let p = if let Some(f) = file {
        let text = Zeroizing::new(
            std::fs::read(f)
                .with_context(|| format!("cannot read passphrase file {}", f.display()))?,
        );
        let line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Zeroizing::new(line.to_vec())
    } else if let Some(v) = std::env::var_os(var) {
        Zeroizing::new(std::os::unix::ffi::OsStringExt::into_vec(v))
    } else if std::io::stdin().is_terminal()
        || std::fs::metadata("/dev/tty").is_ok() && std::io::stderr().is_terminal()
    {
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("{prompt}: "))
                .context("cannot read the passphrase")?
                .into_bytes(),
        );
        if confirm {
            let second = Zeroizing::new(
                rpassword::prompt_password(format!("{prompt} (again): "))
                    .context("cannot read the passphrase")?
                    .into_bytes(),
            );
            if first != second {
                bail!("the passphrases do not match");
            }
        }
        first
    } else {
        bail!("a passphrase is needed: set {var}, pass a passphrase file, or run at a terminal");
    };
    if p.is_empty() {
        bail!("an empty passphrase is refused");
    }
    Ok(p)
}
