//! A damaged newest footer is not an interrupted append (spec §10.3): every
//! reading command refuses the archive (exit 2, naming the damaged bytes and
//! the option that reads past them) unless `--ignore-damaged-tail` is given,
//! `--verify` reports what is lost and exits 2 either way, and writers
//! refuse. An append cut short stays readable with exit 0.

use std::path::{Path, PathBuf};
use std::process::Output;

use ptar::format::manifest::TRAILER_LEN as FOOTER_LEN;
use ptar::store::{OpenOptions, TailKind};
use ptar::{Archive, CreateOptions, Error};
use ptar_tests::{append_snapshot, create_snapshot, ptar_s};

struct Built {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// Two generations: `one/a.txt`, then `two/b.txt`.
    full: Vec<u8>,
    /// Where generation 1 ends.
    gen1_end: u64,
    first_id: ptar::Id,
}

fn build() -> Built {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let one = dir.join("one");
    let two = dir.join("two");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(&two).unwrap();
    std::fs::write(one.join("a.txt"), "first generation\n").unwrap();
    std::fs::write(two.join("b.txt"), "second generation\n").unwrap();
    let archive = dir.join("a.ptar");
    let first_id = create_snapshot(&archive, &one, CreateOptions::default());
    let gen1_end = std::fs::metadata(&archive).unwrap().len();
    append_snapshot(&archive, &two, None);
    let full = std::fs::read(&archive).unwrap();
    Built {
        _tmp: tmp,
        dir,
        full,
        gen1_end,
        first_id,
    }
}

/// The archive with one bit of its newest footer's magic flipped.
fn damaged(b: &Built) -> (PathBuf, Vec<u8>) {
    let mut bytes = b.full.clone();
    bytes[b.full.len() - FOOTER_LEN] ^= 0x01;
    let path = b.dir.join("damaged.ptar");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let o = ptar_s(args, &[]);
    let (out, err) = text(&o);
    (o.status.code(), out, err)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_reading_command_refuses_a_damaged_newest_footer_naming_the_region() {
    let b = build();
    let (path, bytes) = damaged(&b);
    let a = s(&path);
    let region = format!("bytes {}..{}", b.gen1_end, bytes.len());
    let dest = b.dir.join("out");
    let dest_s = s(&dest).to_string();
    let one = b.dir.join("one");
    let one_s = s(&one).to_string();
    let member = b.dir.join("one/a.txt");
    let member = s(member.strip_prefix("/").unwrap()).to_string();
    let copy = b.dir.join("copy.ptar");
    let copy_s = s(&copy).to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["-t", "-f", a],
        vec!["snapshots", "-f", a],
        vec!["-x", "-f", a, "-C", &dest_s],
        vec!["-x", "-O", "-f", a],
        vec!["--to-tar", "-f", a],
        vec!["-d", "-f", a, "-C", &one_s],
        vec!["cat", "-f", a, &member],
        vec!["diff", "-f", a, "1", "latest"],
        vec!["find", "-f", a, "*.txt"],
        vec!["sync", "-f", a, &copy_s],
    ];
    for args in &commands {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&region),
            "{args:?} does not name {region}: {err}"
        );
        assert!(err.contains("--ignore-damaged-tail"), "{args:?}: {err}");
        assert!(err.contains("generation 1"), "{args:?}: {err}");
        assert!(!out.contains("a.txt"), "{args:?} read the archive: {out}");
    }
    assert!(!dest.exists(), "-x wrote something");
    assert!(!copy.exists(), "sync wrote a copy");
    // Nothing was changed by reading.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn the_option_reads_the_last_good_generation_with_a_warning() {
    let b = build();
    let (path, bytes) = damaged(&b);
    let a = s(&path);
    let region = format!("bytes {}..{}", b.gen1_end, bytes.len());
    let (code, out, err) = run(&["snapshots", "--ignore-damaged-tail", "-f", a]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&b.first_id.short()), "{out}");
    assert_eq!(out.lines().count(), 2, "header and one snapshot: {out}");
    assert!(err.contains("warning") && err.contains(&region), "{err}");
    let (code, out, err) = run(&["-t", "--ignore-damaged-tail", "-f", a]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("one/a.txt"), "{out}");
    assert!(!out.contains("b.txt"), "{out}");
    assert!(err.contains("warning") && err.contains(&region), "{err}");
    let dest = b.dir.join("out");
    let (code, _, err) = run(&["-x", "--ignore-damaged-tail", "-f", a, "-C", s(&dest)]);
    assert_eq!(code, Some(0), "{err}");
    let member = b.dir.join("one/a.txt");
    let member = member.strip_prefix("/").unwrap();
    assert_eq!(
        std::fs::read(dest.join(member)).unwrap(),
        b"first generation\n"
    );
}

