//! Points of the spec a clean-room reader had to guess at (issue 13), each
//! answered in `spec/ptar-format.md` and checked here where it is
//! observable: the order in which extraction applies metadata (§17 rules
//! 8–9), what a hard-link entry's own metadata does (§17 rule 9), times
//! before 1970 (§13.2), and what the snapshot summary counts (§11.1).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use ptar::format::tree::{Content, Entry, EntryType, Extent, Payload, Timestamp};
use ptar::format::Kind;
use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::store::GenerationWriter;
use ptar::Archive;
use ptar_tests::fidelity::{acl, UNDEFINED_ID};
use ptar_tests::forge::{entry, forge_with, header};

fn data_file(w: &mut GenerationWriter<Vec<u8>>, name: &[u8], body: &[u8]) -> Entry {
    let id = w.put_blob(Kind::Chunk, body).unwrap();
    let extents = vec![Extent::Data {
        len: body.len() as u32,
        id,
    }];
    entry(
        name,
        EntryType::File,
        Payload::File(Content::Inline(extents)),
        body.len() as u64,
    )
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn extract_with(
    bytes: Vec<u8>,
    dest: &Path,
    opts: &ExtractOptions,
) -> ptar::Result<ptar::fs::ExtractOutcome> {
    let a = Archive::from_vec(bytes, None)?;
    let s = a.find_snapshot("latest")?;
    a.extract(&s, dest, opts, &NoProgress)
}

/// Whether `dir`'s file system takes `name` as an extended attribute.
fn supports_xattr(dir: &Path, name: &str, value: &[u8]) -> bool {
    let probe = dir.join(".xattr-probe");
    std::fs::write(&probe, b"").unwrap();
    let ok = xattr::set(&probe, name, value).is_ok();
    std::fs::remove_file(&probe).unwrap();
    ok
}

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
        .expect("Umask in /proc/self/status")
}

// ACL tags and permissions (the kernel's binary form, see fidelity.rs).
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// §17 rules 8–9: an access ACL rewrites the group permission bits, so it is
/// set before the mode: without `-p` the group write bit stays dropped even
/// when the stored ACL grants it.
#[test]
fn an_access_acl_does_not_undo_the_permission_policy() {
    let tmp = tempfile::tempdir().unwrap();
    // user::rw- user:1234:rw- group::rw- mask::rw- other::r--
    let access = acl(&[
        (ACL_USER_OBJ, 6, UNDEFINED_ID),
        (ACL_USER, 6, 1234),
        (ACL_GROUP_OBJ, 6, UNDEFINED_ID),
        (ACL_MASK, 6, UNDEFINED_ID),
        (ACL_OTHER, 4, UNDEFINED_ID),
    ]);
    if !supports_xattr(tmp.path(), "system.posix_acl_access", &access) {
        eprintln!("this file system takes no POSIX ACLs; nothing to check");
        return;
    }
    let bytes = forge_with(&header(None), None, |w| {
        let mut f = data_file(w, b"shared", b"content\n");
        f.mode = 0o664;
        f.xattrs = vec![(b"system.posix_acl_access".to_vec(), access.clone())];
        vec![f]
    });
    let dest = tmp.path().join("out");
    let opts = ExtractOptions {
        preserve_permissions: false,
        same_owner: false,
        ..ExtractOptions::default()
    };
    let out = extract_with(bytes, &dest, &opts).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let md = std::fs::symlink_metadata(dest.join("shared")).unwrap();
    assert_eq!(
        md.mode() & 0o7777,
        0o664 & 0o1755 & !umask(),
        "mode & 0o1755 & ~umask, whatever the ACL said"
    );
    // The ACL is there, its mask narrowed to the group bits just set.
    let got = xattr::get(dest.join("shared"), "system.posix_acl_access")
        .unwrap()
        .expect("the access ACL is restored");
    assert!(got.len() == access.len(), "{got:?}");
}

/// Runs the ptar binary in `dir` as a user other than root: as `nobody`
/// (65534) when the tests run as root, as the tests' own user otherwise.
fn ptar_unprivileged(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(ptar_tests::ptar_bin());
    cmd.args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    if rustix::process::geteuid().is_root() {
        rustix::fs::chown(
            dir,
            Some(rustix::fs::Uid::from_raw(65534)),
            Some(rustix::fs::Gid::from_raw(65534)),
        )
        .unwrap();
        cmd.uid(65534).gid(65534);
    }
    cmd.output().unwrap()
}

