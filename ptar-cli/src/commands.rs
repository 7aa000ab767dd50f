//! What each mode does.

use std::io::{BufWriter, IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use ptar::codec::Compression;
use ptar::format::tree::Entry;
use ptar::format::tree::Payload;
use ptar::fs::{CreatePolicy, Existing, ExtractOptions, Selection, Source};
use ptar::progress::Progress;
use ptar::sink::{EntrySink, FileContent, Flow};
use ptar::store::writer::PackOptions;
use ptar::{Archive, CreateOptions, Encryption, KdfParams, SnapshotMeta, VerifyOptions, Writer};

use crate::cli::{Command, Sub, TarArgs};
use crate::output::{self, human, list_line};
use crate::{json, passphrase};

/// Reports entries (with -v) on stdout, or on stderr when the archive
/// itself goes to stdout, and problems on stderr; draws a progress bar on a
/// terminal.
pub(crate) struct CliProgress {
    verbose: u8,
    errored: AtomicBool,
    out: Mutex<BufWriter<Box<dyn Write + Send>>>,
    bar: Option<indicatif::ProgressBar>,
}

impl CliProgress {
    fn new(verbose: u8) -> CliProgress {
        CliProgress::to(verbose, Box::new(std::io::stdout()))
    }

    pub(crate) fn to(verbose: u8, w: Box<dyn Write + Send>) -> CliProgress {
        CliProgress {
            verbose,
            errored: AtomicBool::new(false),
            out: Mutex::new(BufWriter::new(w)),
            bar: None,
        }
    }

    /// Adds a bar on stderr when it is a terminal and neither -q nor --json
    /// was given; `total` bytes when known, else a running count.
    fn with_bar(self, t: &TarArgs, total: Option<u64>, what: &str) -> CliProgress {
        self.with_bar_unless(t.quiet || t.json, total, what)
    }

    /// [`CliProgress::with_bar`], the bar left out when `hidden`.
    pub(crate) fn with_bar_unless(
        mut self,
        hidden: bool,
        total: Option<u64>,
        what: &str,
    ) -> CliProgress {
        if hidden || !std::io::stderr().is_terminal() {
            return self;
        }
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n).with_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}",
                )
                .expect("valid template"),
            ),
        };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(10));
        bar.set_message(what.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        self.bar = Some(bar);
        self
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    fn flush(&self) -> std::io::Result<()> {
        self.out.lock().expect("stdout lock").flush()
    }
}

impl Progress for CliProgress {
    fn entry(&self, path: &[u8], entry: &Entry) {
        if self.verbose > 0 {
            self.suspend(|| {
                let mut out = self.out.lock().expect("stdout lock");
                let _ = list_line(&mut *out, path, entry, self.verbose > 1);
                if self.bar.is_some() {
                    let _ = out.flush();
                }
            });
        }
    }

    fn bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn warning(&self, path: &[u8], message: &str) {
        self.errored.store(true, Ordering::Relaxed);
        let _ = self.flush();
        self.suspend(|| eprintln!("ptar: {}: {message}", String::from_utf8_lossy(path)));
    }

    /// Printed like a warning, but not a failure: the exit status stays 0
    /// (GNU tar's "socket ignored", "Removing leading `/'").
    fn notice(&self, path: &[u8], message: &str) {
        let _ = self.flush();
        self.suspend(|| eprintln!("ptar: {}: {message}", String::from_utf8_lossy(path)));
    }

    fn cancelled(&self) -> bool {
        crate::signals::received().is_some()
    }
}

impl Drop for CliProgress {
    /// Whatever way the command ends (an error, an interruption), the
    /// progress line is cleared rather than left on the terminal.
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Standard output as an archive sink: flushing is all it can do.
struct StdoutSink(BufWriter<std::io::Stdout>);

impl Write for StdoutSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl ptar::store::Sink for StdoutSink {}

/// Runs a parsed command.
pub fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Sub(Sub::Keygen { output }) => keygen(&output),
        Command::Sub(Sub::Repair {
            file,
            passphrase_file,
            yes,
        }) => repair(&file, passphrase_file.as_deref(), yes),
        Command::Sub(Sub::Passwd {
            file,
            passphrase_file,
            new_passphrase_file,
            add,
            kdf_params: k,
        }) => passwd(
            &file,
            passphrase_file.as_deref(),
            new_passphrase_file.as_deref(),
            add,
            k.as_deref(),
        )
        .map_err(not_committed),
        Command::Sub(Sub::Snapshots {
            file,
            passphrase_file,
            json,
            latest,
            ignore_damaged_tail,
        }) => snapshots(
            &file,
            ReadFrom::new(passphrase_file.as_deref(), ignore_damaged_tail),
            json,
            latest,
        ),
        Command::Sub(Sub::Cat {
            file,
            snapshot,
            passphrase_file,
            paths,
            ignore_damaged_tail,
        }) => crate::cat::cat(
            &file,
            &snapshot,
            ReadFrom::new(passphrase_file.as_deref(), ignore_damaged_tail),
            &paths,
        ),
        Command::Sub(Sub::Diff {
            file,
            old,
            new,
            ctime,
            json,
            passphrase_file,
            ignore_damaged_tail,
        }) => crate::diff::snapshot_diff(
            &file,
            &old,
            &new,
            ctime,
            json,
            ReadFrom::new(passphrase_file.as_deref(), ignore_damaged_tail),
        ),
        Command::Sub(Sub::Find {
            file,
            patterns,
            snapshots,
            json,
            passphrase_file,
            ignore_damaged_tail,
        }) => crate::diff::find(
            &file,
            &patterns,
            &snapshots,
            json,
            ReadFrom::new(passphrase_file.as_deref(), ignore_damaged_tail),
        ),
        Command::Sub(Sub::Sync(args)) => crate::sync::sync(&args).map_err(not_committed),
        Command::Sub(Sub::Mount {
            file,
            mountpoint,
            snapshot,
            passphrase_file,
            foreground: _,
            ignore_damaged_tail,
        }) => crate::mount::run(
            &file,
            &mountpoint,
            snapshot.as_deref(),
            ReadFrom::new(passphrase_file.as_deref(), ignore_damaged_tail),
        ),
        Command::Sub(Sub::Completions { shell }) => {
            // Rendered into memory first: the generator panics when its
            // writer fails, and standard output may be a closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut crate::cli::full_command(), "ptar", &mut script);
            std::io::stdout().lock().write_all(&script)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sub(Sub::Man) => {
            let mut page = Vec::new();
            clap_mangen::Man::new(crate::cli::full_command()).render(&mut page)?;
            std::io::stdout().lock().write_all(&page)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tar(t) => {
            if let Some(flag) = t.compression_flag() {
                bail!("{flag}: ptar compresses archives itself (LZ4); drop the compression option");
            }
            if t.create {
                create(&t).map_err(not_committed)
            } else if t.append {
                append(&t).map_err(not_committed)
            } else if t.list {
                list(&t)
            } else if t.extract {
                extract(&t)
            } else if t.diff {
                diff(&t)
            } else if t.to_tar {
                to_tar(&t)
            } else if t.from_tar.is_some() {
                from_tar(&t).map_err(not_committed)
            } else {
                verify(&t)
            }
        }
    }
}

/// How a reading command opens its archive: where the passphrase comes
/// from, and whether `--ignore-damaged-tail` was given.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadFrom<'a> {
    /// `--passphrase-file`.
    pub(crate) passphrase_file: Option<&'a Path>,
    /// `--ignore-damaged-tail`: read the last good generation of an archive
    /// whose newest footer is damaged, with a warning.
    pub(crate) ignore_damaged_tail: bool,
}

