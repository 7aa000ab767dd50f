//! The checked-in vectors match the generator, and each vector means what it says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ptar::chunker::Chunker;
use ptar::crypto::{self, Keys};
use ptar::format::header::{ChunkerParams, KdfParams, KeySlot};
use ptar::format::tree::{EntryType, Payload};
use ptar::format::{unhex, Codec, Kind};
use ptar::Archive;
use ptar_tests::vectors;
use zeroize::Zeroizing;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// `key: value` lines; repeated keys keep every value in order.
fn parse(path: &str) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(testdata().join(path)).unwrap();
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (k, v) = line.split_once(": ").unwrap();
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    m
}

fn one<'a>(m: &'a BTreeMap<String, Vec<String>>, k: &str) -> &'a str {
    &m[k][0]
}

fn h(m: &BTreeMap<String, Vec<String>>, k: &str) -> Vec<u8> {
    unhex(one(m, k)).unwrap()
}

#[test]
fn vectors_up_to_date() {
    let generated = vectors::generate();
    let mut drift = Vec::new();
    for (rel, bytes) in &generated {
        match std::fs::read(testdata().join(rel)) {
            Ok(on_disk) if &on_disk == bytes => {}
            Ok(_) => drift.push(format!("{rel} differs")),
            Err(e) => drift.push(format!("{rel}: {e}")),
        }
    }
    assert!(drift.is_empty(), "testdata/ drifted from the generator (run `cargo run -p ptar-tests --bin gen-testdata`): {drift:?}");
}

#[test]
fn key_vector_derives_as_stated() {
    let m = parse("vectors/keys.txt");
    let kdf = KdfParams {
        m_kib: one(&m, "argon2id-m-kib").parse().unwrap(),
        t: one(&m, "argon2id-t").parse().unwrap(),
        p: one(&m, "argon2id-p").parse().unwrap(),
    };
    let salt: [u8; 16] = h(&m, "salt").try_into().unwrap();
    let kek = crypto::passphrase_key(&h(&m, "passphrase"), &kdf, &salt).unwrap();
    assert_eq!(kek.to_vec(), h(&m, "kek"));
    let uuid: [u8; 16] = h(&m, "archive-uuid").try_into().unwrap();
    let slot = KeySlot {
        kdf,
        salt,
        nonce: h(&m, "slot-nonce").try_into().unwrap(),
        wrapped: h(&m, "wrapped-master-key").try_into().unwrap(),
    };
    assert_eq!(slot.params_bytes(), h(&m, "slot-params"));
    let mk = crypto::unwrap_slot(&slot, &h(&m, "passphrase"), &uuid)
        .unwrap()
        .expect("the passphrase opens the slot");
    assert_eq!(mk.to_vec(), h(&m, "master-key"));
    assert!(crypto::unwrap_slot(&slot, b"not the passphrase", &uuid)
        .unwrap()
        .is_none());
    assert_eq!(crypto::key_check(&mk, &uuid).to_vec(), h(&m, "key-check"));
    let keys = Keys::from_master(mk);
    for (ctx, k) in keys.subkeys() {
        assert_eq!(k.to_vec(), h(&m, &format!("subkey[{ctx}]")), "{ctx}");
        // Each subkey is BLAKE3 derive_key(context, master key).
        assert_eq!(k, blake3::derive_key(ctx, &h(&m, "master-key")));
    }
}

/// The one blob of a record's content, checked against the vector.
fn only_blob(content: &[u8]) -> Vec<u8> {
    let layout = ptar::format::record::RecordLayout::parse(content).unwrap();
    assert_eq!(layout.len(), 1);
    let (kind, range) = layout.blob(0).unwrap();
    assert_eq!(kind, Kind::Chunk);
    content[range].to_vec()
}

