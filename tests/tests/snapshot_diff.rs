//! `ptar diff` and `ptar find`: comparing two snapshots and finding entries
//! across snapshots, through the CLI and the library.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ptar::diff::{diff, ChangeKind, DiffOptions};
use ptar::find::{find, FindPattern};
use ptar::format::tree::{Content, EntryType, Payload, TreePage};
use ptar::format::Kind;
use ptar::progress::NoProgress;
use ptar::{Archive, Error, SnapshotMeta, Writer};
use ptar_tests::forge::{entry, forge_with, header};
use ptar_tests::ptar_in;

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn lines(out: &[u8]) -> Vec<Vec<u8>> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn show(v: &[Vec<u8>]) -> String {
    v.iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn write(p: &Path, content: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(p, content).unwrap();
}

/// Snapshot ids (full hex), oldest first.
fn snapshot_ids(dir: &Path, archive: &str) -> Vec<String> {
    let out = ptar_in(dir, &["snapshots", "--json", "-f", archive]);
    assert!(out.status.success());
    json_lines(&out.stdout)
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// The first snapshot's tree, then every kind of change the second makes.
/// Returns whether user xattrs work here.
fn build_and_mutate(tmp: &Path) -> bool {
    let t = tmp.join("tree");
    let f = |p: &str| t.join(p);
    write(&f("keep/one.txt"), "one");
    write(&f("keep/deep/two.txt"), "two");
    write(&f("edit.txt"), "abcd");
    write(&f("mode.txt"), "m");
    write(&f("touch.txt"), "t");
    write(&f("xattr.txt"), "x");
    let xattrs = xattr::set(f("xattr.txt"), "user.ptar.diff", b"v1").is_ok();
    std::os::unix::fs::symlink("edit.txt", f("link")).unwrap();
    write(&f("becomes-dir"), "file for now");
    write(&f("old-name.txt"), "renamed");
    write(&f("gone.txt"), "gone");
    write(&f("gone-dir/x"), "x");
    write(&f("gone-dir/sub/y"), "y");
    let out = ptar_in(tmp, &["-c", "-f", "a.ptar", "-C", "tree", "."]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Same size, same mtime, other bytes.
    let md = std::fs::metadata(f("edit.txt")).unwrap();
    std::fs::write(f("edit.txt"), "abcX").unwrap();
    filetime::set_file_mtime(
        f("edit.txt"),
        filetime::FileTime::from_last_modification_time(&md),
    )
    .unwrap();
    std::fs::set_permissions(
        f("mode.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    filetime::set_file_mtime(
        f("touch.txt"),
        filetime::FileTime::from_unix_time(1e9 as i64, 0),
    )
    .unwrap();
    if xattrs {
        xattr::set(f("xattr.txt"), "user.ptar.diff", b"v2").unwrap();
    }
    std::fs::remove_file(f("link")).unwrap();
    std::os::unix::fs::symlink("mode.txt", f("link")).unwrap();
    std::fs::remove_file(f("becomes-dir")).unwrap();
    write(&f("becomes-dir/inner.txt"), "inner");
    std::fs::rename(f("old-name.txt"), f("new-name.txt")).unwrap();
    std::fs::remove_file(f("gone.txt")).unwrap();
    std::fs::remove_dir_all(f("gone-dir")).unwrap();
    write(&f("new.txt"), "new");
    write(&f("new-dir/a"), "a");
    write(&f("new-dir/b"), "b");
    std::fs::write(t.join(OsStr::from_bytes(b"new-\xff")), "odd name").unwrap();
    let out = ptar_in(tmp, &["-r", "-f", "a.ptar", "-C", "tree", "."]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    xattrs
}

#[test]
fn diff_lists_every_change_in_name_order() {
    let tmp = tempfile::tempdir().unwrap();
    let xattrs = build_and_mutate(tmp.path());
    let out = ptar_in(tmp.path(), &["diff", "-f", "a.ptar", "2", "1"]);
    let mut want: Vec<&[u8]> = vec![
        b"-    becomes-dir",
        b"+    becomes-dir/",
        b"+    becomes-dir/inner.txt",
        b"M    edit.txt",
        b"-    gone-dir/",
        b"-    gone-dir/sub/",
        b"-    gone-dir/sub/y",
        b"-    gone-dir/x",
        b"-    gone.txt",
        b"M    link",
        b"U    mode.txt (mode)",
        b"+    new-dir/",
        b"+    new-dir/a",
        b"+    new-dir/b",
        b"+    new-name.txt",
        b"+    new-\xff",
        b"+    new.txt",
        b"-    old-name.txt",
        b"U    touch.txt (mtime)",
    ];
    if xattrs {
        want.push(b"U    xattr.txt (xattrs)");
    }
    let want: Vec<Vec<u8>> = want.into_iter().map(<[u8]>::to_vec).collect();
    let got = lines(&out.stdout);
    assert_eq!(
        got,
        want,
        "got:\n{}\nstderr: {}",
        show(&got),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "differences: exit 1 like diff(1)"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let metadata = if xattrs { 3 } else { 2 };
    assert!(
        err.contains(&format!(
            "8 added, 7 removed, 2 modified, {metadata} metadata only"
        )),
        "{err}"
    );

    // The same through JSON, with the fields and the counts.
    let out = ptar_in(tmp.path(), &["diff", "--json", "-f", "a.ptar", "2", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let j = json_lines(&out.stdout);
    let (summary, changes) = j.split_last().unwrap();
    assert_eq!(changes.len(), want.len());
    assert!(changes
        .iter()
        .all(|c| c["ptar_json"] == 1 && c["message_type"] == "change"));
    let find = |path: &str, change: &str| {
        changes
            .iter()
            .find(|c| c["path"] == path && c["change"] == change)
            .unwrap_or_else(|| panic!("no {change} {path} in {changes:?}"))
    };
    // The change time moved, the mtime did not: only the content is named.
    assert_eq!(
        find("edit.txt", "modified")["fields"],
        serde_json::json!(["content"])
    );
    assert_eq!(find("edit.txt", "modified")["type"], "file");
    assert!(find("link", "modified")["fields"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("target")));
    assert_eq!(
        find("mode.txt", "metadata")["fields"],
        serde_json::json!(["mode"])
    );
    assert_eq!(find("becomes-dir", "removed")["type"], "file");
    assert_eq!(find("becomes-dir", "added")["type"], "dir");
    assert_eq!(find("gone-dir/sub", "removed")["type"], "dir");
    assert_eq!(find("new-\u{fffd}", "added")["type"], "file");
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["added"], 8);
    assert_eq!(summary["removed"], 7);
    assert_eq!(summary["modified"], 2);
    assert_eq!(summary["metadata"], metadata);
    // keep/ was not touched: its tree id is the same and it is not read.
    assert_eq!(summary["dirs_skipped"], 1);
    assert_eq!(summary["dirs_compared"], 1);
    let ids = snapshot_ids(tmp.path(), "a.ptar");
    assert_eq!(summary["old_snapshot"], ids[0].as_str());
    assert_eq!(summary["new_snapshot"], ids[1].as_str());

    // Backwards, additions and removals swap.
    let out = ptar_in(tmp.path(), &["diff", "-f", "a.ptar", "1", "2"]);
    let back = lines(&out.stdout);
    assert!(
        back.contains(&b"+    old-name.txt".to_vec()),
        "{}",
        show(&back)
    );
    assert!(
        back.contains(&b"-    new-dir/a".to_vec()),
        "{}",
        show(&back)
    );
    assert_eq!(back.len(), want.len());
}

#[test]
fn diff_of_a_snapshot_with_itself_is_empty_and_unknown_snapshots_fail() {
    let tmp = tempfile::tempdir().unwrap();
    build_and_mutate(tmp.path());
    let ids = snapshot_ids(tmp.path(), "a.ptar");
    for (a, b) in [("1", "latest"), ("2", &ids[0][..8])] {
        let out = ptar_in(tmp.path(), &["diff", "-f", "a.ptar", a, b]);
        assert_eq!(out.status.code(), Some(0), "{a} {b}");
        assert!(out.stdout.is_empty());
        let out = ptar_in(tmp.path(), &["diff", "--json", "-f", "a.ptar", a, b]);
        assert_eq!(out.status.code(), Some(0));
        let j = json_lines(&out.stdout);
        assert_eq!(j.len(), 1, "only the summary");
        assert_eq!(j[0]["dirs_skipped"], 1, "the root is skipped");
        assert_eq!(j[0]["dirs_compared"], 0, "nothing is read");
        assert_eq!(j[0]["added"], 0);
    }
    let out = ptar_in(tmp.path(), &["diff", "-f", "a.ptar", "deadbeef", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ptar: ") && err.contains("snapshot 'deadbeef'"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let out = ptar_in(tmp.path(), &["diff", "-f", "a.ptar", "1", "3"]);
    assert_eq!(out.status.code(), Some(2), "there are two snapshots");
    // tar's -d (compare with the file system) is still there.
    let out = ptar_in(tmp.path(), &["-d", "-f", "a.ptar", "-C", "tree"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn find_reports_snapshot_and_path_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    build_and_mutate(tmp.path());
    let ids = snapshot_ids(tmp.path(), "a.ptar");
    let (s1, s2) = (&ids[0][..8], &ids[1][..8]);
    let out = ptar_in(
        tmp.path(),
        &["find", "-f", "a.ptar", "*name.txt", "two.txt"],
    );
    assert_eq!(out.status.code(), Some(0));
    let got = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        got,
        format!(
            "{s1}  keep/deep/two.txt\n{s1}  old-name.txt\n{s2}  keep/deep/two.txt\n{s2}  new-name.txt\n"
        )
    );
    // A path pattern is anchored at the root; a directory ends in '/'.
    let out = ptar_in(
        tmp.path(),
        &[
            "find",
            "-f",
            "a.ptar",
            "--snapshot",
            "1",
            "/becomes-dir*",
            "gone-dir",
        ],
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{s2}  becomes-dir/\n{s2}  becomes-dir/inner.txt\n"),
        "the second pattern is not in the latest snapshot"
    );
    let out = ptar_in(tmp.path(), &["find", "-f", "a.ptar", "gone-dir", "--json"]);
    let j = json_lines(&out.stdout);
    let (summary, matches) = j.split_last().unwrap();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0]["message_type"], "match");
    assert_eq!(matches[0]["snapshot"], ids[0].as_str());
    assert_eq!(matches[0]["path"], "gone-dir");
    assert_eq!(matches[0]["type"], "dir");
    assert_eq!(summary["matches"], 1);
    assert_eq!(summary["snapshots"], 2);
    assert!(
        summary["dirs_reused"].as_u64().unwrap() >= 1,
        "keep/ is searched once: {summary}"
    );

    let out = ptar_in(tmp.path(), &["find", "-f", "a.ptar", "*.nothing"]);
    assert_eq!(out.status.code(), Some(1), "no match: exit 1");
    assert!(out.stdout.is_empty());
    let out = ptar_in(
        tmp.path(),
        &["find", "-f", "a.ptar", "--snapshot", "ffff0000", "x"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("snapshot 'ffff0000'"));
}

#[test]
fn diff_and_find_are_in_the_manual() {
    let tmp = tempfile::tempdir().unwrap();
    let man = ptar_in(tmp.path(), &["man"]);
    assert!(man.status.success());
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(text.contains("ptar\\-diff(1)"), "{text}");
    assert!(text.contains("ptar\\-find(1)"), "{text}");
    assert!(text.contains("Compare two snapshots"), "{text}");
    assert!(text.contains("Find entries by name"), "{text}");
    let bash = ptar_in(tmp.path(), &["completions", "bash"]);
    let text = String::from_utf8_lossy(&bash.stdout);
    assert!(text.contains("ptar__subcmd__diff") && text.contains("ptar__subcmd__find"));
}

/// Snapshots `dir` (its contents at the root) into `archive`, appending
/// when it exists.
fn snapshot(archive: &Path, dir: &Path) {
    let src = ptar::fs::Source {
        dir: dir.to_path_buf(),
        path: PathBuf::from("."),
    };
    let meta = SnapshotMeta::default();
    if archive.exists() {
        let mut w = Writer::append(archive, None).unwrap();
        w.add_snapshot(&[src], &meta, &NoProgress).unwrap();
        w.commit().unwrap();
    } else {
        let mut w = Writer::create(archive, Default::default()).unwrap();
        w.add_snapshot(&[src], &meta, &NoProgress).unwrap();
        w.commit().unwrap();
    }
}

#[test]
fn library_skips_subtrees_with_the_same_tree_id() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    for i in 0..20 {
        write(&t.join(format!("big/d{i}/f.txt")), &format!("{i}"));
    }
    write(&t.join("small/s.txt"), "before");
    let archive = tmp.path().join("a.ptar");
    snapshot(&archive, &t);
    write(&t.join("small/s.txt"), "after!");
    snapshot(&archive, &t);
    snapshot(&archive, &t);
    let a = Archive::open(&archive, None).unwrap();
    let snaps = a.snapshots().unwrap();
    assert_eq!(snaps.len(), 3);

    let mut changes = Vec::new();
    let stats = diff(&a, &snaps[0], &snaps[1], &DiffOptions::default(), |c| {
        changes.push((c.kind, c.path.clone(), c.fields.names().collect::<Vec<_>>()));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        changes,
        [(
            ChangeKind::Modified,
            b"small/s.txt".to_vec(),
            vec!["content", "mtime"]
        )]
    );
    assert_eq!(stats.modified, 1);
    assert_eq!(stats.changes(), 1);
    // The root and small/ are read; big/ has the same tree id and is not,
    // nor are its twenty directories.
    assert_eq!(stats.dirs_compared, 2);
    assert_eq!(stats.dirs_skipped, 1);
    assert!(stats.failures.is_empty());

    // An unchanged tree: the root alone is skipped.
    let stats = diff(&a, &snaps[1], &snaps[2], &DiffOptions::default(), |_| {
        panic!("no change expected")
    })
    .unwrap();
    assert_eq!((stats.dirs_compared, stats.dirs_skipped), (0, 1));

    // Finding across the three snapshots reads each distinct directory once.
    let pats = [FindPattern::new(b"*.txt").unwrap()];
    let mut hits: Vec<(usize, Vec<u8>)> = Vec::new();
    let stats = find(&a, &snaps, &pats, |s, path, _| {
        let i = snaps.iter().position(|x| x.id == s.id).unwrap();
        hits.push((i, path.to_vec()));
        Ok(())
    })
    .unwrap();
    assert_eq!(stats.matches, 63);
    for i in 0..3 {
        let mine: Vec<&[u8]> = hits
            .iter()
            .filter(|(s, _)| *s == i)
            .map(|(_, p)| p.as_slice())
            .collect();
        assert_eq!(mine.len(), 21);
        assert_eq!(mine[0], b"big/d0/f.txt");
        assert_eq!(mine[20], b"small/s.txt");
    }
    // First snapshot: root, big, 20 under big, small = 23 listings. Second:
    // root and small (big reused). Third: nothing (its root is the second's).
    assert_eq!(stats.dirs_read, 25);
    assert_eq!(stats.dirs_reused, 2);
}

#[test]
fn find_memo_keys_whole_path_patterns_by_path() {
    // Two directories with the same tree id at different paths.
    let bytes = forge_with(&header(None), None, |w| {
        let leaf = TreePage::Leaf(vec![entry(
            b"f.txt",
            EntryType::File,
            Payload::File(Content::Inline(vec![])),
            0,
        )]);
        let id = w.put_blob(Kind::Tree, &leaf.to_bytes()).unwrap();
        vec![
            entry(b"x", EntryType::Dir, Payload::Dir(id), 0),
            entry(b"y", EntryType::Dir, Payload::Dir(id), 0),
        ]
    });
    let a = Archive::from_vec(bytes, None).unwrap();
    let snaps = a.snapshots().unwrap();
    let run = |pat: &[u8]| {
        let mut got = Vec::new();
        let stats = find(&a, &snaps, &[FindPattern::new(pat).unwrap()], |_, p, _| {
            got.push(String::from_utf8_lossy(p).into_owned());
            Ok(())
        })
        .unwrap();
        (got, stats)
    };
    let (got, stats) = run(b"f.txt");
    assert_eq!(got, ["x/f.txt", "y/f.txt"]);
    assert_eq!((stats.dirs_read, stats.dirs_reused), (2, 1));
    let (got, _) = run(b"x/*");
    assert_eq!(got, ["x/f.txt"], "y/ holds the same tree but not the path");
}

#[test]
fn a_tree_naming_one_directory_many_times_is_bounded() {
    // Forty levels, each holding the level below twice: 2^40 entries.
    let bytes = forge_with(&header(None), None, |w| {
        let mut id = w
            .put_blob(Kind::Tree, &TreePage::Leaf(vec![]).to_bytes())
            .unwrap();
        for _ in 0..40 {
            let page = TreePage::Leaf(vec![
                entry(b"a", EntryType::Dir, Payload::Dir(id), 0),
                entry(b"b", EntryType::Dir, Payload::Dir(id), 0),
            ]);
            id = w.put_blob(Kind::Tree, &page.to_bytes()).unwrap();
        }
        vec![entry(b"bomb", EntryType::Dir, Payload::Dir(id), 0)]
    });
    let a = Archive::from_vec(bytes, None).unwrap();
    let mut new = a.find_snapshot("latest").unwrap();
    new.record.summary.files = 1000;
    // An old snapshot whose root is an empty directory.
    let mut old = new.clone();
    let Payload::Dir(top) = a.read_dir(&new.record.root).unwrap()[0].payload else {
        panic!("bomb is a directory")
    };
    old.record.root = top;
    let started = std::time::Instant::now();
    let err = diff(&a, &old, &new, &DiffOptions::default(), |_| Ok(())).unwrap_err();
    assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
    assert!(err.to_string().contains("declares"), "{err}");
    let err = find(&a, &[new], &[FindPattern::new(b"*").unwrap()], |_, _, _| {
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
    assert!(started.elapsed().as_secs() < 20);
}

#[test]
fn an_unreadable_directory_is_reported_and_the_rest_compared() {
    let empty = std::cell::Cell::new(ptar::Id::ZERO);
    let bytes = forge_with(&header(None), None, |w| {
        empty.set(
            w.put_blob(Kind::Tree, &TreePage::Leaf(vec![]).to_bytes())
                .unwrap(),
        );
        vec![
            entry(b"lost", EntryType::Dir, Payload::Dir(ptar::Id([7; 32])), 0),
            entry(
                b"ok.txt",
                EntryType::File,
                Payload::File(Content::Inline(vec![])),
                0,
            ),
        ]
    });
    let a = Archive::from_vec(bytes.clone(), None).unwrap();
    let new = a.find_snapshot("latest").unwrap();
    let mut old = new.clone();
    old.record.root = empty.get();
    let mut added = Vec::new();
    let stats = diff(&a, &old, &new, &DiffOptions::default(), |c| {
        added.push(String::from_utf8_lossy(&c.path).into_owned());
        Ok(())
    })
    .unwrap();
    assert_eq!(added, ["lost", "ok.txt"], "the walk goes on after lost/");
    assert_eq!(stats.failures.len(), 1);
    assert_eq!(stats.failures[0].0, b"lost");
    assert!(
        stats.failures[0].1.contains("missing"),
        "{:?}",
        stats.failures
    );

    // The CLI names it and exits 2, after printing what it found.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("x.ptar"), &bytes).unwrap();
    let out = ptar_in(tmp.path(), &["find", "-f", "x.ptar", "*"]);
    assert_eq!(out.status.code(), Some(2));
    let s = &new.id.short();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{s}  lost/\n{s}  ok.txt\n")
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("ptar: {s} lost: ")), "{err}");
}