impl<'a> ReadFrom<'a> {
    pub(crate) fn new(passphrase_file: Option<&'a Path>, ignore_damaged_tail: bool) -> Self {
        ReadFrom {
            passphrase_file,
            ignore_damaged_tail,
        }
    }

    /// What the tar-style options say.
    pub(crate) fn tar(t: &'a TarArgs) -> Self {
        ReadFrom::new(t.passphrase_file.as_deref(), t.ignore_damaged_tail)
    }
}

/// Opens an archive to read; `-` spools standard input to an unnamed
/// temporary file first (the format is read from its end). An archive
/// whose newest footer is damaged is refused (exit 2, naming the bytes and
/// the option that reads past them) unless `--ignore-damaged-tail` was
/// given, which reads its last good generation with a warning.
pub(crate) fn open_archive(path: &Path, from: ReadFrom<'_>) -> Result<Archive> {
    let opts = ptar::OpenOptions::new().allow_damaged_tail(from.ignore_damaged_tail);
    let archive = open_archive_with(path, from.passphrase_file, &opts)?;
    if let Some(t) = archive.store().tail().filter(|t| t.damaged) {
        eprintln!(
            "ptar: warning: {}: --ignore-damaged-tail: bytes {}..{} end in a damaged footer ({}); \
             reading generation {}, the last good one: snapshots committed after it are not seen",
            path.display(),
            t.offset,
            t.end(),
            t.detail,
            archive.store().generation_count(),
        );
    }
    Ok(archive)
}

/// [`open_archive`] with the library's options, and no warning: for
/// `--verify`, which reports a damaged tail as a problem.
pub(crate) fn open_archive_with(
    path: &Path,
    passphrase_file: Option<&Path>,
    opts: &ptar::OpenOptions,
) -> Result<Archive> {
    // An archive is read at positions: a stream (standard input, a FIFO,
    // a pipe such as /dev/fd/N, a character device) is first copied to an
    // unnamed temporary file, as tar reads archives from FIFOs.
    let spool = |from: &mut dyn std::io::Read, what: &str| -> Result<std::fs::File> {
        let mut tmp = ptar::retry::eintr(tempfile::tempfile)
            .with_context(|| format!("cannot create a temporary file to hold {what}"))?;
        std::io::copy(from, &mut tmp)
            .with_context(|| format!("reading the archive from {what}"))?;
        Ok(tmp)
    };
    let file = if path == Path::new("-") {
        spool(&mut std::io::stdin().lock(), "standard input")?
    } else {
        use std::os::unix::fs::FileTypeExt;
        let file = ptar::retry::eintr(|| std::fs::File::open(path))
            .with_context(|| path.display().to_string())?;
        let kind = file
            .metadata()
            .with_context(|| path.display().to_string())?
            .file_type();
        if kind.is_dir() {
            bail!("{}: is a directory", path.display());
        }
        if kind.is_fifo() || kind.is_char_device() || kind.is_socket() {
            let name = path.display().to_string();
            spool(&mut &file, &name)?
        } else {
            file
        }
    };
    let header = ptar::probe_file(&file).with_context(|| path.display().to_string())?;
    let pass = if header.encrypted() {
        Some(passphrase::for_reading(passphrase_file)?)
    } else {
        None
    };
    match Archive::from_file_with(file, path, pass.as_deref().map(|p| p.as_slice()), opts) {
        Ok(archive) => Ok(archive),
        Err(
            e @ ptar::Error::DamagedTail {
                last_good_generation,
                ..
            },
        ) => Err(anyhow::anyhow!(
            "{}: {e}. Pass --ignore-damaged-tail to read generation {last_good_generation} \
             (read-only); `ptar --verify` reports what is lost, and `ptar repair` \
             rebuilds a footer damaged only in its trailer",
            path.display()
        )),
        Err(e) => Err(anyhow::Error::new(e).context(path.display().to_string())),
    }
}

