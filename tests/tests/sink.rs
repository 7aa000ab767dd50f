//! Another program's sink: the export side of the library hands over every
//! entry in order, with contents readable as a stream.

use std::io::Read;

use ptar::format::tree::Entry;
use ptar::sink::{EntrySink, FileContent, Flow};
use ptar::{Archive, CreateOptions};

#[derive(Default)]
struct Recorder {
    events: Vec<String>,
    skip: Option<Vec<u8>>,
}

impl EntrySink for Recorder {
    fn enter_dir(&mut self, path: &[u8], _: &Entry) -> ptar::Result<Flow> {
        if self.skip.as_deref() == Some(path) {
            return Ok(Flow::Skip);
        }
        self.events
            .push(format!("enter {}", String::from_utf8_lossy(path)));
        Ok(Flow::Take)
    }
    fn leave_dir(&mut self, path: &[u8], _: &Entry) -> ptar::Result<()> {
        self.events
            .push(format!("leave {}", String::from_utf8_lossy(path)));
        Ok(())
    }
    fn file(
        &mut self,
        path: &[u8],
        _: &Entry,
        content: &mut FileContent<'_>,
    ) -> ptar::Result<Flow> {
        let mut s = String::new();
        content.read_to_string(&mut s)?;
        self.events
            .push(format!("file {} {s}", String::from_utf8_lossy(path)));
        Ok(Flow::Take)
    }
    fn other(&mut self, path: &[u8], e: &Entry) -> ptar::Result<Flow> {
        self.events.push(format!(
            "other {} {:?}",
            String::from_utf8_lossy(path),
            e.kind
        ));
        Ok(Flow::Take)
    }
}

#[test]
fn a_custom_sink_sees_every_entry_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("t");
    std::fs::create_dir_all(src.join("b/c")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha").unwrap();
    std::fs::write(src.join("b/c/d.txt"), "delta").unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("z")).unwrap();
    let archive = tmp.path().join("x.ptar");
    std::env::set_current_dir(tmp.path()).unwrap();
    ptar_tests::create_snapshot(
        &archive,
        std::path::Path::new("t"),
        CreateOptions::default(),
    );
    let a = Archive::open(&archive, None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let mut r = Recorder::default();
    assert!(a
        .export(&s, &mut r, &ptar::progress::NoProgress)
        .unwrap()
        .is_empty());
    assert_eq!(
        r.events,
        vec![
            "enter t",
            "file t/a.txt alpha",
            "enter t/b",
            "enter t/b/c",
            "file t/b/c/d.txt delta",
            "leave t/b/c",
            "leave t/b",
            "other t/z Symlink",
            "leave t"
        ]
    );
    let mut r = Recorder {
        skip: Some(b"t/b".to_vec()),
        ..Recorder::default()
    };
    a.export(&s, &mut r, &ptar::progress::NoProgress).unwrap();
    assert!(
        !r.events.iter().any(|e| e.contains("t/b")),
        "a skipped directory is not walked: {:?}",
        r.events
    );
}

/// An importer's view: entries and contents from memory.
struct Memory {
    items: Vec<Item>,
    at: usize,
    data: Option<Bytes>,
}

enum Item {
    Enter(&'static str),
    Leave,
    File(&'static str, &'static [u8]),
    Link(&'static str, &'static str),
}

struct Bytes(std::io::Cursor<Vec<u8>>);

impl ptar::source::FileData for Bytes {
    fn reader_at(&mut self, start: u64) -> std::io::Result<&mut dyn std::io::Read> {
        self.0.set_position(start);
        Ok(&mut self.0)
    }
    fn len(&self) -> u64 {
        self.0.get_ref().len() as u64
    }
}

fn mem_entry(
    path: &str,
    kind: ptar::format::tree::EntryType,
    payload: ptar::format::tree::Payload,
) -> Entry {
    let name = path.rsplit('/').next().unwrap().as_bytes().to_vec();
    let mode = if kind == ptar::format::tree::EntryType::Dir {
        0o755
    } else {
        0o644
    };
    let t = ptar::format::tree::Timestamp {
        sec: 1_700_000_000,
        nsec: 5,
    };
    Entry::new(name, kind, payload)
        .with_mode(mode)
        .with_times(t, t, t)
        .with_source(0, 0, 1)
}

impl ptar::source::EntrySource for Memory {
    fn next(&mut self) -> ptar::Result<Option<ptar::source::SourceItem<'_>>> {
        use ptar::format::tree::{EntryType, Payload};
        use ptar::source::SourceItem;
        let Some(item) = self.items.get(self.at) else {
            return Ok(None);
        };
        self.at += 1;
        Ok(Some(match item {
            Item::Enter(p) => SourceItem::EnterDir {
                path: p.as_bytes().to_vec(),
                entry: mem_entry(p, EntryType::Dir, Payload::Dir(ptar::Id::ZERO)),
            },
            Item::Leave => SourceItem::LeaveDir,
            Item::File(p, body) => {
                let data = self.data.insert(Bytes(std::io::Cursor::new(body.to_vec())));
                SourceItem::File {
                    path: p.as_bytes().to_vec(),
                    entry: mem_entry(p, EntryType::File, Payload::None),
                    data,
                }
            }
            Item::Link(p, t) => SourceItem::Other {
                path: p.as_bytes().to_vec(),
                entry: mem_entry(
                    p,
                    EntryType::Symlink,
                    Payload::Symlink(t.as_bytes().to_vec()),
                ),
            },
        }))
    }
}

#[test]
fn a_custom_source_builds_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("m.ptar");
    let mut w = ptar::Writer::create(&archive, CreateOptions::default()).unwrap();
    // Entries of a directory may come in any order.
    let items = vec![
        Item::Enter("imported"),
        Item::File("imported/z.txt", b"zulu"),
        Item::Link("imported/a-link", "z.txt"),
        Item::Enter("imported/sub"),
        Item::File("imported/sub/big.bin", &[42u8; 300_000]),
        Item::Leave,
        Item::Leave,
    ];
    let mut src = Memory {
        items,
        at: 0,
        data: None,
    };
    let (_, out) = w
        .add_snapshot_from(
            &mut src,
            vec![b"memory".to_vec()],
            &ptar::SnapshotMeta::default(),
            &ptar::progress::NoProgress,
        )
        .unwrap();
    assert_eq!(
        (out.summary.files, out.summary.dirs, out.summary.symlinks),
        (2, 2, 1)
    );
    w.commit().unwrap();
    let a = Archive::open(&archive, None).unwrap();
    let s = a.find_snapshot("latest").unwrap();
    let dest = tmp.path().join("out");
    let x = a
        .extract(
            &s,
            &dest,
            &ptar::fs::ExtractOptions::default(),
            &ptar::progress::NoProgress,
        )
        .unwrap();
    assert!(x.errors.is_empty(), "{:?}", x.errors);
    assert_eq!(std::fs::read(dest.join("imported/z.txt")).unwrap(), b"zulu");
    assert_eq!(
        std::fs::read(dest.join("imported/sub/big.bin")).unwrap(),
        vec![42u8; 300_000]
    );
    assert_eq!(
        std::fs::read_link(dest.join("imported/a-link")).unwrap(),
        std::path::Path::new("z.txt")
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(dest.join("imported/z.txt"))
            .unwrap()
            .mtime(),
        1_700_000_000
    );
}