/// §17 rule 9: attributes are set before the permission bits, so a
/// read-only file or directory still gets its `user.*` attributes when the
/// extracting user is not root (the kernel wants write permission for them).
#[test]
fn read_only_members_get_their_user_attributes_without_root() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if !supports_xattr(&work, "user.probe", b"1") {
        eprintln!("this file system takes no user attributes; nothing to check");
        return;
    }
    let note = (b"user.note".to_vec(), b"kept".to_vec());
    let bytes = forge_with(&header(None), None, |w| {
        let mut f = data_file(w, b"ro.txt", b"read only\n");
        f.mode = 0o444;
        f.xattrs = vec![note.clone()];
        let mut inner = data_file(w, b"inner.txt", b"inside\n");
        inner.mode = 0o644;
        let id = w
            .put_blob(
                Kind::Tree,
                &ptar::format::tree::TreePage::Leaf(vec![inner]).to_bytes(),
            )
            .unwrap();
        let mut d = entry(b"ro-dir", EntryType::Dir, Payload::Dir(id), 0);
        d.mode = 0o555;
        d.xattrs = vec![note.clone()];
        vec![d, f]
    });
    std::fs::write(work.join("a.ptar"), bytes).unwrap();
    let out = ptar_unprivileged(&work, &["-x", "-f", "a.ptar", "-C", "out"]);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    for (path, mode) in [("out/ro.txt", 0o444), ("out/ro-dir", 0o555)] {
        let p = work.join(path);
        assert_eq!(
            xattr::get(&p, "user.note").unwrap().as_deref(),
            Some(&b"kept"[..]),
            "{path}"
        );
        assert_eq!(
            std::fs::symlink_metadata(&p).unwrap().mode() & 0o7777,
            mode & !umask(),
            "{path}"
        );
    }
    // Let the temporary directory be removed.
    std::fs::set_permissions(
        work.join("out/ro-dir"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

/// §17 rule 9: a hard-link entry's own permission bits, owner, times and
/// attributes are not applied: the inode keeps those of the regular-file
/// entry it links to.
#[test]
fn a_hard_link_entry_own_metadata_is_not_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let attrs = supports_xattr(tmp.path(), "user.probe", b"1");
    let bytes = forge_with(&header(None), None, |w| {
        let mut a = data_file(w, b"a", b"shared inode\n");
        a.mode = 0o640;
        // Two names (§13.2: only files whose entry says so are link targets).
        a.nlink = 2;
        a.mtime = Timestamp {
            sec: 1_000_000,
            nsec: 5,
        };
        a.xattrs = vec![(b"user.first".to_vec(), b"1".to_vec())];
        let mut b = entry(
            b"b",
            EntryType::Hardlink,
            Payload::Hardlink(b"a".to_vec()),
            13,
        );
        b.mode = 0o777;
        b.mtime = Timestamp {
            sec: 2_000_000,
            nsec: 7,
        };
        b.xattrs = vec![(b"user.second".to_vec(), b"2".to_vec())];
        vec![a, b]
    });
    let dest = tmp.path().join("out");
    let opts = ExtractOptions {
        preserve_permissions: true,
        ..ExtractOptions::default()
    };
    let out = extract_with(bytes, &dest, &opts).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.hardlinks, 1);
    let (a, b) = (dest.join("a"), dest.join("b"));
    let (ma, mb) = (
        std::fs::symlink_metadata(&a).unwrap(),
        std::fs::symlink_metadata(&b).unwrap(),
    );
    assert_eq!((ma.dev(), ma.ino()), (mb.dev(), mb.ino()), "one inode");
    assert_eq!(mb.mode() & 0o7777, 0o640);
    assert_eq!((mb.mtime(), mb.mtime_nsec()), (1_000_000, 5));
    if attrs {
        assert_eq!(
            xattr::get(&b, "user.first").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(xattr::get(&b, "user.second").unwrap(), None);
    }
}

/// §13.2: a time before 1970 with a fraction is stored with its seconds
/// rounded down and non-negative nanoseconds (−1.25 s is −2 s + 0.75 s), and
/// comes back as it was.
#[test]
fn times_before_1970_keep_their_nanoseconds() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let f = src.join("old.txt");
    std::fs::write(&f, b"from the sixties\n").unwrap();
    let mtime = filetime::FileTime::from_unix_time(-2, 750_000_000);
    let atime = filetime::FileTime::from_unix_time(-86_400 * 365 * 10 - 1, 1);
    filetime::set_file_times(&f, atime, mtime).unwrap();
    let md = std::fs::metadata(&f).unwrap();
    if (md.mtime(), md.mtime_nsec()) != (-2, 750_000_000) {
        eprintln!("this file system does not keep times before 1970; nothing to check");
        return;
    }
    ok(&ptar_tests::ptar_in(
        tmp.path(),
        &["-c", "-f", "a.ptar", "src"],
    ));
    let a = Archive::open(&tmp.path().join("a.ptar"), None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let e = a.metadata(&s, b"src/old.txt").unwrap();
    assert_eq!(
        e.mtime,
        Timestamp {
            sec: -2,
            nsec: 750_000_000
        }
    );
    assert_eq!(
        e.atime,
        Timestamp {
            sec: -86_400 * 365 * 10 - 1,
            nsec: 1
        }
    );
    let dest = tmp.path().join("out");
    let out = a
        .extract(&s, &dest, &ExtractOptions::default(), &NoProgress)
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let back = std::fs::metadata(dest.join("src/old.txt")).unwrap();
    assert_eq!((back.mtime(), back.mtime_nsec()), (-2, 750_000_000));
    assert_eq!(
        (back.atime(), back.atime_nsec()),
        (-86_400 * 365 * 10 - 1, 1)
    );
}

/// §11.1: the summary counts the entries of each type in the snapshot's
/// tree (the root, which has no entry, is not counted; a file with several
/// names counts once as a file and once per further name as a hard link),
/// and the total size is that of the regular-file entries.
#[test]
fn the_summary_counts_entries_of_each_type() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("a"), b"12345").unwrap();
    std::fs::hard_link(src.join("a"), src.join("a2")).unwrap();
    std::fs::hard_link(src.join("a"), src.join("sub/a3")).unwrap();
    std::fs::write(src.join("sub/b"), b"xy").unwrap();
    std::fs::write(src.join("sub/deeper/empty"), b"").unwrap();
    std::os::unix::fs::symlink("a", src.join("link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    ok(&ptar_tests::ptar_in(
        tmp.path(),
        &["-c", "-f", "a.ptar", "src"],
    ));
    let a = Archive::open(&tmp.path().join("a.ptar"), None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let sum = s.record.summary;
    // Entries: src, src/sub, src/sub/deeper (directories); a, sub/b,
    // sub/deeper/empty (files); a2, sub/a3 (hard links); link; fifo.
    assert_eq!(
        (
            sum.files,
            sum.dirs,
            sum.symlinks,
            sum.hardlinks,
            sum.others,
            sum.total_size
        ),
        (3, 3, 1, 2, 1, 5 + 2)
    );
    // The same tree through a tar stream counts the same way.
    let o = ptar_tests::ptar_in(tmp.path(), &["--to-tar", "-f", "a.ptar"]);
    ok(&o);
    std::fs::write(tmp.path().join("a.tar"), &o.stdout).unwrap();
    ok(&ptar_tests::ptar_in(
        tmp.path(),
        &["--from-tar", "a.tar", "-f", "b.ptar"],
    ));
    let imported = tmp.path().join("b.ptar");
    let b = Archive::open(&imported, None).unwrap();
    let t = b.find_snapshot("latest").unwrap();
    let tsum = t.record.summary;
    assert_eq!(
        (
            tsum.files,
            tsum.dirs,
            tsum.symlinks,
            tsum.hardlinks,
            tsum.others,
            tsum.total_size
        ),
        (
            sum.files,
            sum.dirs,
            sum.symlinks,
            sum.hardlinks,
            sum.others,
            sum.total_size
        )
    );
}