fn kdf_params(spec: Option<&str>) -> Result<KdfParams> {
    let Some(s) = spec else {
        return Ok(KdfParams::DEFAULT);
    };
    let v: Vec<u32> = s
        .split(',')
        .map(|x| x.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .context("--kdf-params wants M,T,P")?;
    if v.len() != 3 {
        bail!("--kdf-params wants three numbers: MEMORY_KIB,PASSES,LANES");
    }
    let k = KdfParams {
        m_kib: v[0],
        t: v[1],
        p: v[2],
    };
    // One slot alone must also fit the cap on a whole set of slots.
    ptar::format::header::check_key_slot_set_for_writing([&k]).map_err(anyhow::Error::msg)?;
    Ok(k)
}

pub(crate) fn load_signing_key(path: Option<&Path>) -> Result<Option<ed25519_dalek::SigningKey>> {
    let Some(p) = path else { return Ok(None) };
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(p).with_context(|| format!("cannot read key {}", p.display()))?,
    );
    Ok(Some(
        ptar::signing::secret_from_text(&text).with_context(|| p.display().to_string())?,
    ))
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

fn meta(t: &TarArgs) -> SnapshotMeta {
    SnapshotMeta {
        name: t.name.clone().unwrap_or_default(),
        tags: t.tags.clone(),
        command_line: std::env::args_os().map(|a| a.as_bytes().to_vec()).collect(),
    }
}

/// The exit status of a writing command that failed: what it wrote was
/// taken back, so the message says nothing was committed (main prints it
/// and exits 2).
pub(crate) fn not_committed(e: anyhow::Error) -> anyhow::Error {
    e.context("not committed")
}

/// Exit status 3: the generation is committed, but something went wrong
/// (files that could not be read, a step after the commit).
pub(crate) const COMMITTED_BUT: u8 = 3;

/// What to do with the result of a commit: the commit info, or, when the
/// generation was committed but a later step failed, the message said
/// and exit 3 (`Err(code)`); any other error is passed on (not committed).
pub(crate) fn committed(
    r: ptar::Result<ptar::CommitInfo>,
    archive: &Path,
) -> Result<std::result::Result<ptar::CommitInfo, ExitCode>> {
    match r {
        Ok(info) => Ok(Ok(info)),
        Err(ptar::Error::CommittedBut { generation, source }) => {
            eprintln!(
                "ptar: committed, but {source} ({} is at generation {generation})",
                archive.display()
            );
            Ok(Err(ExitCode::from(COMMITTED_BUT)))
        }
        Err(ptar::Error::Io { path: None, source }) => Err(ptar::Error::Io {
            path: Some(archive.to_path_buf()),
            source,
        }
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// The exit status of a committed snapshot: 3 when some files could not be
/// read (they are named on stderr and kept in the snapshot's error list),
/// 1 when some changed while they were read, else 0.
fn outcome_code(progress: &CliProgress, errors: &[(Vec<u8>, String)], changed: bool) -> ExitCode {
    let hard = errors
        .iter()
        .filter(|(_, m)| m != "file changed as we read it")
        .count();
    if hard > 0 || (progress.errored.load(Ordering::Relaxed) && !changed) {
        eprintln!(
            "ptar: committed, but {hard} file(s) could not be read (named above; the snapshot lists them)"
        );
        ExitCode::from(COMMITTED_BUT)
    } else if changed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// What a new snapshot is read from.
#[derive(Clone, Copy)]
enum Input<'a> {
    /// Files and directories.
    Paths(&'a [Source]),
    /// A tar stream, by the name given (`-`: standard input).
    Tar(&'a Path),
}

/// Reads the tar stream `name` into a new snapshot whose `paths` names it.
fn add_tar<W: ptar::store::Sink>(
    w: &mut Writer<W>,
    name: &Path,
    meta: &SnapshotMeta,
    progress: &CliProgress,
) -> Result<(ptar::Id, ptar::fs::CreateOutcome)> {
    use ptar::tar::read::TarSource;
    let label = name.as_os_str().as_bytes().to_vec();
    let result = if name == Path::new("-") {
        let mut source = TarSource::new(std::io::stdin().lock()).with_name(label.clone());
        w.add_snapshot_from(&mut source, vec![label], meta, progress)
    } else {
        let file = ptar::retry::eintr(|| std::fs::File::open(name))
            .with_context(|| name.display().to_string())?;
        let mut source = TarSource::new(std::io::BufReader::with_capacity(1 << 20, file))
            .with_name(label.clone());
        w.add_snapshot_from(&mut source, vec![label], meta, progress)
    };
    Ok(result?)
}

fn add_and_commit<W: ptar::store::Sink>(
    mut w: Writer<W>,
    t: &TarArgs,
    key: Option<ed25519_dalek::SigningKey>,
    input: Input<'_>,
) -> Result<ExitCode> {
    if let Some(k) = key {
        w.sign_with(k);
    }
    w.set_create_policy(create_policy(t)?);
    let progress = if t.file == Path::new("-") {
        CliProgress::to(t.verbose, Box::new(std::io::stderr()))
    } else {
        CliProgress::new(t.verbose)
    };
    let what = match input {
        Input::Tar(_) => "importing",
        Input::Paths(_) if t.append => "appending",
        Input::Paths(_) => "archiving",
    };
    let progress = progress.with_bar(t, None, what);
    let started = std::time::Instant::now();
    // A write error without a path of its own is a write to the archive
    // (a full disk, a file-size limit): say which file.
    let name_archive = |e: ptar::Error| match e {
        ptar::Error::Io { path: None, source } => ptar::Error::Io {
            path: Some(t.file.clone()),
            source,
        },
        other => other,
    };
    let (id, outcome) = match input {
        Input::Paths(paths) => w
            .add_snapshot(paths, &meta(t), &progress)
            .map_err(name_archive)?,
        Input::Tar(name) => add_tar(&mut w, name, &meta(t), &progress).map_err(|e| {
            match e.downcast::<ptar::Error>() {
                Ok(e) => anyhow::Error::from(name_archive(e)),
                Err(e) => e,
            }
        })?,
    };
    progress.finish();
    let info = match committed(w.commit(), &t.file)? {
        Ok(info) => info,
        Err(code) => return Ok(code),
    };
    // Committed: from here on a failure cannot make the status say otherwise.
    if let Err(e) = progress.flush() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("ptar: committed, but the list of entries could not be written: {e}");
            return Ok(ExitCode::from(COMMITTED_BUT));
        }
    }
    if t.json {
        let s = &outcome.summary;
        let line = json::Obj::new("summary")
            .str("snapshot", &id.to_hex())
            .num("generation", info.generation)
            .num("files", s.files)
            .num("files_unchanged", outcome.reused)
            .num("dirs", s.dirs)
            .num("symlinks", s.symlinks)
            .num("hardlinks", s.hardlinks)
            .num("others", s.others)
            .num("total_bytes", s.total_size)
            .num("new_blobs", info.stats.blobs)
            .num("new_bytes", info.stats.bytes)
            .num("deduplicated_blobs", info.stats.deduplicated)
            .num("archive_bytes", info.archive_len)
            .num("duration_ms", started.elapsed().as_millis() as u64)
            .num("errors", outcome.errors.len() as u64)
            .done();
        if t.file == Path::new("-") {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    if t.totals {
        eprintln!(
            "Total bytes written: {} ({}) in {} new blobs; {} of {} files unchanged, not read",
            info.stats.bytes,
            human(info.stats.bytes),
            info.stats.blobs,
            outcome.reused,
            outcome.summary.files
        );
    }
    Ok(outcome_code(&progress, &outcome.errors, outcome.changed))
}

/// Reads a -T list: names separated by newlines (or NULs with --null);
/// without --null a line `-C DIR` changes the directory for the names after it.
fn read_list(dir: &Path, list: &Path, null: bool) -> Result<Vec<Source>> {
    let data = if list == Path::new("-") {
        let mut v = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut v)
            .context("reading the name list from standard input")?;
        v
    } else {
        std::fs::read(list).with_context(|| format!("cannot read name list {}", list.display()))?
    };
    let sep = if null { 0 } else { b'\n' };
    let mut dir = dir.to_path_buf();
    let mut out = Vec::new();
    for item in data.split(|&b| b == sep) {
        let item = if null {
            item
        } else {
            item.strip_suffix(b"\r").unwrap_or(item)
        };
        if item.is_empty() {
            continue;
        }
        if !null {
            if let Some(d) = item.strip_prefix(b"-C").map(|d| d.trim_ascii_start()) {
                let d = PathBuf::from(std::ffi::OsStr::from_bytes(d));
                dir = if dir.as_os_str().is_empty() {
                    d
                } else {
                    dir.join(d)
                };
                continue;
            }
        }
        out.push(Source {
            dir: dir.clone(),
            path: PathBuf::from(std::ffi::OsStr::from_bytes(item)),
        });
    }
    Ok(out)
}

/// Every operand to archive: the command line's, then each -T list's.
fn operands(t: &TarArgs) -> Result<Vec<Source>> {
    let mut all = t.sources.clone();
    for (dir, list) in &t.lists {
        all.extend(read_list(dir, list, t.null)?);
    }
    if all.is_empty() {
        bail!("cowardly refusing to create an empty snapshot (name the files or directories to archive)");
    }
    Ok(all)
}

fn create_policy(t: &TarArgs) -> Result<CreatePolicy> {
    let mut exclude: Vec<Vec<u8>> = t.exclude.iter().map(|p| p.as_bytes().to_vec()).collect();
    for f in &t.exclude_from {
        let text = std::fs::read(f)
            .with_context(|| format!("cannot read exclusion list {}", f.display()))?;
        exclude.extend(
            text.split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    Ok(CreatePolicy {
        exclude,
        exclude_vcs: t.exclude_vcs,
        exclude_caches: t.exclude_caches,
        no_recursion: t.no_recursion,
        one_file_system: t.one_file_system,
        follow_symlinks: t.dereference,
        no_xattrs: t.no_xattrs,
        force_read: t.force_read,
    })
}

/// Codec, level and threads from the command line.
fn pack_options(t: &TarArgs) -> PackOptions {
    pack_from(t.fast, t.best, t.level, t.threads)
}

/// Codec, level and threads from --fast, --best, --level and --threads.
pub(crate) fn pack_from(
    fast: bool,
    best: bool,
    level: Option<i32>,
    threads: Option<usize>,
) -> PackOptions {
    let mut p = PackOptions::default();
    if fast {
        p.compression = Compression::Lz4;
    } else if best {
        p.compression = Compression::BEST;
    } else if let Some(level) = level {
        p.compression = Compression::Zstd(level);
    }
    if let Some(n) = threads {
        p.threads = n;
    }
    p
}

fn create(t: &TarArgs) -> Result<ExitCode> {
    create_from(t, None)
}

/// Options for a new archive: `encrypt` holds the `--kdf-params` given (if
/// any) when it is to be encrypted, with the passphrase from `ask(file)`; a
/// passphrase file (named `file_flag`) without encryption is refused.
pub(crate) fn new_archive_options(
    pack: PackOptions,
    encrypt: Option<Option<&str>>,
    file: Option<&Path>,
    file_flag: &str,
    ask: fn(Option<&Path>) -> Result<zeroize::Zeroizing<Vec<u8>>>,
) -> Result<CreateOptions> {
    let encryption = match encrypt {
        Some(kdf) => Some(Encryption {
            kdf: kdf_params(kdf)?,
            passphrase: ask(file)?,
        }),
        None if file.is_some() => {
            bail!("{file_flag} needs --encrypt when creating an archive")
        }
        None => None,
    };
    Ok(CreateOptions {
        pack,
        encryption,
        ..CreateOptions::default()
    })
}

/// Creates the archive with one snapshot of the operands, or of the tar
/// stream `tar`.
fn create_from(t: &TarArgs, tar: Option<&Path>) -> Result<ExitCode> {
    let archive = absolute(&t.file)?;
    let opts = new_archive_options(
        pack_options(t),
        t.encrypt.then_some(t.kdf_params.as_deref()),
        t.passphrase_file.as_deref(),
        "--passphrase-file",
        passphrase::for_new_archive,
    )?;
    let key = load_signing_key(t.sign.as_deref())?;
    let paths = match tar {
        None => operands(t)?,
        Some(_) => Vec::new(),
    };
    let input = match tar {
        None => Input::Paths(&paths),
        Some(name) => Input::Tar(name),
    };
    if t.file == Path::new("-") {
        if std::io::stdout().is_terminal() {
            bail!("refusing to write archive contents to a terminal");
        }
        let w = Writer::create_stream(
            StdoutSink(BufWriter::with_capacity(1 << 20, std::io::stdout())),
            opts,
        )?;
        return add_and_commit(w, t, key, input);
    }
    let w = if t.replace_archive {
        Writer::create_replacing(&archive, opts)
    } else {
        Writer::create(&archive, opts)
    };
    let w = match w {
        Ok(w) => w,
        Err(e @ ptar::Error::ArchiveExists { .. }) => {
            bail!("{e}; use -r to add a snapshot to it, or --replace-archive to replace it")
        }
        Err(ptar::Error::Io { path: None, source }) => {
            return Err(ptar::Error::Io {
                path: Some(archive),
                source,
            }
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    add_and_commit(w, t, key, input)
}

fn append(t: &TarArgs) -> Result<ExitCode> {
    if t.file == Path::new("-") {
        bail!("cannot append to standard output or input: -r needs an archive file");
    }
    append_from(t, None)
}

/// Appends a snapshot of the operands, or of the tar stream `tar`; creates
/// the archive when it does not exist.
fn append_from(t: &TarArgs, tar: Option<&Path>) -> Result<ExitCode> {
    let archive = absolute(&t.file)?;
    if !archive.exists() {
        return create_from(t, tar);
    }
    if t.encrypt {
        bail!("--encrypt applies when creating; an existing archive keeps its own encryption");
    }
    let header = ptar::probe(&archive).with_context(|| archive.display().to_string())?;
    let pass = if header.encrypted() {
        Some(passphrase::for_reading(t.passphrase_file.as_deref())?)
    } else {
        None
    };
    let key = load_signing_key(t.sign.as_deref())?;
    let mut w = Writer::append(&archive, pass.as_deref().map(|p| p.as_slice()))
        .with_context(|| archive.display().to_string())?;
    w.set_pack_options(pack_options(t))?;
    match tar {
        None => {
            let paths = operands(t)?;
            add_and_commit(w, t, key, Input::Paths(&paths))
        }
        Some(name) => add_and_commit(w, t, key, Input::Tar(name)),
    }
}

/// `--from-tar TARFILE`: a tar stream becomes a new snapshot, in a new
/// archive or appended to an existing one.
fn from_tar(t: &TarArgs) -> Result<ExitCode> {
    let tar = t.from_tar.as_deref().expect("the mode was given");
    if !t.sources.is_empty() || !t.lists.is_empty() {
        bail!(
            "--from-tar takes no PATH operands or -T lists: the snapshot holds the tar's members"
        );
    }
    if t.file == Path::new("-") {
        return create_from(t, Some(tar));
    }
    append_from(t, Some(tar))
}

fn list(t: &TarArgs) -> Result<ExitCode> {
    let archive = open_archive(&t.file, ReadFrom::tar(t))?;
    let snap = pick_snapshot(&archive, t)?;
    let sel = selection(t)?;
    let mut matched = vec![false; sel.patterns.len()];
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    archive.walk(&snap, |path, e| {
        if crate::signals::received().is_some() {
            return Err(ptar::Error::Cancelled);
        }
        if !sel.take(path, &mut matched) {
            return Ok(());
        }
        if t.json {
            writeln!(out, "{}", entry_json(path, e)).map_err(ptar::Error::from)
        } else {
            list_line(&mut out, path, e, t.verbose > 0).map_err(ptar::Error::from)
        }
    })?;
    out.flush()?;
    Ok(report_unmatched(&sel.patterns, &matched))
}

fn extract_options(t: &TarArgs) -> Result<ExtractOptions> {
    let mut o = ExtractOptions::default();
    if t.same_permissions {
        o.preserve_permissions = true;
    }
    if t.no_same_permissions {
        o.preserve_permissions = false;
    }
    if t.same_owner {
        o.same_owner = true;
    }
    if t.no_same_owner {
        o.same_owner = false;
    }
    o.numeric_owner = t.numeric_owner;
    o.restore_times = !t.touch;
    o.xattrs = !t.no_xattrs;
    o.acls = !t.no_acls;
    // -P (keep leading '/' in member names) changes nothing here: member
    // names are always relative, and symlinks are created as stored.
    o.strip_components = t.strip_components;
    o.max_bytes = t.max_output;
    o.max_entries = t.max_entries;
    if let Some(n) = t.threads {
        o.threads = n;
    }
    o.existing = if t.keep_old_files {
        Existing::KeepOld
    } else if t.keep_newer_files {
        Existing::KeepNewer
    } else {
        Existing::Replace
    };
    o.selection = selection(t)?;
    Ok(o)
}

/// The members a reading mode works on: the operands, then the names of
/// every -T list (as operands: names or patterns).
fn member_patterns(t: &TarArgs) -> Result<Vec<Vec<u8>>> {
    let mut names: Vec<PathBuf> = t.paths.clone();
    for (dir, list) in &t.lists {
        names.extend(read_list(dir, list, t.null)?.into_iter().map(|s| s.path));
    }
    Ok(names
        .iter()
        .map(|p| {
            let b = p.as_os_str().as_bytes();
            let b = b.strip_prefix(b"./").unwrap_or(b);
            b.strip_suffix(b"/").unwrap_or(b).to_vec()
        })
        .collect())
}

/// What a reading mode (-t, -x, -O, -d, --to-tar) selects: the member
/// operands and -T lists, less what --exclude, -X and --exclude-vcs leave
/// out (matched as on create).
fn selection(t: &TarArgs) -> Result<Selection> {
    let mut exclude = create_policy(t)?.exclude;
    if t.exclude_vcs {
        exclude.extend(
            ptar::pattern::VCS_NAMES
                .iter()
                .map(|n| n.as_bytes().to_vec()),
        );
    }
    Ok(Selection {
        patterns: member_patterns(t)?,
        exclude,
    })
}

/// The name of an entry type in JSON output.
pub(crate) fn type_name(kind: ptar::format::tree::EntryType) -> &'static str {
    use ptar::format::tree::EntryType as T;
    match kind {
        T::File => "file",
        T::Dir => "dir",
        T::Symlink => "symlink",
        T::Hardlink => "hardlink",
        T::CharDevice => "char-device",
        T::BlockDevice => "block-device",
        T::Fifo => "fifo",
        T::Socket => "socket",
    }
}

fn entry_json(path: &[u8], e: &Entry) -> String {
    let mut o = json::Obj::new("entry")
        .bytes("path", path)
        .str("type", type_name(e.kind))
        .num("size", e.size)
        .str("mode", &format!("{:04o}", e.mode))
        .num("uid", e.uid)
        .num("gid", e.gid)
        .bytes("user", &e.user)
        .bytes("group", &e.group)
        .num(
            "mtime_ns",
            e.mtime.sec as i128 * 1_000_000_000 + e.mtime.nsec as i128,
        );
    match &e.payload {
        Payload::Symlink(t) | Payload::Hardlink(t) => o = o.bytes("link_target", t),
        Payload::Device { major, minor } => o = o.num("major", *major).num("minor", *minor),
        _ => {}
    }
    o.done()
}

/// Reports member operands that matched nothing (tar: "Not found in archive");
/// exit 2 when there is one.
fn report_unmatched(patterns: &[Vec<u8>], matched: &[bool]) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for (p, m) in patterns.iter().zip(matched) {
        if !m {
            eprintln!(
                "ptar: {}: not found in the snapshot",
                String::from_utf8_lossy(p)
            );
            code = ExitCode::from(2);
        }
    }
    code
}

/// Picks the snapshot to read: --snapshot, narrowed by --tag and --name.
fn pick_snapshot(archive: &Archive, t: &TarArgs) -> Result<ptar::Snapshot> {
    if t.tags.is_empty() && t.name.is_none() {
        return Ok(archive.find_snapshot(&t.snapshot)?);
    }
    let all = archive.snapshots()?;
    let found = all.into_iter().rev().find(|s| {
        t.tags.iter().all(|tag| s.record.tags.contains(tag))
            && t.name.as_ref().is_none_or(|n| &s.record.name == n)
    });
    found.ok_or_else(|| anyhow::anyhow!("no snapshot has the tags and name asked for"))
}

fn extract(t: &TarArgs) -> Result<ExitCode> {
    let archive = open_archive(&t.file, ReadFrom::tar(t))?;
    let snap = pick_snapshot(&archive, t)?;
    if t.to_stdout {
        return cat_members(&archive, &snap, t);
    }
    let dest = t.destination();
    let progress =
        CliProgress::new(t.verbose).with_bar(t, Some(snap.record.summary.total_size), "extracting");
    let mut opts = extract_options(t)?;
    opts.archive = archive_identity(&t.file);
    let outcome = archive.extract(&snap, &dest, &opts, &progress);
    progress.finish();
    let outcome = outcome?;
    progress.flush()?;
    for p in &outcome.unmatched {
        eprintln!(
            "ptar: {}: not found in the snapshot",
            String::from_utf8_lossy(p)
        );
    }
    if !outcome.errors.is_empty() || !outcome.unmatched.is_empty() {
        if !outcome.errors.is_empty() {
            eprintln!(
                "ptar: {} entries could not be extracted",
                outcome.errors.len()
            );
        }
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// The (device, inode) of the archive file being read, so that extraction
/// never replaces it: the file named by -f, or standard input when it is a
/// regular file (`-f - < a.ptar`).
fn archive_identity(file: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let path = if file == Path::new("-") {
        Path::new("/dev/stdin")
    } else {
        file
    };
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| (m.dev(), m.ino()))
}

/// `--to-tar`: the snapshot's selected members as a pax tar stream on
/// standard output. Members that cannot be written are reported and left
/// out; the stream still ends properly.
fn to_tar(t: &TarArgs) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        bail!("refusing to write a tar stream to a terminal");
    }
    let archive = open_archive(&t.file, ReadFrom::tar(t))?;
    let snap = pick_snapshot(&archive, t)?;
    let sel = selection(t)?;
    let mut sink =
        ptar::tar::write::TarWriter::new(BufWriter::with_capacity(1 << 20, stdout.lock()))
            .with_selection(sel);
    // Names (-v) go to stderr: stdout is the tar stream.
    let progress = CliProgress::to(t.verbose, Box::new(std::io::stderr()));
    let failures = archive.export(&snap, &mut sink, &progress)?;
    progress.flush()?;
    let unmatched = sink.unmatched();
    sink.finish()?;
    for p in &unmatched {
        eprintln!(
            "ptar: {}: not found in the snapshot",
            String::from_utf8_lossy(p)
        );
    }
    if !failures.is_empty() {
        eprintln!(
            "ptar: {} entries could not be written to the tar stream",
            failures.len()
        );
    }
    Ok(if failures.is_empty() && unmatched.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `-d`: what differs between the snapshot and the files under -C (or here).
fn diff(t: &TarArgs) -> Result<ExitCode> {
    let archive = open_archive(&t.file, ReadFrom::tar(t))?;
    let snap = pick_snapshot(&archive, t)?;
    let sel = selection(t)?;
    let diffs = archive.compare(&snap, &t.destination(), &sel)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for d in &diffs {
        if t.json {
            writeln!(
                out,
                "{}",
                json::Obj::new("difference")
                    .bytes("path", &d.path)
                    .str("what", &d.what)
                    .done()
            )?;
        } else {
            out.write_all(&d.path)?;
            writeln!(out, ": {}", d.what)?;
        }
    }
    out.flush()?;
    Ok(if diffs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `-O`: the contents of the selected regular files, in archive order, on stdout.
fn cat_members(archive: &Archive, snap: &ptar::Snapshot, t: &TarArgs) -> Result<ExitCode> {
    /// A sink that writes file contents to a stream.
    struct ToStream<W: Write> {
        out: W,
        sel: Selection,
        matched: Vec<bool>,
        /// The reader went away: stop quietly, as on any broken pipe.
        broken: bool,
    }
    impl<W: Write> EntrySink for ToStream<W> {
        fn enter_dir(&mut self, path: &[u8], _: &Entry) -> ptar::Result<Flow> {
            let wanted = !self.broken && (self.sel.pick(path).is_some() || self.sel.may_hold(path));
            Ok(if wanted { Flow::Take } else { Flow::Skip })
        }
        fn leave_dir(&mut self, _: &[u8], _: &Entry) -> ptar::Result<()> {
            Ok(())
        }
        fn file(
            &mut self,
            path: &[u8],
            _: &Entry,
            content: &mut FileContent<'_>,
        ) -> ptar::Result<Flow> {
            if !self.sel.take(path, &mut self.matched) {
                return Ok(Flow::Skip);
            }
            if self.broken {
                return Ok(Flow::Skip);
            }
            match std::io::copy(content, &mut self.out) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    self.broken = true;
                    Ok(Flow::Skip)
                }
                Err(e) => Err(e.into()),
                Ok(_) => Ok(Flow::Take),
            }
        }
        fn other(&mut self, _: &[u8], _: &Entry) -> ptar::Result<Flow> {
            Ok(Flow::Skip)
        }
    }
    /// Stops the walk after SIGINT, SIGTERM or SIGHUP.
    struct Interruptible;
    impl Progress for Interruptible {
        fn cancelled(&self) -> bool {
            crate::signals::received().is_some()
        }
    }
    let sel = selection(t)?;
    let matched = vec![false; sel.patterns.len()];
    let stdout = std::io::stdout();
    let mut sink = ToStream {
        out: BufWriter::with_capacity(1 << 20, stdout.lock()),
        sel,
        matched,
        broken: false,
    };
    let failures = archive.export(snap, &mut sink, &Interruptible)?;
    if sink.broken {
        return Ok(ExitCode::SUCCESS);
    }
    sink.out.flush()?;
    for (p, msg) in &failures {
        eprintln!("ptar: {}: {msg}", String::from_utf8_lossy(p));
    }
    let code = report_unmatched(&sink.sel.patterns, &sink.matched);
    Ok(if failures.is_empty() {
        code
    } else {
        ExitCode::from(2)
    })
}

fn verify(t: &TarArgs) -> Result<ExitCode> {
    // A damaged tail is opened past and reported as a problem (exit 2),
    // with what it takes with it, whether or not --ignore-damaged-tail
    // was given.
    let archive = open_archive_with(
        &t.file,
        t.passphrase_file.as_deref(),
        &ptar::OpenOptions::new().allow_damaged_tail(true),
    )?;
    let trusted_key = match &t.trusted_key {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read key {}", p.display()))?;
            Some(ptar::signing::public_from_text(&text).with_context(|| p.display().to_string())?)
        }
        None => None,
    };
    let packed: u64 = archive.store().committed_end() - archive.store().header_len();
    let progress = CliProgress::new(0);
    let progress = if t.full {
        progress.with_bar(t, Some(packed), "verifying")
    } else {
        progress
    };
    let report = archive.verify_with_progress(
        &VerifyOptions {
            full: t.full,
            trusted_key,
        },
        &progress,
    );
    progress.finish();
    if t.json {
        for d in &report.damaged {
            let line = json::Obj::new("damaged")
                .str("snapshot", &d.snapshot.to_hex())
                .bytes("path", &d.path)
                .str("problem", &d.problem)
                .done();
            println!("{line}");
        }
        let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        let line = json::Obj::new("verify")
            .bool("ok", report.ok())
            .bool("full", t.full)
            .num("generations", report.generations)
            .num("snapshots", report.snapshots as u64)
            .num("blobs_checked", report.blobs_checked)
            .num("bytes_checked", report.bytes_checked)
            .str(
                "signed_by",
                &report
                    .signed_by
                    .map(|k| ptar::format::hex(&k))
                    .unwrap_or_default(),
            )
            .num("tail_bytes", report.tail.as_ref().map_or(0, |t| t.len))
            .bool(
                "tail_damaged",
                report.tail.as_ref().is_some_and(|t| t.damaged),
            )
            .strs("problems", problems.iter().map(String::as_str))
            .num("damaged_paths", report.damaged.len() as u64)
            .done();
        println!("{line}");
        return Ok(if report.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        });
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "generations: {}", report.generations)?;
    writeln!(out, "snapshots: {}", report.snapshots)?;
    if t.full {
        writeln!(
            out,
            "blobs checked: {} ({})",
            report.blobs_checked,
            human(report.bytes_checked)
        )?;
    }
    match report.signed_by {
        Some(k) => writeln!(out, "signed by: {}", ptar::signing::fingerprint(&k))?,
        None => writeln!(out, "signed by: nobody")?,
    }
    if let Some(tail) = report.tail.as_ref().filter(|t| !t.damaged) {
        writeln!(
            out,
            "note: {} bytes of an interrupted append after generation {} are ignored (the next append removes them)",
            tail.len, report.generations
        )?;
    }
    if !report.damaged.is_empty() {
        writeln!(
            out,
            "damaged: {} path(s) cannot be read back whole (snapshot, path: problem); `ptar -x` extracts the rest:",
            report.damaged.len()
        )?;
        for d in &report.damaged {
            let path = if d.path.is_empty() {
                "/".into()
            } else {
                String::from_utf8_lossy(&d.path)
            };
            writeln!(out, "  {} {}: {}", d.snapshot.short(), path, d.problem)?;
        }
    }
    drop(out);
    for p in &report.problems {
        eprintln!("ptar: {p}");
    }
    if let Some(tail) = report.tail.as_ref().filter(|t| t.damaged) {
        eprintln!(
            "ptar: the checks above cover the generations up to {}, the last good one; other \
             commands read it with --ignore-damaged-tail, and appending needs the {} damaged \
             bytes removed (copy the file, then truncate it to {} bytes)",
            report.generations, tail.len, tail.offset
        );
    }
    if report.ok() {
        println!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "ptar: verification failed: {} problem(s)",
            report.problems.len()
        );
        Ok(ExitCode::from(2))
    }
}

fn snapshots(
    file: &Path,
    from: ReadFrom<'_>,
    as_json: bool,
    latest: Option<usize>,
) -> Result<ExitCode> {
    let archive = open_archive(file, from)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if !as_json {
        writeln!(
            out,
            "{:<8}  {:<16}  {:<12}  {:>8}  {:>10}  PATHS",
            "ID", "TIME (UTC)", "HOST", "FILES", "SIZE"
        )?;
    }
    let mut failed = None;
    // One snapshot read and printed at a time: the table may list millions.
    let start = latest.map_or(0, |n| archive.snapshot_count().saturating_sub(n));
    let listed = archive.for_each_snapshot_from(start, |s| {
        if let Err(e) = print_snapshot(&mut out, &s, as_json) {
            failed = Some(e);
            return Err(ptar::Error::Cancelled);
        }
        Ok(())
    });
    if let Some(e) = failed {
        return Err(e);
    }
    listed?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// One line of `ptar snapshots`.
fn print_snapshot(out: &mut impl Write, s: &ptar::Snapshot, as_json: bool) -> Result<()> {
    {
        let r = &s.record;
        let paths: Vec<String> = r
            .paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        if as_json {
            let line = json::Obj::new("snapshot")
                .str("id", &s.id.to_hex())
                .num("generation", s.generation)
                .num("time_ns", r.time_ns)
                .num("duration_ns", r.duration_ns)
                .str("hostname", &r.hostname)
                .str("username", &r.username)
                .str("name", &r.name)
                .strs("tags", r.tags.iter().map(String::as_str))
                .strs("paths", paths.iter().map(String::as_str))
                .num("files", r.summary.files)
                .num("dirs", r.summary.dirs)
                .num("total_bytes", r.summary.total_size)
                .num("errors", r.errors.len() as u64)
                .done();
            writeln!(out, "{line}")?;
            return Ok(());
        }
        writeln!(
            out,
            "{:<8}  {:<16}  {:<12}  {:>8}  {:>10}  {}",
            s.id.short(),
            output::date(r.time_ns.div_euclid(1_000_000_000)),
            r.hostname,
            r.summary.files,
            human(r.summary.total_size),
            paths.join(" ")
        )?;
    }
    Ok(())
}

fn keygen(path: &Path) -> Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = ptar::signing::generate();
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(ptar::signing::secret_to_text(&key).as_bytes())?;
    f.sync_all()?;
    std::fs::write(
        &pub_path,
        ptar::signing::public_to_text(&key.verifying_key()),
    )
    .with_context(|| format!("cannot write {}", Path::new(&pub_path).display()))?;
    eprintln!(
        "ptar: wrote secret key {} and public key {} (fingerprint {})",
        path.display(),
        Path::new(&pub_path).display(),
        ptar::signing::fingerprint(key.verifying_key().as_bytes())
    );
    Ok(ExitCode::SUCCESS)
}

/// `ptar repair`: rebuilds a damaged newest trailer from its manifest.
/// Exit 0: nothing to repair, or repaired (or, without --yes, repairable);
/// 2: not repairable or not written (the archive is as it was).
fn repair(file: &Path, passphrase_file: Option<&Path>, yes: bool) -> Result<ExitCode> {
    let header = ptar::probe(file).with_context(|| file.display().to_string())?;
    let pass = if header.encrypted() {
        Some(passphrase::for_reading(passphrase_file)?)
    } else {
        None
    };
    let plan = ptar::repair::plan(file, pass.as_deref().map(|p| p.as_slice()))
        .with_context(|| file.display().to_string())?;
    let Some(plan) = plan else {
        println!(
            "{}: the newest footer is intact; nothing to repair",
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "{}: the trailer of generation {} (bytes {}..{}) is damaged; its manifest at offset {} is intact",
        file.display(),
        plan.generation,
        plan.trailer_offset,
        plan.trailer_offset + ptar::format::manifest::TRAILER_LEN as u64,
        plan.manifest_offset
    );
    println!(
        "repairing restores generation {}: {} snapshot(s) listed instead of {}",
        plan.generation, plan.snapshots_after, plan.snapshots_before
    );
    if !yes {
        println!("nothing written; run again with --yes to write the repaired footer");
        return Ok(ExitCode::SUCCESS);
    }
    ptar::repair::apply(file, &plan)
        .map_err(|e| anyhow::anyhow!("not repaired: {}: {e}", file.display()))?;
    println!("repaired: {} ends in a valid footer again", file.display());
    Ok(ExitCode::SUCCESS)
}

fn passwd(
    file: &Path,
    current: Option<&Path>,
    new: Option<&Path>,
    add: bool,
    kdf: Option<&str>,
) -> Result<ExitCode> {
    let header = ptar::probe(file).with_context(|| file.display().to_string())?;
    if !header.encrypted() {
        bail!("{}: the archive is not encrypted", file.display());
    }
    let kdf = kdf_params(kdf)?;
    let pass = passphrase::for_reading(current)?;
    let mut w =
        Writer::append(file, Some(pass.as_slice())).with_context(|| file.display().to_string())?;
    let mut slots = if add {
        ptar::Archive::open(file, Some(pass.as_slice()))?
            .store()
            .key_slots()?
    } else {
        Vec::new()
    };
    // The set to be written must fit the whole-set cap: refused before the
    // new passphrase is asked for or derived.
    ptar::format::header::check_key_slot_set_for_writing(
        slots.iter().map(|s| &s.kdf).chain([&kdf]),
    )
    .map_err(anyhow::Error::msg)
    .with_context(|| format!("{}: cannot add a key slot", file.display()))?;
    let new_pass = passphrase::new_for_existing(new)?;
    slots.push(w.new_key_slot(&new_pass, kdf)?);
    let n = slots.len();
    w.set_key_slots(slots)?;
    let info = match committed(w.commit(), file)? {
        Ok(info) => info,
        Err(code) => return Ok(code),
    };
    eprintln!(
        "ptar: generation {} holds {n} key slot(s); no data was re-encrypted",
        info.generation
    );
    Ok(ExitCode::SUCCESS)
}
