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