/// §17 rule 5: with outside symlinks refused, a target is read from the
/// link's depth in the destination, counted after `--strip-components`.
#[test]
fn a_symlink_depth_is_counted_where_it_is_extracted() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = forge_with(&header(None), None, |w| {
        let link = |name: &[u8], target: &[u8]| {
            entry(
                name,
                EntryType::Symlink,
                Payload::Symlink(target.to_vec()),
                0,
            )
        };
        let mut kids = vec![link(b"up1", b"../x"), link(b"up2", b"../../x")];
        kids.sort_by(|a, b| a.name.cmp(&b.name));
        let sub = w
            .put_blob(
                Kind::Tree,
                &ptar::format::tree::TreePage::Leaf(kids).to_bytes(),
            )
            .unwrap();
        let mut s = entry(b"sub", EntryType::Dir, Payload::Dir(sub), 0);
        s.mode = 0o755;
        let top = w
            .put_blob(
                Kind::Tree,
                &ptar::format::tree::TreePage::Leaf(vec![s]).to_bytes(),
            )
            .unwrap();
        let mut t = entry(b"top", EntryType::Dir, Payload::Dir(top), 0);
        t.mode = 0o755;
        vec![t]
    });
    for (strip, kept) in [
        // top/sub/up2 has depth 2: ../../x stays at the destination.
        (0, vec!["top/sub/up1", "top/sub/up2"]),
        // sub/up2 has depth 1: ../../x climbs out.
        (1, vec!["sub/up1"]),
        // up1 and up2 at depth 0: both climb out.
        (2, vec![]),
    ] {
        let dest = tmp.path().join(format!("out{strip}"));
        let opts = ExtractOptions {
            outside_symlinks: false,
            strip_components: strip,
            ..ExtractOptions::default()
        };
        let out = extract_with(bytes.clone(), &dest, &opts).unwrap();
        assert_eq!(out.symlinks as usize, kept.len(), "strip {strip}");
        assert_eq!(out.errors.len(), 2 - kept.len(), "strip {strip}");
        for e in &out.errors {
            assert!(e.1.contains("points outside"), "{}", e.1);
        }
        for k in kept {
            assert!(
                std::fs::symlink_metadata(dest.join(k)).is_ok(),
                "strip {strip}: {k}"
            );
        }
    }
}