#[test]
fn blob_vectors_decode() {
    use ptar::format::frame::{self, FrameType};
    let m = parse("vectors/blob-plain.txt");
    let pt = h(&m, "plaintext");
    let stored = h(&m, "frame");
    // LE32 body length, then the envelope (spec §8.1).
    let body_len = u32::from_le_bytes(stored[..4].try_into().unwrap()) as usize;
    assert_eq!(body_len + 4, stored.len());
    let (eh, payload) = frame::parse_envelope(&stored[4..], true).unwrap();
    assert_eq!(eh.frame_type, FrameType::BlobRecord);
    assert_eq!(eh.codec as u8, one(&m, "codec").parse::<u8>().unwrap());
    let content = ptar::codec::decompress(eh.codec, payload, eh.content_len).unwrap();
    assert_eq!(content, h(&m, "record-content"));
    assert_eq!(only_blob(&content), pt);
    assert_eq!(
        crypto::content_id(None, Kind::Chunk, &pt).to_hex(),
        one(&m, "id")
    );
    // The id is BLAKE3(kind byte || plaintext).
    let mut x = vec![Kind::Chunk as u8];
    x.extend_from_slice(&pt);
    assert_eq!(blake3::hash(&x).to_hex().as_str(), one(&m, "id"));

    let m = parse("vectors/blob-encrypted.txt");
    let keys = Keys::from_master(Zeroizing::new(h(&m, "master-key").try_into().unwrap()));
    let uuid: [u8; 16] = h(&m, "archive-uuid").try_into().unwrap();
    let pt = h(&m, "plaintext");
    let offset: u64 = one(&m, "frame-offset").parse().unwrap();
    let stored = h(&m, "frame");
    let body = &stored[4..];
    assert_eq!(
        frame::associated_data(&uuid, offset, body.len() as u32).to_vec(),
        h(&m, "associated-data")
    );
    assert_eq!(&body[..24], &h(&m, "nonce")[..]);
    let envelope = crypto::open_frame(&keys, &uuid, offset, body).expect("authenticates");
    assert_eq!(envelope, h(&m, "envelope"));
    // Padded to its Padmé length (spec §8.2).
    let (eh, payload) = frame::parse_envelope(&envelope, false).unwrap();
    assert_eq!(
        envelope.len() as u64,
        frame::padme((frame::ENVELOPE_HEADER_LEN + payload.len()) as u64)
    );
    let content = ptar::codec::decompress(eh.codec, payload, eh.content_len).unwrap();
    assert_eq!(only_blob(&content), pt);
    assert_eq!(
        crypto::content_id(Some(&keys), Kind::Chunk, &pt).to_hex(),
        one(&m, "id")
    );
    assert!(
        crypto::open_frame(&keys, &uuid, offset + 1, body).is_none(),
        "the offset is bound"
    );
}

#[test]
fn solid_record_vector_decodes_to_its_blobs() {
    let m = parse("vectors/record-solid-zstd.txt");
    let codec = Codec::from_u8(one(&m, "codec").parse().unwrap()).unwrap();
    assert_eq!(codec, Codec::Zstd);
    let len: u32 = one(&m, "content-length").parse().unwrap();
    let content = ptar::codec::decompress(codec, &h(&m, "payload"), len).unwrap();
    let layout = ptar::format::record::RecordLayout::parse(&content).unwrap();
    let blobs = &m["blob"];
    assert_eq!(blobs.len(), 3);
    assert_eq!(layout.len(), 3);
    for line in blobs {
        let f: Vec<&str> = line.split(' ').collect();
        let ordinal: u32 = f[0].parse().unwrap();
        let (kind, range) = layout.blob(ordinal).unwrap();
        assert_eq!(kind as u8, f[1].parse::<u8>().unwrap());
        assert_eq!(
            crypto::content_id(None, kind, &content[range]).to_hex(),
            f[2]
        );
    }
    // Any other content length is refused.
    assert!(ptar::codec::decompress(codec, &h(&m, "payload"), len - 1).is_err());
    assert!(ptar::codec::decompress(codec, &h(&m, "payload"), len + 1).is_err());
}