#[test]
fn verify_reports_what_is_lost_and_fails_with_or_without_the_option() {
    let b = build();
    let (path, bytes) = damaged(&b);
    let a = s(&path);
    let region = format!("bytes {}..{}", b.gen1_end, bytes.len());
    for extra in [&[][..], &["--ignore-damaged-tail"][..]] {
        let mut args = vec!["--verify", "-f", a];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(out.contains("generations: 1"), "{out}");
        for want in [
            region.as_str(),
            "after generation 1",
            "generation 2",
            "every snapshot committed after generation 1",
            "the 1 snapshot(s) generation 1 lists are kept",
            "--ignore-damaged-tail",
            &format!("truncate it to {} bytes", b.gen1_end),
        ] {
            assert!(err.contains(want), "{args:?}: {want:?} not in: {err}");
        }
    }
    let (code, out, _) = run(&["--verify", "--json", "-f", a]);
    assert_eq!(code, Some(2));
    assert!(out.contains("\"tail_damaged\":true"), "{out}");
}

#[test]
fn an_append_is_refused_and_leaves_the_archive_alone() {
    let b = build();
    let (path, bytes) = damaged(&b);
    let (code, _, err) = run(&["-r", "-f", s(&path), "-C", s(&b.dir), "one"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("damaged footer") && err.contains("refusing to append"),
        "{err}"
    );
    assert!(
        err.contains(&format!("bytes {}..{}", b.gen1_end, bytes.len())),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn an_interrupted_append_stays_readable_without_the_option() {
    let b = build();
    let len = b.full.len() as u64;
    for cut in [b.gen1_end + (len - b.gen1_end) / 2, len - 1, len - 8] {
        let path = b.dir.join(format!("cut{cut}.ptar"));
        std::fs::write(&path, &b.full[..cut as usize]).unwrap();
        let (code, out, err) = run(&["snapshots", "-f", s(&path)]);
        assert_eq!(code, Some(0), "cut at {cut}: {err}");
        assert!(out.contains(&b.first_id.short()), "{out}");
        assert!(!err.contains("damaged"), "cut at {cut}: {err}");
        let (code, out, err) = run(&["-t", "-f", s(&path)]);
        assert_eq!(code, Some(0), "cut at {cut}: {err}");
        assert!(out.contains("one/a.txt"), "{out}");
        let (code, out, err) = run(&["--verify", "-f", s(&path)]);
        assert_eq!(code, Some(0), "cut at {cut}: {out}{err}");
        assert!(out.contains("interrupted append"), "{out}");
    }
}

#[test]
fn the_library_refuses_a_damaged_tail_unless_allowed_and_classifies_tails() {
    let b = build();
    let (path, bytes) = damaged(&b);
    let end = bytes.len() as u64;
    // Every way of opening refuses by default, before any key is needed.
    let refusals = [
        Archive::open(&path, None).err(),
        Archive::from_vec(bytes.clone(), None).err(),
        Archive::from_reader(bytes.clone(), None).err(),
        Archive::from_file(std::fs::File::open(&path).unwrap(), &path, None).err(),
    ];
    for e in refusals {
        match e {
            Some(Error::DamagedTail {
                offset,
                end: e_end,
                last_good_generation,
                ..
            }) => {
                assert_eq!((offset, e_end, last_good_generation), (b.gen1_end, end, 1));
            }
            other => panic!("expected a damaged-tail refusal, got {other:?}"),
        }
    }
    let allow = OpenOptions::new().allow_damaged_tail(true);
    for a in [
        Archive::open_with(&path, None, &allow).unwrap(),
        Archive::from_vec_with(bytes.clone(), None, &allow).unwrap(),
        Archive::from_reader_with(bytes.clone(), None, &allow).unwrap(),
    ] {
        let t = a.store().tail().expect("a tail").clone();
        assert_eq!(t.kind(), TailKind::Damaged);
        assert_eq!((t.offset, t.end()), (b.gen1_end, end));
        assert_eq!(a.store().generation_count(), 1);
        let snaps = a.snapshots().unwrap();
        assert_eq!(snaps.len(), 1);
        assert_eq!(snaps[0].id, b.first_id);
    }
    // An interrupted append opens by default, classified as such.
    let cut = b.full[..b.full.len() - 1].to_vec();
    let a = Archive::from_vec(cut, None).unwrap();
    assert_eq!(
        a.store().tail().map(|t| t.kind()),
        Some(TailKind::InterruptedAppend)
    );
}
