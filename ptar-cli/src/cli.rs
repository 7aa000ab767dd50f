//! Command-line definitions.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

/// tar-style invocation: one mode, an archive, operands.
#[derive(Parser, Debug)]
#[command(name = "ptar", version, about = "Archive files into a deduplicating, verifiable, optionally encrypted .ptar", long_about = None)]
#[command(group(ArgGroup::new("mode").required(true).args(["create", "append", "list", "extract", "diff", "verify", "to_tar", "from_tar"])))]
#[command(disable_help_flag = true)]
pub struct TarArgs {
    /// Print help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    pub help: Option<bool>,
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
    /// Compare a snapshot with the file system (exit 1 when something differs).
    #[arg(
        short = 'd',
        long = "diff",
        visible_alias = "compare",
        help_heading = "Modes"
    )]
    pub diff: bool,
    /// Check the archive's structure, chain, MACs and signatures (with --full: every blob).
    #[arg(long = "verify", help_heading = "Modes")]
    pub verify: bool,
    /// Write a snapshot (or the members named) to standard output as a POSIX pax tar stream.
    #[arg(long = "to-tar", help_heading = "Modes")]
    pub to_tar: bool,
    /// Store the tar stream TARFILE (`-`: standard input; not compressed) as a
    /// new snapshot: creates the archive, or appends to it when it exists.
    #[arg(long = "from-tar", value_name = "TARFILE", help_heading = "Modes")]
    pub from_tar: Option<PathBuf>,

    /// The archive file.
    #[arg(short = 'f', long = "file", value_name = "ARCHIVE", required = true)]
    pub file: PathBuf,
    /// With -c: replace ARCHIVE even when it is a ptar archive, discarding
    /// its snapshots (without it, -c refuses; -r adds a snapshot instead).
    #[arg(long = "replace-archive")]
    pub replace_archive: bool,
    /// Change to DIR: for create/append, the operands after it are read from
    /// DIR (repeatable, positional, as in tar); for extract, extract into DIR.
    #[arg(short = 'C', long = "directory", value_name = "DIR", action = clap::ArgAction::Append)]
    pub directory: Vec<PathBuf>,
    /// Read the names to archive, or the members to list or extract, from
    /// FILE (one per line; `-` for standard input).
    #[arg(short = 'T', long = "files-from", value_name = "FILE", action = clap::ArgAction::Append, help_heading = "Selecting files")]
    pub files_from: Vec<PathBuf>,
    /// With -T: names are separated by NUL bytes, not newlines.
    #[arg(long = "null", help_heading = "Selecting files")]
    pub null: bool,
    /// Leave out files (or, when reading, members) matching PATTERN (`*`
    /// also matches `/`; repeatable).
    #[arg(long = "exclude", value_name = "PATTERN", action = clap::ArgAction::Append, help_heading = "Selecting files")]
    pub exclude: Vec<std::ffi::OsString>,
    /// Read exclusion patterns from FILE, one per line.
    #[arg(short = 'X', long = "exclude-from", value_name = "FILE", action = clap::ArgAction::Append, help_heading = "Selecting files")]
    pub exclude_from: Vec<PathBuf>,
    /// Leave out version-control directories and files (.git, .svn, ...).
    #[arg(long = "exclude-vcs", help_heading = "Selecting files")]
    pub exclude_vcs: bool,
    /// Leave out the contents of directories holding a valid CACHEDIR.TAG.
    #[arg(long = "exclude-caches", help_heading = "Selecting files")]
    pub exclude_caches: bool,
    /// Do not descend into directories named as operands.
    #[arg(long = "no-recursion", help_heading = "Selecting files")]
    pub no_recursion: bool,
    /// Stay on the file system of each operand.
    #[arg(long = "one-file-system", help_heading = "Selecting files")]
    pub one_file_system: bool,
    /// Follow symlinks: archive the files they point to.
    #[arg(short = 'h', long = "dereference", help_heading = "Selecting files")]
    pub dereference: bool,
    /// Do not record extended attributes and ACLs.
    #[arg(long = "no-xattrs", help_heading = "Selecting files")]
    pub no_xattrs: bool,
    /// Print the number of bytes written (create/append).
    #[arg(long = "totals")]
    pub totals: bool,
    /// No progress bar.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Machine-readable JSON Lines: entries (-t), the summary (-c, -r), the report (--verify).
    #[arg(long = "json")]
    pub json: bool,

    /// Extract file contents to standard output instead of creating files.
    #[arg(short = 'O', long = "to-stdout", help_heading = "Extraction")]
    pub to_stdout: bool,
    /// Drop N leading components of member names when extracting.
    #[arg(
        long = "strip-components",
        value_name = "N",
        default_value_t = 0,
        help_heading = "Extraction"
    )]
    pub strip_components: usize,
    /// Do not replace existing files; report them as errors.
    #[arg(short = 'k', long = "keep-old-files", help_heading = "Extraction")]
    pub keep_old_files: bool,
    /// Do not replace existing files that are newer than the archived copy.
    #[arg(long = "keep-newer-files", help_heading = "Extraction")]
    pub keep_newer_files: bool,
    /// Remove each existing file before extracting over it (the default).
    #[arg(short = 'U', long = "unlink-first", help_heading = "Extraction")]
    pub unlink_first: bool,
    /// Replace existing files (the default).
    #[arg(long = "overwrite", help_heading = "Extraction")]
    pub overwrite: bool,
    /// Do not restore modification times.
    #[arg(short = 'm', long = "touch", help_heading = "Extraction")]
    pub touch: bool,
    /// Restore all permission bits, ignoring the umask (default for root).
    #[arg(
        short = 'p',
        long = "same-permissions",
        visible_alias = "preserve-permissions",
        help_heading = "Extraction"
    )]
    pub same_permissions: bool,
    /// Apply the umask and clear special bits even as root.
    #[arg(long = "no-same-permissions", help_heading = "Extraction")]
    pub no_same_permissions: bool,
    /// Restore ownership (default for root).
    #[arg(long = "same-owner", help_heading = "Extraction")]
    pub same_owner: bool,
    /// Do not restore ownership: files belong to the extracting user.
    #[arg(long = "no-same-owner", help_heading = "Extraction")]
    pub no_same_owner: bool,
    /// Use stored uid/gid numbers, not user and group names.
    #[arg(long = "numeric-owner", help_heading = "Extraction")]
    pub numeric_owner: bool,
    /// Restore extended attributes (the default).
    #[arg(long = "xattrs", help_heading = "Extraction")]
    pub xattrs: bool,
    /// Restore POSIX ACLs (the default).
    #[arg(long = "acls", help_heading = "Extraction")]
    pub acls: bool,
    /// Do not restore POSIX ACLs.
    #[arg(long = "no-acls", help_heading = "Extraction")]
    pub no_acls: bool,
    /// Accepted for tar compatibility; changes nothing: member names are
    /// always relative, and symlinks are created as stored.
    #[arg(short = 'P', long = "absolute-names", help_heading = "Extraction")]
    pub absolute_names: bool,
    /// Stop extracting after SIZE bytes of content (default: what the snapshot declares).
    #[arg(long = "max-output", value_name = "BYTES", help_heading = "Extraction")]
    pub max_output: Option<u64>,
    /// Stop extracting after N entries (default: what the snapshot declares).
    #[arg(long = "max-entries", value_name = "N", help_heading = "Extraction")]
    pub max_entries: Option<u64>,

    /// Rejected: ptar compresses by itself.
    #[arg(short = 'z', long = "gzip", hide = true)]
    pub gzip: bool,
    /// Rejected: ptar compresses by itself.
    #[arg(short = 'j', long = "bzip2", hide = true)]
    pub bzip2: bool,
    /// Rejected: ptar compresses by itself.
    #[arg(short = 'J', long = "xz", hide = true)]
    pub xz: bool,
    /// Rejected: ptar compresses by itself.
    #[arg(long = "zstd", hide = true)]
    pub zstd: bool,
    /// Rejected: ptar compresses by itself.
    #[arg(short = 'Z', long = "compress", hide = true)]
    pub compress: bool,
    /// Rejected: ptar compresses by itself.
    #[arg(long = "lzma", hide = true)]
    pub lzma: bool,
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
    /// Name of the new snapshot; when reading, pick the latest snapshot of this name.
    #[arg(long = "name", value_name = "NAME", help_heading = "Snapshots")]
    pub name: Option<String>,
    /// Tag for the new snapshot (repeatable); when reading, pick the latest snapshot with this tag.
    #[arg(long = "tag", value_name = "TAG", help_heading = "Snapshots")]
    pub tags: Vec<String>,

    /// Compress with LZ4: the fastest, about half again larger than the default zstd.
    #[arg(long = "fast", help_heading = "Compression and speed", conflicts_with_all = ["best", "level"])]
    pub fast: bool,
    /// Compress with zstd level 19: slow, for archives written once and shipped.
    #[arg(
        long = "best",
        help_heading = "Compression and speed",
        conflicts_with = "level"
    )]
    pub best: bool,
    /// Compress with this zstd level (1 to 22; the default is 3).
    #[arg(long = "level", value_name = "N", help_heading = "Compression and speed",
          value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: Option<i32>,
    /// Threads that compress while files are read, or write files while the archive is read (default: one per core; 0: none).
    #[arg(
        long = "threads",
        value_name = "N",
        help_heading = "Compression and speed"
    )]
    pub threads: Option<usize>,
    /// On append, read every file even when its size, times and inode say it is unchanged.
    #[arg(long = "force-read", help_heading = "Compression and speed")]
    pub force_read: bool,

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
    /// Read an archive whose newest footer is damaged, at its last good
    /// generation (its newer snapshots are lost; a warning names the damaged
    /// bytes). Without it, reading such an archive fails with exit 2.
    /// --verify reports the damage and exits 2 either way.
    #[arg(long = "ignore-damaged-tail")]
    pub ignore_damaged_tail: bool,

    /// Files and directories to archive; when listing or extracting, the
    /// members to select (names or shell patterns; a directory selects its contents).
    #[arg(value_name = "PATH", action = clap::ArgAction::Append)]
    pub paths: Vec<PathBuf>,

    /// The operands with the -C in force for each (filled after parsing).
    #[arg(skip)]
    pub sources: Vec<ptar::fs::Source>,
    /// Each -T list with the -C in force where it was given.
    #[arg(skip)]
    pub lists: Vec<(PathBuf, PathBuf)>,
}

