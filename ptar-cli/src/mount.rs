//! `ptar mount`: a read-only FUSE view of an archive.
//!
//! Layout: without `--snapshot`, the root of the mount holds one directory
//! per snapshot, named `YYYY-MM-DDTHH:MM:SS-<short id>` (its time in UTC;
//! the whole id where two short names would collide), and a symlink
//! `latest` to the newest; with `--snapshot`, the root of the mount is that
//! snapshot's root directory.
//!
//! Inode numbers are assigned by one table, grown as the kernel looks names
//! up or lists directories, and kept until unmount so that a path always
//! has the same number while mounted. Inode 1 is the mount's root; in the
//! all-snapshots layout 2 is `latest` and 3.. are the snapshots' roots,
//! oldest first. Every other inode is keyed by (parent inode, name): a
//! parent inode stands for one directory path of one snapshot, so the key
//! is (snapshot, path). It is deliberately not the tree id: the same tree
//! (an unchanged directory) is shared by many snapshots and paths, whose
//! parents and `..` differ. A hard link's key maps to the inode of the
//! first link, found from the snapshot's root by the path the link
//! records, so the names share one inode (and `nlink` is the link count
//! recorded from the source); a link whose first name cannot be found gets
//! its own inode and fails to open. The table costs one entry's metadata
//! per name visited.
//!
//! Reads go through one [`FileReader`] per open file handle, which seeks to
//! the offset asked for and decodes only the chunks it needs. Any error
//! from the archive (a damaged chunk, tree or file map) is reported on
//! stderr as `ptar: PATH: ...` and answered with EIO; the mount stays up.
//! Everything that would change the view answers EROFS. Only the mounting
//! user may enter the mount (FUSE's default), and no permission bits are
//! enforced for them: whoever can read the archive can read all of it.
//!
//! `ptar mount` runs in the foreground until the view is unmounted, by
//! `fusermount -u MOUNTPOINT` (or `umount`), or by Ctrl-C, SIGTERM or
//! SIGHUP, which unmount it; then it exits 0. When the mount is still in
//! use, the signal is reported and the next one tries again.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

/// Runs `ptar mount`: mounts `file` on `mountpoint` until it is unmounted.
#[cfg(all(feature = "mount", target_os = "linux"))]
pub fn run(
    file: &Path,
    mountpoint: &Path,
    snapshot: Option<&str>,
    from: crate::commands::ReadFrom<'_>,
) -> Result<ExitCode> {
    fs::run(file, mountpoint, snapshot, from)
}

/// Runs `ptar mount`: this build has no FUSE support.
#[cfg(not(all(feature = "mount", target_os = "linux")))]
pub fn run(
    _file: &Path,
    _mountpoint: &Path,
    _snapshot: Option<&str>,
    _from: crate::commands::ReadFrom<'_>,
) -> Result<ExitCode> {
    anyhow::bail!("this ptar was built without mount support (cargo feature \"mount\")")
}

#[cfg(all(feature = "mount", target_os = "linux"))]
mod fs {
    use std::collections::HashMap;
    use std::ffi::OsStr;
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use anyhow::{Context, Result};
    use fuser::{
        AccessFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
        Generation, INodeNo, LockOwner, MountOption, OpenAccMode, OpenFlags, RenameFlags,
        ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
        ReplyStatfs, ReplyWrite, ReplyXattr, Request, Session, SessionACL, TimeOrNow, WriteFlags,
    };
    use nix::sys::signal::{SigSet, Signal};
    use ptar::file::FileReader;
    use ptar::format::tree::{Content, Entry, EntryType, Extent, Payload, Timestamp};
    use ptar::{Archive, Snapshot};

    /// How long the kernel may keep names and attributes: the view never
    /// changes while mounted.
    const TTL: Duration = Duration::from_secs(3600);
    /// The mount's root.
    const ROOT: u64 = 1;
    /// The preferred I/O size reported by stat: the average chunk.
    const BLKSIZE: u32 = 64 * 1024;

    /// What an inode shows.
    // Every node but two is an entry: boxing it would only add a pointer.
    #[allow(clippy::large_enum_variant)]
    enum What {
        /// The top directory of the all-snapshots layout.
        Top,
        /// The top directory's `latest` symlink, with its target.
        Latest(Vec<u8>),
        /// An entry of snapshot `snap` (an index into `PtarFs::snapshots`).
        Entry { snap: usize, entry: Entry },
    }

