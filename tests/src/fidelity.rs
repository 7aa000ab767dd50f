//! The metadata-fidelity tree: every kind of entry and metadata a Unix file
//! system holds, and its fields as text for comparison after a round trip.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The kernel's binary form of a POSIX ACL: version 2, then (tag, perm, id).
pub fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut b = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&perm.to_le_bytes());
        b.extend_from_slice(&id.to_le_bytes());
    }
    b
}

pub const UNDEFINED_ID: u32 = u32::MAX;

/// A fidelity tree built by [`build`], and which optional features this machine supports.
pub struct Tree {
    /// Where it is.
    pub root: PathBuf,
    /// Whether POSIX ACLs could be set.
    pub acls: bool,
    /// Whether user xattrs could be set.
    pub xattrs: bool,
}

/// Builds, under `root/dir`, a tree with every kind of entry and metadata: set-id and
/// sticky bits, symlinks, a hard link, a fifo, a non-UTF-8 name, a sparse file, an
/// xattr, ACLs and (as root) a device and foreign owners; times with nanoseconds.
pub fn build(root: &Path, as_root: bool) -> Tree {
    std::fs::create_dir_all(root.join("dir/empty")).unwrap();
    let f = |p: &str| root.join(p);
    std::fs::write(f("dir/plain.txt"), "plain\n").unwrap();
    std::fs::write(f("dir/empty.txt"), "").unwrap();
    std::fs::write(f("dir/exec"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(f("dir/exec"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::create_dir(f("dir/sticky")).unwrap();
    std::fs::set_permissions(f("dir/sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::create_dir(f("dir/setgid")).unwrap();
    std::fs::set_permissions(f("dir/setgid"), std::fs::Permissions::from_mode(0o2750)).unwrap();
    std::os::unix::fs::symlink("plain.txt", f("dir/rel-link")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", f("dir/dangling")).unwrap();
    std::fs::hard_link(f("dir/plain.txt"), f("dir/hard")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f("dir/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::write(
        root.join(OsStr::from_bytes(b"dir/not-utf8-\xff\xfe")),
        "odd",
    )
    .unwrap();
    let sparse = std::fs::File::create(f("dir/sparse.img")).unwrap();
    sparse.set_len(16 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"island", 8 << 20).unwrap();
    drop(sparse);
    let xattrs = xattr::set(f("dir/plain.txt"), "user.origin", b"fidelity").is_ok();
    // user::rw-, user 1001 r--, group::r--, mask r--, other ---
    let access = acl(&[
        (0x01, 6, UNDEFINED_ID),
        (0x02, 4, 1001),
        (0x04, 4, UNDEFINED_ID),
        (0x10, 4, UNDEFINED_ID),
        (0x20, 0, UNDEFINED_ID),
    ]);
    let acls = xattr::set(f("dir/exec"), "system.posix_acl_access", &access).is_ok()
        && xattr::set(
            f("dir/setgid"),
            "system.posix_acl_default",
            &acl(&[
                (0x01, 7, UNDEFINED_ID),
                (0x04, 5, UNDEFINED_ID),
                (0x20, 5, UNDEFINED_ID),
            ]),
        )
        .is_ok();
    if acls {
        // Setting an access ACL rewrites the group bits: put the mode back.
        std::fs::set_permissions(f("dir/exec"), std::fs::Permissions::from_mode(0o4745)).unwrap();
    }
    if as_root {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            f("dir/null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        std::os::unix::fs::lchown(f("dir/plain.txt"), Some(1001), Some(1002)).unwrap();
        std::os::unix::fs::lchown(f("dir/rel-link"), Some(1003), Some(1004)).unwrap();
    }
    // Times with nanoseconds, set last (children first, then directories).
    let mut all: Vec<PathBuf> = walk(root).into_keys().collect();
    all.sort();
    for (i, p) in all.iter().rev().enumerate() {
        let t = filetime::FileTime::from_unix_time(
            1_600_000_000 + i as i64 * 3600,
            111_111_111 * (i as u32 % 9),
        );
        let a = filetime::FileTime::from_unix_time(1_500_000_000 + i as i64, 7);
        filetime::set_symlink_file_times(root.join(p), a, t).unwrap();
    }
    Tree {
        root: root.to_path_buf(),
        acls,
        xattrs,
    }
}

/// Every path under `root` (relative), with its lstat.
pub fn walk(root: &Path) -> BTreeMap<PathBuf, std::fs::Metadata> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for de in std::fs::read_dir(root.join(&rel)).unwrap() {
            let de = de.unwrap();
            let r = rel.join(de.file_name());
            let md = std::fs::symlink_metadata(de.path()).unwrap();
            if md.is_dir() {
                stack.push(r.clone());
            }
            out.insert(r, md);
        }
    }
    out
}

/// The fields compared, per path: name → value as text.
pub fn fields(root: &Path) -> BTreeMap<PathBuf, BTreeMap<&'static str, String>> {
    let all = walk(root);
    let mut inodes: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (rel, md) in &all {
        let p = root.join(rel);
        let ft = md.file_type();
        let mut m: BTreeMap<&'static str, String> = BTreeMap::new();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "chardev"
        } else {
            "file"
        };
        m.insert("type", kind.into());
        if !ft.is_symlink() {
            m.insert("mode", format!("{:o}", md.mode() & 0o7777));
        }
        m.insert("owner", format!("{}:{}", md.uid(), md.gid()));
        if !ft.is_dir() {
            m.insert("mtime", format!("{}.{:09}", md.mtime(), md.mtime_nsec()));
        }
        if ft.is_file() {
            // Read without touching the access time, which is compared too.
            use std::io::Read;
            use std::os::unix::fs::OpenOptionsExt;
            let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
            let mut data = Vec::new();
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(noatime)
                .open(&p)
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
            m.insert("content", blake3::hash(&data).to_hex().to_string());
            m.insert("atime", format!("{}.{:09}", md.atime(), md.atime_nsec()));
            m.insert("size", md.len().to_string());
            m.insert("sparse", (md.blocks() * 512 < md.len() / 2).to_string());
            let first = inodes.entry(md.ino()).or_insert_with(|| rel.clone());
            m.insert("links", format!("{} first={}", md.nlink(), first.display()));
        }
        if ft.is_symlink() {
            m.insert(
                "target",
                std::fs::read_link(&p).unwrap().display().to_string(),
            );
        }
        if ft.is_char_device() {
            m.insert("rdev", md.rdev().to_string());
        }
        if !ft.is_symlink() {
            let mut names: Vec<String> = xattr::list(&p)
                .map(|l| l.map(|n| n.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            names.sort();
            for n in names {
                let v = xattr::get(&p, &n).unwrap().unwrap_or_default();
                let key: &'static str = Box::leak(format!("xattr {n}").into_boxed_str());
                m.insert(key, ptar::format::hex(&v));
            }
        }
        out.insert(rel.clone(), m);
    }
    out
}