impl TarArgs {
    /// The first compression flag given, if any.
    pub fn compression_flag(&self) -> Option<&'static str> {
        [
            (self.gzip, "-z"),
            (self.bzip2, "-j"),
            (self.xz, "-J"),
            (self.zstd, "--zstd"),
            (self.compress, "-Z"),
            (self.lzma, "--lzma"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    /// The directory -C options lead to, applied in order (for extract).
    pub fn destination(&self) -> PathBuf {
        let mut d = PathBuf::from(".");
        for c in &self.directory {
            d = d.join(c);
        }
        d
    }
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
        /// One JSON object per snapshot.
        #[arg(long = "json")]
        json: bool,
        /// List only the N newest snapshots.
        #[arg(long = "latest", value_name = "N")]
        latest: Option<usize>,
        /// Read an archive whose newest footer is damaged at its last good generation (without it: exit 2).
        #[arg(long = "ignore-damaged-tail")]
        ignore_damaged_tail: bool,
    },
    /// Change (or, with --add, add) the passphrase of an encrypted archive.
    ///
    /// Appends a generation holding a new key-slot table; no data is
    /// re-encrypted. The old passphrase stops opening the archive, but its
    /// slot stays in the file's earlier bytes: to revoke it, copy the
    /// snapshots into a new archive (`ptar sync --encrypt`).
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
    /// Rebuild a damaged newest footer from its manifest (spec §15.6).
    ///
    /// When only the trailer that ends the archive is damaged, its
    /// manifest still says everything the trailer repeats. Without --yes,
    /// shows what the repair would restore and changes nothing.
    Repair {
        /// The archive file.
        #[arg(short = 'f', long = "file", value_name = "ARCHIVE")]
        file: PathBuf,
        /// Read the passphrase from the first line of FILE.
        #[arg(long = "passphrase-file", value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Write the repaired footer.
        #[arg(long = "yes")]
        yes: bool,
    },
    /// Write files of a snapshot to standard output, read in place (no extraction).
    ///
    /// PATHs are member paths as `ptar -t` lists them; symlinks inside the
    /// snapshot are followed, hard links read the file they name.
    Cat {
        /// The archive file.
        #[arg(short = 'f', long = "file", value_name = "ARCHIVE")]
        file: PathBuf,
        /// Snapshot to read: an id prefix, `latest`, or N (the N-th from the end).
        #[arg(long = "snapshot", value_name = "ID", default_value = "latest")]
        snapshot: String,
        /// Read the passphrase from the first line of FILE.
        #[arg(long = "passphrase-file", value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Member paths.
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
        /// Read an archive whose newest footer is damaged at its last good generation (without it: exit 2).
        #[arg(long = "ignore-damaged-tail")]
        ignore_damaged_tail: bool,
    },
    /// Compare two snapshots of the archive (exit 1 when they differ).
    ///
    /// One line per change, in name order: `+` added, `-` removed, `M`
    /// modified (content, type, symlink or hard-link target, device numbers),
    /// `U` metadata only, followed by the fields that differ, e.g.
    /// `U    docs/a.txt (mode, mtime)`. Directories end in `/`; everything
    /// under an added or removed directory is listed too. Access and change
    /// times, devices, inodes and link counts are not compared. A summary
    /// goes to standard error.
    Diff {
        /// The archive file.
        #[arg(short = 'f', long = "file", value_name = "ARCHIVE")]
        file: PathBuf,
        /// The old snapshot: an id prefix, `latest`, or N (the N-th from the end).
        #[arg(value_name = "OLD")]
        old: String,
        /// The new snapshot, picked the same way.
        #[arg(value_name = "NEW")]
        new: String,
        /// Also compare status change times (ctime).
        #[arg(long = "ctime")]
        ctime: bool,
        /// One JSON object per change, then a summary object.
        #[arg(long = "json")]
        json: bool,
        /// Read the passphrase from the first line of FILE.
        #[arg(long = "passphrase-file", value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Read an archive whose newest footer is damaged at its last good generation (without it: exit 2).
        #[arg(long = "ignore-damaged-tail")]
        ignore_damaged_tail: bool,
    },
    /// Find entries by name in every snapshot (exit 1 when none matches).
    ///
    /// Prints `SNAPSHOT  path` per match, oldest snapshot first. A pattern
    /// without `/` is matched against base names (like `find -name`); one
    /// with `/` against the whole path from the snapshot root, where `*`
    /// also matches `/`. Quote patterns from the shell.
    Find {
        /// The archive file.
        #[arg(short = 'f', long = "file", value_name = "ARCHIVE")]
        file: PathBuf,
        /// Shell patterns (`*`, `?`, `[...]`); an entry matching any is printed.
        #[arg(value_name = "PATTERN", required = true)]
        patterns: Vec<OsString>,
        /// Search only this snapshot (an id prefix, `latest`, or N; repeatable).
        #[arg(long = "snapshot", value_name = "ID", action = clap::ArgAction::Append)]
        snapshots: Vec<String>,
        /// One JSON object per match, then a summary object.
        #[arg(long = "json")]
        json: bool,
        /// Read the passphrase from the first line of FILE.
        #[arg(long = "passphrase-file", value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Read an archive whose newest footer is damaged at its last good generation (without it: exit 2).
        #[arg(long = "ignore-damaged-tail")]
        ignore_damaged_tail: bool,
    },
    /// Copy snapshots from one archive into another, storing only what the destination lacks.
    ///
    /// Every snapshot of SRC (or those given with --snapshot) is rebuilt in
    /// DST: chunks DST does not hold are read from SRC and stored (compressed
    /// and, when DST is encrypted, encrypted under DST's key), directories
    /// and file maps are written again with DST's ids, and each snapshot
    /// keeps its time, host, name, tags and paths. Chunk boundaries are kept
    /// as they are. DST is created when it does not exist (plain, or
    /// encrypted with --encrypt) and otherwise gets one new generation for
    /// all the snapshots copied; nothing is written when DST already holds
    /// them all.
    Sync(SyncArgs),
    /// Mount a read-only view of the archive on MOUNTPOINT (FUSE, Linux).
    ///
    /// Without --snapshot, the top level holds one directory per snapshot,
    /// named by its time (UTC) and short id, `2026-12-01T14:28:36-1a2b3c4d`,
    /// and a symlink `latest` to the newest; with --snapshot, the snapshot's
    /// root is the mount's root. ptar stays in the foreground until the
    /// view is unmounted (`fusermount -u MOUNTPOINT`, Ctrl-C or SIGTERM),
    /// then exits 0. Only the user who mounted it can enter it, and sees
    /// every file, as with the archive itself. Damaged data makes reads
    /// fail with EIO and is reported on stderr; the mount stays up.
    Mount {
        /// The archive file.
        #[arg(short = 'f', long = "file", value_name = "ARCHIVE")]
        file: PathBuf,
        /// The directory to mount the view on (what it holds is hidden while mounted).
        #[arg(value_name = "MOUNTPOINT")]
        mountpoint: PathBuf,
        /// Show only this snapshot, at the top: an id prefix, `latest`, or N (the N-th from the end).
        #[arg(long = "snapshot", value_name = "ID")]
        snapshot: Option<String>,
        /// Read the passphrase from the first line of FILE.
        #[arg(long = "passphrase-file", value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Stay in the foreground until unmounted (what ptar mount always does).
        #[arg(long = "foreground")]
        foreground: bool,
        /// Read an archive whose newest footer is damaged at its last good generation (without it: exit 2).
        #[arg(long = "ignore-damaged-tail")]
        ignore_damaged_tail: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on standard output.
    Man,
    /// Write a new ed25519 signing key to KEY and its public half to KEY.pub.
    Keygen {
        /// Where to write the secret key.
        #[arg(short = 'o', long = "output", value_name = "KEY")]
        output: PathBuf,
    },
}

/// `ptar sync -f SRC DST`.
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The source archive.
    #[arg(short = 'f', long = "file", value_name = "SRC")]
    pub file: PathBuf,
    /// The destination archive (created when it does not exist).
    #[arg(value_name = "DST")]
    pub dest: PathBuf,
    /// Snapshot of SRC to copy: an id prefix, `latest`, or N (the N-th from the end); repeatable (default: all).
    #[arg(long = "snapshot", value_name = "ID", action = clap::ArgAction::Append)]
    pub snapshots: Vec<String>,
    /// Read SRC's passphrase from the first line of FILE (else PTAR_PASSPHRASE or the terminal).
    #[arg(long = "passphrase-file", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Read DST's passphrase from the first line of FILE (else PTAR_DEST_PASSPHRASE or the terminal).
    #[arg(long = "dest-passphrase-file", value_name = "FILE")]
    pub dest_passphrase_file: Option<PathBuf>,
    /// Encrypt DST when it is created (its passphrase as --dest-passphrase-file says).
    #[arg(long = "encrypt")]
    pub encrypt: bool,
    /// Argon2id costs for a new encrypted DST as MEMORY_KIB,PASSES,LANES.
    #[arg(long = "kdf-params", value_name = "M,T,P", hide = true)]
    pub kdf_params: Option<String>,
    /// Sign the footer of DST's new generation with this secret key.
    #[arg(long = "sign", value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Compress what is stored with LZ4.
    #[arg(long = "fast", conflicts_with_all = ["best", "level"])]
    pub fast: bool,
    /// Compress what is stored with zstd level 19.
    #[arg(long = "best", conflicts_with = "level")]
    pub best: bool,
    /// Compress what is stored with this zstd level (1 to 22; the default is 3).
    #[arg(long = "level", value_name = "N", value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: Option<i32>,
    /// Compression threads (default: one per core; 0: none).
    #[arg(long = "threads", value_name = "N")]
    pub threads: Option<usize>,
    /// The summary as JSON Lines on standard output (one `synced` line per snapshot, then `sync`).
    #[arg(long = "json")]
    pub json: bool,
    /// No progress bar and no summary line.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Copy from a SRC whose newest footer is damaged, at its last good generation (without it: exit 2).
    #[arg(long = "ignore-damaged-tail")]
    pub ignore_damaged_tail: bool,
}

/// A parsed command line.
#[derive(Debug)]
pub enum Command {
    Tar(Box<TarArgs>),
    Sub(Sub),
}

const SUBCOMMANDS: &[&str] = &[
    "snapshots",
    "diff",
    "find",
    "keygen",
    "passwd",
    "repair",
    "completions",
    "man",
    "cat",
    "sync",
    "mount",
];

/// The whole command line as one clap command: tar modes and subcommands,
/// for completions and the manual page.
pub fn full_command() -> clap::Command {
    use clap::CommandFactory;
    let subs: Vec<clap::Command> = SubArgs::command().get_subcommands().cloned().collect();
    TarArgs::command()
        .subcommands(subs)
        .subcommand_negates_reqs(true)
}

/// Key letters of the bundled (old-style) form, as in `ptar cvf out.ptar dir`.
const KEY_LETTERS: &str = "crtxdvfCTXkmOpPhUzjJZq";
/// Letters that take an argument, consumed from the following words in order.
const KEY_ARGS: &str = "fCTX";
/// Letters that name a mode; a bundle must hold one.
const KEY_MODES: &str = "crtxd";

/// Expands a first word like `cvf` into `-c -v -f ARG` (GNU tar and bsdtar's
/// traditional form). Words keep their bytes: non-UTF-8 operands survive.
pub fn expand_bundled(args: Vec<OsString>) -> Vec<OsString> {
    let Some(first) = args.get(1).and_then(|a| a.to_str()) else {
        return args;
    };
    let bundle = !first.is_empty()
        && !first.starts_with('-')
        && !SUBCOMMANDS.contains(&first)
        && first.chars().all(|c| KEY_LETTERS.contains(c))
        && first.chars().any(|c| KEY_MODES.contains(c));
    if !bundle {
        return args;
    }
    let letters: Vec<char> = first.chars().collect();
    let mut rest = args.into_iter();
    let mut out = vec![rest.next().expect("program name")];
    rest.next();
    let mut rest: std::collections::VecDeque<OsString> = rest.collect();
    for c in letters {
        out.push(format!("-{c}").into());
        if KEY_ARGS.contains(c) {
            if let Some(a) = rest.pop_front() {
                out.push(a);
            }
        }
    }
    out.extend(rest);
    out
}

/// Parses argv.
pub fn parse(args: Vec<OsString>) -> Result<Command, clap::Error> {
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        if SUBCOMMANDS.contains(&first) {
            return SubArgs::try_parse_from(args).map(|s| Command::Sub(s.command));
        }
    }
    use clap::{CommandFactory, FromArgMatches};
    let matches = TarArgs::command().try_get_matches_from(expand_bundled(args))?;
    let mut t = TarArgs::from_arg_matches(&matches)?;
    // Positional -C: each operand is read from the -C options before it.
    let dirs: Vec<(usize, PathBuf)> = match matches.indices_of("directory") {
        Some(ix) => ix.zip(t.directory.iter().cloned()).collect(),
        None => Vec::new(),
    };
    let ops: Vec<(usize, PathBuf)> = match matches.indices_of("paths") {
        Some(ix) => ix.zip(t.paths.iter().cloned()).collect(),
        None => Vec::new(),
    };
    t.sources = ops
        .into_iter()
        .map(|(i, path)| ptar::fs::Source {
            dir: dir_before(&dirs, i),
            path,
        })
        .collect();
    if let Some(ix) = matches.indices_of("files_from") {
        t.lists = ix
            .zip(t.files_from.iter().cloned())
            .map(|(i, f)| (dir_before(&dirs, i), f))
            .collect();
    }
    Ok(Command::Tar(Box::new(t)))
}