#[test]
fn chunk_vector_cuts_as_stated() {
    let m = parse("vectors/chunks.txt");
    let input = vectors::chunk_input();
    assert_eq!(
        blake3::hash(&input).to_hex().as_str(),
        one(&m, "input-blake3")
    );
    let p = ChunkerParams {
        min: one(&m, "min").parse().unwrap(),
        avg: one(&m, "avg").parse().unwrap(),
        max: one(&m, "max").parse().unwrap(),
    };
    let lens = |k| {
        one(&m, k)
            .split(',')
            .map(|x| x.parse::<usize>().unwrap())
            .collect::<Vec<_>>()
    };
    let public = lens("public-lengths");
    assert_eq!(public.iter().sum::<usize>(), input.len());
    assert_eq!(Chunker::new(p, None).chunk_lengths(&input), public);
    let key: [u8; 32] = h(&m, "gear-key").try_into().unwrap();
    let keyed = lens("keyed-lengths");
    assert_eq!(Chunker::new(p, Some(&key)).chunk_lengths(&input), keyed);
    assert_ne!(public, keyed);
}

fn check_archive(name: &str) {
    let m = parse(&format!("archives/{name}.expect"));
    assert_eq!(one(&m, "expect"), "ok");
    let pass = match one(&m, "passphrase") {
        "none" => None,
        hexpass => Some(unhex(hexpass).unwrap()),
    };
    let path = testdata().join(format!("archives/{name}.ptar"));
    if pass.is_some() {
        assert!(matches!(
            Archive::open(&path, None),
            Err(ptar::Error::PassphraseRequired)
        ));
        assert!(matches!(
            Archive::open(&path, Some(b"wrong")),
            Err(ptar::Error::WrongPassphrase)
        ));
    }
    let a = Archive::open(&path, pass.as_deref()).unwrap();
    assert_eq!(
        a.store().generation_count().to_string(),
        one(&m, "generations")
    );
    assert!(a
        .verify(&ptar::VerifyOptions {
            full: true,
            trusted_key: None
        })
        .ok());
    let snaps = a.snapshots().unwrap();
    for (i, s) in snaps.iter().enumerate() {
        let n = i + 1;
        assert_eq!(s.id.to_hex(), one(&m, &format!("snapshot-{n}")));
        let mut found = Vec::new();
        a.walk(s, |path, e| {
            let p = String::from_utf8_lossy(path);
            for (k, v) in &e.xattrs {
                found.push(format!(
                    "xattr {p} {} {}",
                    String::from_utf8_lossy(k),
                    ptar::format::hex(v)
                ));
            }
            found.push(match (&e.kind, &e.payload) {
                (EntryType::Dir, _) => format!("dir {p} {:o}", e.mode),
                (EntryType::Symlink, Payload::Symlink(t)) => {
                    format!("symlink {p} {}", String::from_utf8_lossy(t))
                }
                (EntryType::File, Payload::File(c)) => {
                    let mut content = Vec::new();
                    for x in a.extents(c, e.size)? {
                        if let ptar::format::tree::Extent::Data { id, .. } = x {
                            content.extend(a.read_chunk(&id)?);
                        }
                    }
                    format!(
                        "file {p} {:o} {} {}",
                        e.mode,
                        content.len(),
                        blake3::hash(&content).to_hex()
                    )
                }
                other => panic!("unexpected entry {other:?}"),
            });
            Ok(())
        })
        .unwrap();
        found.sort();
        assert_eq!(
            found,
            m[&format!("snapshot-{n}-entry")],
            "snapshot {n} of {name}"
        );
    }
}

#[test]
fn tiny_plain_archive_reads_as_expected() {
    check_archive("tiny-plain");
}

#[test]
fn tiny_encrypted_archive_reads_as_expected() {
    check_archive("tiny-encrypted");
}
