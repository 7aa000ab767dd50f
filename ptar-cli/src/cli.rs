//! Command-line definitions.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

/// tar-style invocation: one mode, an archive, operands.
#[derive(Parser, Debug)]
#[command(name = "ptar", version, about = "Archive files into a deduplicating, verifiable, optionally encrypted .ptar", long_about = None)]
#[command(group(ArgGroup::new("mode").required(true).args(["create", "append", "list", "extract", "verify"])))]
pub struct TarArgs {
    /// Create a new archive holding one snapshot of the given paths.
    #[arg(short = 'c', long = "create", help_heading = "Modes")]
    pub create: bool,
    /// Append a new snapshot of the given paths to an existing archive.
    #[arg(short = 'r', long = "append", help_heading = "Modes")]
    pub append: bool,
    /// List the contents of a snapshot.
    #[arg(short = 't', long = "list", help_heading = "Modes")]
    pub list: bool,
    /// Extract a snapshot.
    #[arg(short = 'x', long = "extract", help_heading = "Modes")]
    pub extract: bool,
    /// Check the archive's structure, chain, MACs and signatures (with --full: every blob).
    #[arg(long = "verify", help_heading = "Modes")]
    pub verify: bool,

    /// The archive file.
    #[arg(short = 'f', long = "file", value_name = "ARCHIVE", required = true)]
    pub file: PathBuf,
    /// Change to DIR before reading operands (create/append) or extract into DIR.
    #[arg(short = 'C', long = "directory", value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// List names as they are processed; twice for a long listing.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Snapshot to read: an id prefix, `latest`, or N (the N-th from the end).
    #[arg(
        long = "snapshot",
        value_name = "ID",
        default_value = "latest",
        help_heading = "Snapshots"
    )]
    pub snapshot: String,
    /// Name of the new snapshot.
    #[arg(long = "name", value_name = "NAME", help_heading = "Snapshots")]
    pub name: Option<String>,
    /// Tag for the new snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG", help_heading = "Snapshots")]
    pub tags: Vec<String>,

    /// Encrypt the new archive with a passphrase (asked twice, or PTAR_PASSPHRASE, or --passphrase-file).
    #[arg(long = "encrypt", help_heading = "Encryption and signatures")]
    pub encrypt: bool,
    /// Read the passphrase from the first line of FILE.
    #[arg(
        long = "passphrase-file",
        value_name = "FILE",
        help_heading = "Encryption and signatures"
    )]
    pub passphrase_file: Option<PathBuf>,
    /// Argon2id costs for a new archive as MEMORY_KIB,PASSES,LANES (default 262144,3,4).
    #[arg(
        long = "kdf-params",
        value_name = "M,T,P",
        help_heading = "Encryption and signatures",
        hide = true
    )]
    pub kdf_params: Option<String>,
    /// Sign the new generation's footer with this secret key (see `ptar keygen`).
    #[arg(
        long = "sign",
        value_name = "KEY",
        help_heading = "Encryption and signatures"
    )]
    pub sign: Option<PathBuf>,
    /// With --verify: require the newest footer to be signed by this public key.
    #[arg(
        long = "trusted-key",
        value_name = "PUB",
        help_heading = "Encryption and signatures"
    )]
    pub trusted_key: Option<PathBuf>,
    /// With --verify: decrypt, decompress and re-hash every blob.
    #[arg(long = "full")]
    pub full: bool,

    /// Files and directories to archive.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Subcommands that are not tar modes.
#[derive(Parser, Debug)]
#[command(name = "ptar", version)]
pub struct SubArgs {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Subcommand, Debug)]
pub enum Sub {
    /// List every snapshot: id, time, host, file count, size, paths.
    Snapshots {
        /// The archive file.
        #[arg(short = 'f', long = "file", value_name = "ARCHIVE")]
        file: PathBuf,
        /// Read the passphrase from the first line of FILE.
        #[arg(long = "passphrase-file", value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Change (or, with --add, add) the passphrase of an encrypted archive.
    ///
    /// Appends a generation holding a new key-slot table; no data is
    /// re-encrypted. The old passphrase stops opening the archive, but its
    /// slot stays in the file's earlier bytes: to revoke it, copy the
    /// snapshots into a new archive.
    Passwd {
        /// The archive file.
        #[arg(short = 'f', long = "file", value_name = "ARCHIVE")]
        file: PathBuf,
        /// Read the current passphrase from the first line of FILE (else PTAR_PASSPHRASE or the terminal).
        #[arg(long = "passphrase-file", value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Read the new passphrase from the first line of FILE (else PTAR_NEW_PASSPHRASE or the terminal).
        #[arg(long = "new-passphrase-file", value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
        /// Keep the current passphrase working too.
        #[arg(long = "add")]
        add: bool,
        /// Argon2id costs as MEMORY_KIB,PASSES,LANES.
        #[arg(long = "kdf-params", value_name = "M,T,P", hide = true)]
        kdf_params: Option<String>,
    },
    /// Write a new ed25519 signing key to KEY and its public half to KEY.pub.
    Keygen {
        /// Where to write the secret key.
        #[arg(short = 'o', long = "output", value_name = "KEY")]
        output: PathBuf,
    },
}

/// A parsed command line.
#[derive(Debug)]
pub enum Command {
    Tar(Box<TarArgs>),
    Sub(Sub),
}

const SUBCOMMANDS: &[&str] = &["snapshots", "keygen", "passwd"];

/// Parses argv.
pub fn parse(args: Vec<OsString>) -> Result<Command, clap::Error> {
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        if SUBCOMMANDS.contains(&first) {
            return SubArgs::try_parse_from(args).map(|s| Command::Sub(s.command));
        }
    }
    TarArgs::try_parse_from(args).map(|t| Command::Tar(Box::new(t)))
}