/// The directory in force at argument index `i`: every -C before it, in order.
pub fn dir_before(dirs: &[(usize, PathBuf)], i: usize) -> PathBuf {
    let mut d = PathBuf::new();
    for (j, c) in dirs {
        if *j < i {
            d = if d.as_os_str().is_empty() {
                c.clone()
            } else {
                d.join(c)
            };
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn bundled_keys_expand_in_letter_order() {
        assert_eq!(
            expand_bundled(words("ptar cvf out.ptar dir")),
            words("ptar -c -v -f out.ptar dir")
        );
        assert_eq!(
            expand_bundled(words("ptar xfC a.ptar dest m")),
            words("ptar -x -f a.ptar -C dest m")
        );
        assert_eq!(
            expand_bundled(words("ptar -cf a.ptar dir")),
            words("ptar -cf a.ptar dir")
        );
        assert_eq!(
            expand_bundled(words("ptar snapshots -f a")),
            words("ptar snapshots -f a")
        );

        // No mode letter: not a bundle.
        assert_eq!(expand_bundled(words("ptar vf a")), words("ptar vf a"));
    }

    #[test]
    fn diff_and_find_are_subcommands_and_tar_d_stays() {
        let Command::Sub(Sub::Diff { old, new, .. }) = parse(words("ptar diff -f a 2 1")).unwrap()
        else {
            panic!("ptar diff is the subcommand")
        };
        assert_eq!((old.as_str(), new.as_str()), ("2", "1"));
        let Command::Sub(Sub::Find { patterns, .. }) =
            parse(words("ptar find -f a *.c x")).unwrap()
        else {
            panic!("ptar find is the subcommand")
        };
        assert_eq!(patterns, [OsString::from("*.c"), OsString::from("x")]);
        let Command::Tar(t) = parse(words("ptar -d -f a")).unwrap() else {
            panic!("-d is tar's compare mode")
        };
        assert!(t.diff);
        let Command::Tar(t) = parse(words("ptar df a")).unwrap() else {
            panic!("a bundle")
        };
        assert!(t.diff);
    }

    #[test]
    fn non_utf8_operands_survive() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'a', 0xff]);
        let args = vec!["ptar".into(), "cf".into(), "x.ptar".into(), odd.clone()];
        assert_eq!(expand_bundled(args)[4], odd);
    }

    #[test]
    fn directory_is_positional() {
        let Command::Tar(t) = parse(words("ptar -c -f a.ptar x -C d1 y -C sub z")).unwrap() else {
            panic!()
        };
        let got: Vec<(String, String)> = t
            .sources
            .iter()
            .map(|s| (s.dir.display().to_string(), s.path.display().to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("".into(), "x".into()),
                ("d1".into(), "y".into()),
                ("d1/sub".into(), "z".into())
            ]
        );
    }
}