    /// One inode.
    struct Node {
        /// The directory it was found in (itself for the root), for `..`
        /// and for the paths in messages.
        parent: u64,
        /// Its name in that directory.
        name: Vec<u8>,
        what: What,
        /// 512-byte blocks its content occupies, found on first use.
        blocks: OnceLock<u64>,
    }

    /// The inode table: node `ino` is `nodes[ino - 1]`.
    #[derive(Default)]
    struct Table {
        nodes: Vec<Arc<Node>>,
        by_name: HashMap<(u64, Vec<u8>), u64>,
    }

    impl Table {
        fn push(&mut self, parent: u64, name: Vec<u8>, what: What) -> u64 {
            self.nodes.push(Arc::new(Node {
                parent,
                name: name.clone(),
                what,
                blocks: OnceLock::new(),
            }));
            let ino = self.nodes.len() as u64;
            if ino != ROOT {
                self.by_name.insert((parent, name), ino);
            }
            ino
        }
    }

    /// One line of a directory listing: inode, type, name.
    type DirItem = (u64, FileType, Vec<u8>);

    /// The file system served: an archive, the snapshots shown, the inode
    /// table, and the open files and directories.
    struct PtarFs {
        archive: Archive,
        snapshots: Vec<Snapshot>,
        /// The inode of each snapshot's root.
        roots: Vec<u64>,
        table: RwLock<Table>,
        files: Mutex<HashMap<u64, Arc<Mutex<FileReader>>>>,
        dirs: Mutex<HashMap<u64, Arc<Vec<DirItem>>>>,
        next_handle: AtomicU64,
        /// Owner and time of the top directory and `latest`.
        uid: u32,
        gid: u32,
        top_time: SystemTime,
        /// The archive's size, for statfs.
        archive_len: u64,
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Names for the snapshot directories: time and short id, or the whole
    /// id where short names collide.
    fn snapshot_names(snapshots: &[Snapshot]) -> Vec<String> {
        let name = |s: &Snapshot, id: String| {
            let secs = s.record.time_ns.div_euclid(1_000_000_000);
            format!("{}-{id}", crate::output::date_time(secs))
        };
        let short: Vec<String> = snapshots.iter().map(|s| name(s, s.id.short())).collect();
        short
            .iter()
            .zip(snapshots)
            .map(|(n, s)| {
                if short.iter().filter(|m| *m == n).count() > 1 {
                    name(s, s.id.to_hex())
                } else {
                    n.clone()
                }
            })
            .collect()
    }