/// §13.2: whether a hard-link target resolves is not part of parsing the
/// entry: a listing shows a link that resolves nowhere, and extraction
/// reports it as an error for that link alone (§17 rule 6).
#[test]
fn a_hard_link_that_resolves_nowhere_lists_and_fails_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = forge_with(&header(None), None, |w| {
        let mut a = data_file(w, b"a", b"first name\n");
        a.nlink = 2;
        let link = |name: &[u8], target: &[u8]| {
            entry(
                name,
                EntryType::Hardlink,
                Payload::Hardlink(target.to_vec()),
                11,
            )
        };
        vec![
            a,
            link(b"b", b"a"),
            link(b"c", b"missing"),
            link(b"d", b"sub/deeper"),
        ]
    });
    let path = tmp.path().join("a.ptar");
    std::fs::write(&path, &bytes).unwrap();
    let listed = ptar_tests::ptar_in(tmp.path(), &["-t", "-f", "a.ptar"]);
    ok(&listed);
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "a\nb\nc\nd\n");
    let a = Archive::open(&path, None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let c = a.metadata(&s, b"c").unwrap();
    let Err(e) = a.file_reader(&s, &c) else {
        panic!("c resolves nowhere, yet it opened");
    };
    assert!(matches!(e, ptar::Error::NotFound(_)), "{e}");
    let dest = tmp.path().join("out");
    let out = a
        .extract(&s, &dest, &ExtractOptions::default(), &NoProgress)
        .unwrap();
    let failed: Vec<&[u8]> = out.errors.iter().map(|(p, _)| p.as_slice()).collect();
    assert_eq!(failed, [&b"c"[..], b"d"], "{:?}", out.errors);
    assert_eq!((out.files, out.hardlinks), (1, 1));
    assert_eq!(std::fs::read(dest.join("b")).unwrap(), b"first name\n");
}

/// §2, §10.5: a key file holding a small-order point is refused before
/// anything is verified with it.
#[test]
fn a_small_order_trusted_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    std::fs::write(tmp.path().join("src/f"), b"x").unwrap();
    ok(&ptar_tests::ptar_in(
        tmp.path(),
        &["-c", "-f", "a.ptar", "src"],
    ));
    // The identity point (y = 1): it decodes, canonically, but has order 1.
    let mut key = String::from("PTAR-PUBLIC-KEY-1 01");
    key.push_str(&"00".repeat(31));
    key.push('\n');
    std::fs::write(tmp.path().join("weak.pub"), key).unwrap();
    let o = ptar_tests::ptar_in(
        tmp.path(),
        &["--verify", "--trusted-key", "weak.pub", "-f", "a.ptar"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("small order"), "{err}");
}
