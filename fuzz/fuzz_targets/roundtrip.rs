//! Structure-aware round trip: `arbitrary` small trees (files, directories,
//! symlinks) and an operation sequence — snapshot, commit, abandon, reopen
//! and read back, extract — on a real archive file, plain or encrypted,
//! with small chunks (so files get many extents and file maps) and any
//! codec. After every read back, the archive must hold exactly the
//! committed snapshots, each reading back as the tree that was written.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ptar::codec::Compression;
use ptar::crypto::SeededEntropy;
use ptar::format::header::{ChunkerParams, KdfParams};
use ptar::format::tree::{Extent, Payload};
use ptar::fs::ExtractOptions;
use ptar::progress::NoProgress;
use ptar::store::writer::PackOptions;
use ptar::{Archive, CreateOptions, Encryption, SnapshotMeta, VerifyOptions, Writer};
use ptar_fuzz::{MemorySource, Node};

const PASS: &[u8] = b"fuzz passphrase";

/// A tree as `arbitrary` builds it; [`tree`] makes the names valid and unique.
#[derive(Arbitrary, Debug)]
enum ANode {
    /// Content: `repeat` copies of `bytes` (long files from short inputs).
    File {
        bytes: Vec<u8>,
        repeat: u8,
    },
    Dir(Vec<(Vec<u8>, ANode)>),
    Symlink(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Snapshot(Vec<(Vec<u8>, ANode)>),
    Commit,
    Abandon,
    ReadBack,
    Extract,
}

#[derive(Arbitrary, Debug)]
struct Plan {
    encrypted: bool,
    compression: u8,
    record_target: u8,
    ops: Vec<Op>,
}

fn valid_name(mut n: Vec<u8>) -> Vec<u8> {
    n.retain(|&c| c != b'/' && c != 0);
    n.truncate(200);
    if n.is_empty() || n == b"." || n == b".." {
        n.insert(0, b'n');
    }
    n
}

/// Valid, unique names; bounded depth and size.
fn tree(kids: &[(Vec<u8>, ANode)], depth: usize, budget: &mut usize) -> Vec<(Vec<u8>, Node)> {
    let mut out: BTreeMap<Vec<u8>, Node> = BTreeMap::new();
    for (name, node) in kids {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let name = valid_name(name.clone());
        let node = match node {
            ANode::File { bytes, repeat } => {
                let n = if bytes.is_empty() {
                    0
                } else {
                    *repeat as usize % 64 + 1
                };
                Node::File(bytes.repeat(n))
            }
            ANode::Dir(sub) if depth < 5 => Node::Dir(tree(sub, depth + 1, budget)),
            ANode::Dir(_) => Node::Dir(Vec::new()),
            ANode::Symlink(t) => {
                let mut t: Vec<u8> = t.iter().copied().filter(|&c| c != 0).collect();
                t.truncate(1000);
                if t.is_empty() {
                    t.push(b'x');
                }
                Node::Symlink(t)
            }
        };
        out.entry(name).or_insert(node);
    }
    out.into_iter().collect()
}

/// The tree as (path, node) pairs, directories with no children listed.
fn flatten(prefix: &[u8], kids: &[(Vec<u8>, Node)], out: &mut BTreeMap<Vec<u8>, Node>) {
    for (name, node) in kids {
        let mut p = prefix.to_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        match node {
            Node::Dir(sub) => {
                out.insert(p.clone(), Node::Dir(Vec::new()));
                flatten(&p, sub, out);
            }
            other => {
                out.insert(p, other.clone());
            }
        }
    }
}

/// Reads every snapshot back and compares it with `model`.
fn read_back(path: &Path, pass: Option<&[u8]>, model: &[Vec<(Vec<u8>, Node)>]) {
    if model.is_empty() && !path.exists() {
        return;
    }
    let a = Archive::open(path, pass).expect("a committed archive opens");
    let snaps = a.snapshots().expect("snapshots are listed");
    assert_eq!(snaps.len(), model.len(), "snapshot count");
    for (s, want) in snaps.iter().zip(model) {
        let mut expect = BTreeMap::new();
        flatten(b"", want, &mut expect);
        let mut got = BTreeMap::new();
        a.walk(s, |p, e| {
            let node = match &e.payload {
                Payload::Dir(_) => Node::Dir(Vec::new()),
                Payload::Symlink(t) => Node::Symlink(t.clone()),
                Payload::File(c) => {
                    let mut body = Vec::new();
                    for x in a.extents(c, e.size)? {
                        match x {
                            Extent::Data { id, len } => {
                                let chunk = a.read_chunk(&id)?;
                                assert_eq!(chunk.len(), len as usize);
                                body.extend_from_slice(&chunk);
                            }
                            Extent::Hole { len } => body.resize(body.len() + len as usize, 0),
                        }
                    }
                    assert_eq!(body.len() as u64, e.size);
                    Node::File(body)
                }
                other => panic!("unexpected payload {other:?}"),
            };
            got.insert(p.to_vec(), node);
            Ok(())
        })
        .expect("a snapshot walks");
        assert_eq!(got, expect, "snapshot reads back as written");
    }
    let report = a.verify(&VerifyOptions {
        full: true,
        trusted_key: None,
    });
    assert!(report.ok(), "verify: {:?}", report.problems);
    assert_eq!(report.snapshots, model.len());
}

/// Extracts the latest snapshot and compares the files with `want`.
fn extract(path: &Path, pass: Option<&[u8]>, want: &[(Vec<u8>, Node)], dir: &Path) {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let a = Archive::open(path, pass).expect("a committed archive opens");
    let s = a.find_snapshot("latest").expect("latest snapshot");
    let dest = dir.join("x");
    let _ = std::fs::remove_dir_all(&dest);
    let opts = ExtractOptions {
        threads: 1,
        devices: false,
        same_owner: false,
        ..ExtractOptions::default()
    };
    let out = a.extract(&s, &dest, &opts, &NoProgress).expect("extracts");
    assert!(out.errors.is_empty(), "extraction errors: {:?}", out.errors);
    let mut expect = BTreeMap::new();
    flatten(b"", want, &mut expect);
    for (p, node) in &expect {
        let fp = dest.join(std::ffi::OsStr::from_bytes(p));
        match node {
            Node::File(body) => assert_eq!(&std::fs::read(&fp).expect("file"), body),
            Node::Symlink(t) => {
                let got = std::fs::read_link(&fp).expect("symlink").into_os_string();
                assert_eq!(&got.into_vec(), t);
            }
            Node::Dir(_) => assert!(fp.is_dir()),
        }
    }
}

fn pack(plan: &Plan) -> PackOptions {
    PackOptions {
        compression: match plan.compression % 4 {
            0 => Compression::None,
            1 => Compression::Lz4,
            2 => Compression::Zstd(1),
            _ => Compression::Zstd(3),
        },
        record_target: [0, 1, 512, 4096, 1 << 20][plan.record_target as usize % 5],
        threads: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = Plan::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let path = tmp.path().join("a.ptar");
    let pass = plan.encrypted.then_some(PASS);
    let mut committed: Vec<Vec<(Vec<u8>, Node)>> = Vec::new();
    let mut pending: Vec<Vec<(Vec<u8>, Node)>> = Vec::new();
    let mut writer: Option<Writer<_>> = None;
    let mut budget = 300usize;
    let mut serial = 0u32;
    for op in plan.ops.iter().take(12) {
        match op {
            Op::Snapshot(kids) => {
                let t = tree(kids, 0, &mut budget);
                if writer.is_none() {
                    let w = if path.exists() {
                        let mut w = Writer::append_with(
                            &path,
                            pass,
                            Box::new(SeededEntropy::new(&serial.to_le_bytes())),
                            None,
                        )
                        .expect("append opens");
                        w.set_pack_options(pack(&plan)).expect("pack options");
                        w
                    } else {
                        let opts = CreateOptions {
                            encryption: plan.encrypted.then(|| Encryption {
                                passphrase: zeroize::Zeroizing::new(PASS.to_vec()),
                                kdf: KdfParams {
                                    m_kib: 8,
                                    t: 1,
                                    p: 1,
                                },
                            }),
                            chunker: ChunkerParams {
                                min: 64,
                                avg: 256,
                                max: 1024,
                            },
                            entropy: Box::new(SeededEntropy::new(b"roundtrip")),
                            time_ns: None,
                            pack: pack(&plan),
                        };
                        Writer::create(&path, opts).expect("create")
                    };
                    writer = Some(w);
                }
                let w = writer.as_mut().expect("writer");
                serial += 1;
                let meta = SnapshotMeta {
                    name: format!("s{serial}"),
                    ..SnapshotMeta::default()
                };
                let mut src = MemorySource::new(&t);
                w.add_snapshot_from(&mut src, vec![b"mem".to_vec()], &meta, &NoProgress)
                    .expect("snapshot builds");
                pending.push(t);
            }
            Op::Commit => {
                if let Some(w) = writer.take() {
                    w.commit().expect("commit");
                    committed.append(&mut pending);
                }
            }
            Op::Abandon => {
                drop(writer.take());
                pending.clear();
            }
            Op::ReadBack => read_back(&path, pass, &committed),
            Op::Extract => {
                if let Some(last) = committed.last() {
                    extract(&path, pass, last, tmp.path());
                }
            }
        }
    }
    if let Some(w) = writer.take() {
        w.commit().expect("commit");
        committed.append(&mut pending);
    }
    read_back(&path, pass, &committed);
});