    fn system_time(t: Timestamp) -> SystemTime {
        let base = if t.sec >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(t.sec as u64))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(t.sec.unsigned_abs()))
        };
        base.and_then(|b| b.checked_add(Duration::from_nanos(u64::from(t.nsec))))
            .unwrap_or(UNIX_EPOCH)
    }

    fn file_type(kind: EntryType) -> FileType {
        match kind {
            EntryType::File | EntryType::Hardlink => FileType::RegularFile,
            EntryType::Dir => FileType::Directory,
            EntryType::Symlink => FileType::Symlink,
            EntryType::CharDevice => FileType::CharDevice,
            EntryType::BlockDevice => FileType::BlockDevice,
            EntryType::Fifo => FileType::NamedPipe,
            EntryType::Socket => FileType::Socket,
        }
    }

    /// The kernel's 32-bit device number (`new_encode_dev`), which FUSE carries.
    fn encode_dev(major: u32, minor: u32) -> u32 {
        (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
    }

    /// A member path's components, as a hard link records them.
    fn link_components(path: &[u8]) -> Option<Vec<&[u8]>> {
        let mut out = Vec::new();
        for c in path.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return None,
                c => out.push(c),
            }
        }
        (!out.is_empty()).then_some(out)
    }

    impl PtarFs {
        /// The view of `archive`: all snapshots, or the one `selector` names.
        fn new(archive: Archive, selector: Option<&str>, archive_len: u64) -> Result<PtarFs> {
            let mut table = Table::default();
            let mut roots = Vec::new();
            let snapshots = match selector {
                Some(sel) => {
                    let snap = archive.snapshot(sel)?;
                    let root = root_entry(&archive, &snap)?;
                    roots.push(table.push(
                        ROOT,
                        Vec::new(),
                        What::Entry {
                            snap: 0,
                            entry: root,
                        },
                    ));
                    vec![snap]
                }
                None => {
                    let mut snapshots = Vec::new();
                    for t in archive.store().snapshot_list().iter() {
                        let t = t?;
                        match archive.load_snapshot(&t) {
                            Ok(s) => snapshots.push(s),
                            Err(e) => eprintln!(
                                "ptar: snapshot {}: {e}; it is left out of the mount",
                                t.id.short()
                            ),
                        }
                    }
                    let names = snapshot_names(&snapshots);
                    table.push(ROOT, Vec::new(), What::Top);
                    if let Some(newest) = names.last() {
                        table.push(
                            ROOT,
                            b"latest".to_vec(),
                            What::Latest(newest.as_bytes().to_vec()),
                        );
                    }
                    for (i, (snap, name)) in snapshots.iter().zip(&names).enumerate() {
                        let root = root_entry(&archive, snap)?;
                        roots.push(table.push(
                            ROOT,
                            name.as_bytes().to_vec(),
                            What::Entry {
                                snap: i,
                                entry: root,
                            },
                        ));
                    }
                    snapshots
                }
            };
            let top_time = snapshots
                .iter()
                .map(|s| s.record.time_ns)
                .max()
                .map(|ns| {
                    system_time(Timestamp {
                        sec: ns.div_euclid(1_000_000_000),
                        nsec: ns.rem_euclid(1_000_000_000) as u32,
                    })
                })
                .unwrap_or(UNIX_EPOCH);
            Ok(PtarFs {
                archive,
                snapshots,
                roots,
                table: RwLock::new(table),
                files: Mutex::new(HashMap::new()),
                dirs: Mutex::new(HashMap::new()),
                next_handle: AtomicU64::new(1),
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
                top_time,
                archive_len,
            })
        }

        fn node(&self, ino: u64) -> Option<Arc<Node>> {
            let t = self.table.read().unwrap_or_else(|p| p.into_inner());
            ino.checked_sub(1)
                .and_then(|i| t.nodes.get(i as usize))
                .cloned()
        }

        fn known(&self, parent: u64, name: &[u8]) -> Option<u64> {
            let t = self.table.read().unwrap_or_else(|p| p.into_inner());
            t.by_name.get(&(parent, name.to_vec())).copied()
        }

        /// The inode for `entry`, found in directory `parent` of snapshot
        /// `snap`: the one it already has, or a new one.
        fn insert(&self, parent: u64, snap: usize, entry: Entry) -> u64 {
            let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
            if let Some(&ino) = t.by_name.get(&(parent, entry.name.clone())) {
                return ino;
            }
            t.push(parent, entry.name.clone(), What::Entry { snap, entry })
        }

        /// Records `entry` of directory `parent`: a hard link gets the inode
        /// of its first name.
        fn intern(&self, parent: u64, snap: usize, entry: Entry) -> u64 {
            if let Some(ino) = self.known(parent, &entry.name) {
                return ino;
            }
            if let Payload::Hardlink(target) = &entry.payload {
                match self.resolve_link(snap, target) {
                    Ok(ino) => {
                        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
                        return *t.by_name.entry((parent, entry.name)).or_insert(ino);
                    }
                    Err(e) => {
                        let ino = self.insert(parent, snap, entry);
                        self.report(ino, &format!("hard link: {e}"));
                        return ino;
                    }
                }
            }
            self.insert(parent, snap, entry)
        }

        /// The inode of the regular file a hard link names, by its path from
        /// the snapshot's root. Only directories and the final regular file
        /// are followed, so hostile links cannot make a loop.
        fn resolve_link(&self, snap: usize, path: &[u8]) -> Result<u64, String> {
            let shown = || String::from_utf8_lossy(path).into_owned();
            let parts = link_components(path).ok_or_else(|| format!("bad path '{}'", shown()))?;
            let mut ino = self.roots[snap];
            for (i, part) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                let want = if last {
                    EntryType::File
                } else {
                    EntryType::Dir
                };
                let next = match self.known(ino, part) {
                    Some(n) => n,
                    None => {
                        let dir = self.node(ino).ok_or("no such inode")?;
                        let tree = match &dir.what {
                            What::Entry {
                                entry:
                                    Entry {
                                        payload: Payload::Dir(id),
                                        ..
                                    },
                                ..
                            } => *id,
                            _ => return Err(format!("'{}' is not a file's path", shown())),
                        };
                        let found =
                            ptar::tree::find_in_directory(self.archive.store(), &tree, part)
                                .map_err(|e| e.to_string())?
                                .ok_or_else(|| format!("'{}' is not in the snapshot", shown()))?;
                        if found.kind != want {
                            return Err(format!("'{}' is not a regular file", shown()));
                        }
                        self.insert(ino, snap, found)
                    }
                };
                let node = self.node(next).ok_or("no such inode")?;
                match &node.what {
                    What::Entry { entry, .. } if entry.kind == want => ino = next,
                    _ => return Err(format!("'{}' is not a regular file", shown())),
                }
            }
            Ok(ino)
        }

        /// The inode of `name` in directory `parent`, if there is one.
        fn child(&self, parent: u64, name: &[u8]) -> Result<Option<u64>, Errno> {
            if let Some(ino) = self.known(parent, name) {
                return Ok(Some(ino));
            }
            let node = self.node(parent).ok_or(Errno::ENOENT)?;
            match &node.what {
                // The top directory's names are all in the table from the start.
                What::Top => Ok(None),
                What::Latest(_) => Err(Errno::ENOTDIR),
                What::Entry { snap, entry } => {
                    let Payload::Dir(tree) = &entry.payload else {
                        return Err(Errno::ENOTDIR);
                    };
                    match ptar::tree::find_in_directory(self.archive.store(), tree, name) {
                        Ok(Some(e)) => Ok(Some(self.intern(parent, *snap, e))),
                        Ok(None) => Ok(None),
                        Err(e) => {
                            self.report(parent, &e.to_string());
                            Err(Errno::EIO)
                        }
                    }
                }
            }
        }

        /// The path of an inode inside the mount, for messages.
        fn path_of(&self, mut ino: u64) -> String {
            let mut parts = Vec::new();
            // The depth is bounded by the table; each step goes to an older inode.
            while ino != ROOT {
                let Some(node) = self.node(ino) else { break };
                parts.push(String::from_utf8_lossy(&node.name).into_owned());
                if node.parent >= ino {
                    break;
                }
                ino = node.parent;
            }
            parts.reverse();
            format!("/{}", parts.join("/"))
        }

        /// Reports a problem with an inode on stderr.
        fn report(&self, ino: u64, what: &str) {
            eprintln!("ptar: {}: {what}", self.path_of(ino));
        }

        /// Bytes of content stored for a file (its size less its holes).
        fn allocated(&self, entry: &Entry) -> u64 {
            let data = |extents: &[Extent]| {
                extents
                    .iter()
                    .map(|x| match x {
                        Extent::Data { len, .. } => u64::from(*len),
                        Extent::Hole { .. } => 0,
                    })
                    .sum::<u64>()
            };
            match &entry.payload {
                Payload::File(Content::Inline(extents)) => data(extents),
                Payload::File(content @ Content::Map(_)) => self
                    .archive
                    .extents(content, entry.size)
                    .map(|x| data(&x))
                    .unwrap_or(entry.size),
                _ => entry.size,
            }
        }

        fn attr(&self, ino: u64, node: &Node) -> FileAttr {
            let base = FileAttr {
                ino: INodeNo(ino),
                size: 0,
                blocks: 0,
                atime: self.top_time,
                mtime: self.top_time,
                ctime: self.top_time,
                crtime: self.top_time,
                kind: FileType::Directory,
                perm: 0o555,
                nlink: 1,
                uid: self.uid,
                gid: self.gid,
                rdev: 0,
                blksize: BLKSIZE,
                flags: 0,
            };
            match &node.what {
                What::Top => FileAttr {
                    nlink: 2 + self.snapshots.len() as u32,
                    ..base
                },
                What::Latest(target) => FileAttr {
                    kind: FileType::Symlink,
                    perm: 0o777,
                    size: target.len() as u64,
                    ..base
                },
                What::Entry { entry: e, .. } => {
                    let size = match &e.payload {
                        Payload::Symlink(t) => t.len() as u64,
                        _ if matches!(e.kind, EntryType::File | EntryType::Hardlink) => e.size,
                        _ => 0,
                    };
                    let blocks = match e.kind {
                        EntryType::File | EntryType::Hardlink => {
                            *node.blocks.get_or_init(|| self.allocated(e).div_ceil(512))
                        }
                        _ => 0,
                    };
                    let rdev = match e.payload {
                        Payload::Device { major, minor } => encode_dev(major, minor),
                        _ => 0,
                    };
                    FileAttr {
                        size,
                        blocks,
                        atime: system_time(e.atime),
                        mtime: system_time(e.mtime),
                        ctime: system_time(e.ctime),
                        crtime: system_time(e.ctime),
                        kind: file_type(e.kind),
                        perm: (e.mode & 0o7777) as u16,
                        nlink: e.nlink.max(1),
                        uid: e.uid,
                        gid: e.gid,
                        rdev,
                        ..base
                    }
                }
            }
        }

        fn new_handle(&self) -> u64 {
            self.next_handle.fetch_add(1, Ordering::Relaxed)
        }

        /// The listing of a directory inode: `.`, `..`, then its entries.
        fn listing(&self, ino: u64) -> Result<Vec<DirItem>, Errno> {
            let node = self.node(ino).ok_or(Errno::ENOENT)?;
            let mut items = vec![
                (ino, FileType::Directory, b".".to_vec()),
                (node.parent, FileType::Directory, b"..".to_vec()),
            ];
            match &node.what {
                What::Top => {
                    let t = self.table.read().unwrap_or_else(|p| p.into_inner());
                    // The inodes right after the root are the top's names.
                    let last = self.roots.last().copied().unwrap_or(ROOT);
                    for child in ROOT + 1..=last {
                        let n = &t.nodes[child as usize - 1];
                        let kind = match n.what {
                            What::Latest(_) => FileType::Symlink,
                            _ => FileType::Directory,
                        };
                        items.push((child, kind, n.name.clone()));
                    }
                }
                What::Latest(_) => return Err(Errno::ENOTDIR),
                What::Entry { snap, entry } => {
                    let Payload::Dir(tree) = &entry.payload else {
                        return Err(Errno::ENOTDIR);
                    };
                    let entries = self.archive.read_dir(tree).map_err(|e| {
                        self.report(ino, &e.to_string());
                        Errno::EIO
                    })?;
                    for e in entries {
                        let kind = file_type(e.kind);
                        let name = e.name.clone();
                        items.push((self.intern(ino, *snap, e), kind, name));
                    }
                }
            }
            Ok(items)
        }
    }

    fn root_entry(archive: &Archive, snap: &Snapshot) -> Result<Entry> {
        archive
            .lookup(snap, "")?
            .context("the snapshot has no root directory")
    }

    impl Filesystem for PtarFs {
        fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
            match self.child(parent.0, name.as_bytes()) {
                Ok(Some(ino)) => match self.node(ino) {
                    Some(node) => reply.entry(&TTL, &self.attr(ino, &node), Generation(0)),
                    None => reply.error(Errno::ENOENT),
                },
                Ok(None) => reply.error(Errno::ENOENT),
                Err(e) => reply.error(e),
            }
        }

        fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
            match self.node(ino.0) {
                Some(node) => reply.attr(&TTL, &self.attr(ino.0, &node)),
                None => reply.error(Errno::ENOENT),
            }
        }

        fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
            match self.node(ino.0).as_deref().map(|n| &n.what) {
                Some(What::Latest(target)) => reply.data(target),
                Some(What::Entry {
                    entry:
                        Entry {
                            payload: Payload::Symlink(target),
                            ..
                        },
                    ..
                }) => reply.data(target),
                Some(_) => reply.error(Errno::EINVAL),
                None => reply.error(Errno::ENOENT),
            }
        }

        fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
            if flags.acc_mode() != OpenAccMode::O_RDONLY {
                return reply.error(Errno::EROFS);
            }
            let Some(node) = self.node(ino.0) else {
                return reply.error(Errno::ENOENT);
            };
            let What::Entry { snap, entry } = &node.what else {
                return reply.error(Errno::EISDIR);
            };
            match entry.kind {
                EntryType::File | EntryType::Hardlink => {}
                EntryType::Dir => return reply.error(Errno::EISDIR),
                _ => return reply.error(Errno::EINVAL),
            }
            match self.archive.file_reader(&self.snapshots[*snap], entry) {
                Ok(reader) => {
                    let fh = self.new_handle();
                    lock(&self.files).insert(fh, Arc::new(Mutex::new(reader)));
                    reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
                }
                Err(e) => {
                    self.report(ino.0, &e.to_string());
                    reply.error(Errno::EIO);
                }
            }
        }

        fn read(
            &self,
            _req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            offset: u64,
            size: u32,
            _flags: OpenFlags,
            _lock_owner: Option<LockOwner>,
            reply: ReplyData,
        ) {
            let Some(reader) = lock(&self.files).get(&fh.0).cloned() else {
                return reply.error(Errno::EBADF);
            };
            let mut reader = lock(&reader);
            let want = reader.len().saturating_sub(offset).min(u64::from(size)) as usize;
            let mut buf = vec![0u8; want];
            let mut got = 0;
            let result = reader.seek(SeekFrom::Start(offset)).and_then(|_| {
                while got < want {
                    match reader.read(&mut buf[got..])? {
                        0 => break,
                        n => got += n,
                    }
                }
                Ok(())
            });
            match result {
                Ok(()) => reply.data(&buf[..got]),
                Err(e) => {
                    self.report(ino.0, &format!("at offset {offset}: {e}"));
                    reply.error(Errno::EIO);
                }
            }
        }

        fn release(
            &self,
            _req: &Request,
            _ino: INodeNo,
            fh: FileHandle,
            _flags: OpenFlags,
            _lock_owner: Option<LockOwner>,
            _flush: bool,
            reply: ReplyEmpty,
        ) {
            lock(&self.files).remove(&fh.0);
            reply.ok();
        }

        fn flush(
            &self,
            _req: &Request,
            _ino: INodeNo,
            _fh: FileHandle,
            _lock_owner: LockOwner,
            reply: ReplyEmpty,
        ) {
            reply.ok();
        }

        fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
            match self.listing(ino.0) {
                Ok(items) => {
                    let fh = self.new_handle();
                    lock(&self.dirs).insert(fh, Arc::new(items));
                    reply.opened(FileHandle(fh), FopenFlags::empty());
                }
                Err(e) => reply.error(e),
            }
        }

        fn readdir(
            &self,
            _req: &Request,
            ino: INodeNo,
            fh: FileHandle,
            offset: u64,
            mut reply: ReplyDirectory,
        ) {
            let items = match lock(&self.dirs).get(&fh.0).cloned() {
                Some(items) => items,
                None => match self.listing(ino.0) {
                    Ok(items) => Arc::new(items),
                    Err(e) => return reply.error(e),
                },
            };
            // Offset k means: the first k lines were read already.
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            for (i, (child, kind, name)) in items.iter().enumerate().skip(start) {
                if reply.add(
                    INodeNo(*child),
                    i as u64 + 1,
                    *kind,
                    OsStr::from_bytes(name),
                ) {
                    break;
                }
            }
            reply.ok();
        }

        fn releasedir(
            &self,
            _req: &Request,
            _ino: INodeNo,
            fh: FileHandle,
            _flags: OpenFlags,
            reply: ReplyEmpty,
        ) {
            lock(&self.dirs).remove(&fh.0);
            reply.ok();
        }

        fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
            let files: u64 = self
                .snapshots
                .iter()
                .map(|s| {
                    let m = &s.record.summary;
                    m.files + m.dirs + m.symlinks + m.hardlinks + m.others
                })
                .sum();
            let bsize = 4096u32;
            reply.statfs(
                self.archive_len.div_ceil(u64::from(bsize)),
                0,
                0,
                files,
                0,
                bsize,
                255,
                bsize,
            );
        }

        fn getxattr(
            &self,
            _req: &Request,
            ino: INodeNo,
            name: &OsStr,
            size: u32,
            reply: ReplyXattr,
        ) {
            let Some(node) = self.node(ino.0) else {
                return reply.error(Errno::ENOENT);
            };
            let value = match &node.what {
                What::Entry { entry, .. } => entry
                    .xattrs
                    .iter()
                    .find(|(n, _)| n.as_slice() == name.as_bytes())
                    .map(|(_, v)| v),
                _ => None,
            };
            match value {
                None => reply.error(Errno::NO_XATTR),
                Some(v) if size == 0 => reply.size(v.len() as u32),
                Some(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
                Some(v) => reply.data(v),
            }
        }

        fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
            let Some(node) = self.node(ino.0) else {
                return reply.error(Errno::ENOENT);
            };
            let mut names = Vec::new();
            if let What::Entry { entry, .. } = &node.what {
                for (n, _) in &entry.xattrs {
                    names.extend_from_slice(n);
                    names.push(0);
                }
            }
            if size == 0 {
                reply.size(names.len() as u32)
            } else if names.len() > size as usize {
                reply.error(Errno::ERANGE)
            } else {
                reply.data(&names)
            }
        }

        fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
            if self.node(ino.0).is_none() {
                reply.error(Errno::ENOENT)
            } else if mask.contains(AccessFlags::W_OK) {
                reply.error(Errno::EROFS)
            } else {
                reply.ok()
            }
        }

        // Everything below would change the view: refused.

        fn setattr(
            &self,
            _req: &Request,
            _ino: INodeNo,
            _mode: Option<u32>,
            _uid: Option<u32>,
            _gid: Option<u32>,
            _size: Option<u64>,
            _atime: Option<TimeOrNow>,
            _mtime: Option<TimeOrNow>,
            _ctime: Option<SystemTime>,
            _fh: Option<FileHandle>,
            _crtime: Option<SystemTime>,
            _chgtime: Option<SystemTime>,
            _bkuptime: Option<SystemTime>,
            _flags: Option<fuser::BsdFileFlags>,
            reply: ReplyAttr,
        ) {
            reply.error(Errno::EROFS);
        }

        fn mknod(
            &self,
            _req: &Request,
            _parent: INodeNo,
            _name: &OsStr,
            _mode: u32,
            _umask: u32,
            _rdev: u32,
            reply: ReplyEntry,
        ) {
            reply.error(Errno::EROFS);
        }

        fn mkdir(
            &self,
            _req: &Request,
            _parent: INodeNo,
            _name: &OsStr,
            _mode: u32,
            _umask: u32,
            reply: ReplyEntry,
        ) {
            reply.error(Errno::EROFS);
        }

        fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
            reply.error(Errno::EROFS);
        }

        fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
            reply.error(Errno::EROFS);
        }

        fn symlink(
            &self,
            _req: &Request,
            _parent: INodeNo,
            _link_name: &OsStr,
            _target: &Path,
            reply: ReplyEntry,
        ) {
            reply.error(Errno::EROFS);
        }

        fn rename(
            &self,
            _req: &Request,
            _parent: INodeNo,
            _name: &OsStr,
            _newparent: INodeNo,
            _newname: &OsStr,
            _flags: RenameFlags,
            reply: ReplyEmpty,
        ) {
            reply.error(Errno::EROFS);
        }

        fn link(
            &self,
            _req: &Request,
            _ino: INodeNo,
            _newparent: INodeNo,
            _newname: &OsStr,
            reply: ReplyEntry,
        ) {
            reply.error(Errno::EROFS);
        }

        fn write(
            &self,
            _req: &Request,
            _ino: INodeNo,
            _fh: FileHandle,
            _offset: u64,
            _data: &[u8],
            _write_flags: WriteFlags,
            _flags: OpenFlags,
            _lock_owner: Option<LockOwner>,
            reply: ReplyWrite,
        ) {
            reply.error(Errno::EROFS);
        }

        fn setxattr(
            &self,
            _req: &Request,
            _ino: INodeNo,
            _name: &OsStr,
            _value: &[u8],
            _flags: i32,
            _position: u32,
            reply: ReplyEmpty,
        ) {
            reply.error(Errno::EROFS);
        }

        fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
            reply.error(Errno::EROFS);
        }

        fn create(
            &self,
            _req: &Request,
            _parent: INodeNo,
            _name: &OsStr,
            _mode: u32,
            _umask: u32,
            _flags: i32,
            reply: ReplyCreate,
        ) {
            reply.error(Errno::EROFS);
        }

        fn fallocate(
            &self,
            _req: &Request,
            _ino: INodeNo,
            _fh: FileHandle,
            _offset: u64,
            _length: u64,
            _mode: i32,
            reply: ReplyEmpty,
        ) {
            reply.error(Errno::EROFS);
        }
    }

    /// Unmounts `mountpoint` without fuser's handle: as root directly, else
    /// through the setuid helper.
    fn unmount_again(mountpoint: &Path) -> std::io::Result<()> {
        match nix::mount::umount(mountpoint) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EPERM) => {}
            Err(e) => return Err(e.into()),
        }
        let mut last = std::io::Error::other("fusermount is not installed");
        for helper in ["fusermount", "fusermount3"] {
            match std::process::Command::new(helper)
                .arg("-u")
                .arg(mountpoint)
                .status()
            {
                Ok(s) if s.success() => return Ok(()),
                Ok(s) => last = std::io::Error::other(format!("{helper} -u failed ({s})")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Waits for Ctrl-C, SIGTERM or SIGHUP and unmounts; the session then
    /// ends and `run` returns. A mount still in use is reported, and the
    /// next signal tries again.
    fn on_signals(signals: SigSet, mut unmounter: fuser::SessionUnmounter, mountpoint: PathBuf) {
        let mut first = true;
        loop {
            let Ok(sig) = signals.wait() else { return };
            let result = if first {
                first = false;
                unmounter.unmount()
            } else {
                unmount_again(&mountpoint)
            };
            if let Err(e) = result {
                eprintln!(
                    "ptar: {sig}: cannot unmount {}: {e}; leave it and send the signal again, or detach it with `fusermount -u -z {}`",
                    mountpoint.display(),
                    mountpoint.display()
                );
            }
        }
    }

    pub(super) fn run(
        file: &Path,
        mountpoint: &Path,
        snapshot: Option<&str>,
        from: crate::commands::ReadFrom<'_>,
    ) -> Result<ExitCode> {
        let mountpoint = &mountpoint
            .canonicalize()
            .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;
        let archive = crate::commands::open_archive(file, from)?;
        let archive_len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let fs = PtarFs::new(archive, snapshot, archive_len)
            .with_context(|| file.display().to_string())?;
        // The fs name in the mount table, where commas separate options.
        let fsname: String = format!("ptar:{}", file.display())
            .chars()
            .map(|c| {
                if c == ',' || c.is_whitespace() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::RO,
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::FSName(fsname),
            MountOption::Subtype("ptar".into()),
        ];
        config.acl = SessionACL::Owner;
        config.n_threads = Some(
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 8),
        );
        // Signals are taken by one thread (sigwait): block them here, before
        // the session's threads start and inherit the mask.
        let mut signals = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            signals.add(s);
        }
        signals.thread_block().context("cannot block signals")?;
        let mut session = match Session::new(fs, mountpoint, &config) {
            Ok(s) => s,
            Err(e) => {
                let hint = match e.kind() {
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound => {
                        " (FUSE needs /dev/fuse, and the fusermount helper when not root)"
                    }
                    _ => "",
                };
                anyhow::bail!(
                    "cannot mount {} on {}: {e}{hint}",
                    file.display(),
                    mountpoint.display()
                );
            }
        };
        let unmounter = session.unmount_callable();
        let at = mountpoint.to_path_buf();
        std::thread::Builder::new()
            .name("ptar-signals".into())
            .spawn(move || on_signals(signals, unmounter, at))
            .context("cannot start the signal thread")?;
        eprintln!(
            "ptar: {} is mounted read-only on {}; `fusermount -u {}` or Ctrl-C unmounts it",
            file.display(),
            mountpoint.display(),
            mountpoint.display()
        );
        session.run().context("the FUSE session failed")?;
        Ok(ExitCode::SUCCESS)
    }
}
