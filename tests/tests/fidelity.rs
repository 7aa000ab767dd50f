//! Metadata fidelity: a tree with every kind of entry and metadata goes
//! through ptar and comes back field by field; GNU tar with
//! `--xattrs --acls --sparse` goes through the same tree, and ptar keeps at
//! least every field tar keeps.

use std::path::Path;

use ptar_tests::fidelity::{build, fields};
use ptar_tests::ptar_bin;

/// Runs `prog ARGS` in `dir`, asserting success.
fn run(dir: &Path, prog: &Path, args: &[&str]) {
    ptar_tests::gnutar::run(dir, prog, &ptar_tests::gnutar::os(args));
}

#[test]
fn everything_comes_back_and_at_least_what_gnu_tar_keeps() {
    let as_root = rustix::process::geteuid().is_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = build(&tmp.path().join("src"), as_root);
    let want = fields(&t.root);
    // ptar
    run(
        tmp.path(),
        ptar_bin(),
        &["-c", "-f", "f.ptar", "-C", "src", "dir"],
    );
    run(
        tmp.path(),
        ptar_bin(),
        &["-x", "-p", "-f", "f.ptar", "-C", "out-ptar"],
    );
    let got = fields(&tmp.path().join("out-ptar"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same paths"
    );
    let mut report = Vec::new();
    for (path, w) in &want {
        for (field, value) in w {
            let g = got[path].get(field);
            report.push(format!(
                "{:<40} {:<28} {}",
                path.display(),
                field,
                if g == Some(value) { "kept" } else { "LOST" }
            ));
            assert_eq!(g, Some(value), "ptar lost {field} of {}", path.display());
        }
    }
    eprintln!("{}", report.join("\n"));
    eprintln!(
        "xattrs checked: {}, ACLs checked: {}, as root: {as_root}",
        t.xattrs, t.acls
    );
    // GNU tar on the same tree: every field it keeps, ptar keeps too (shown above).
    let tar = Path::new("/usr/bin/tar");
    if !tar.exists() {
        eprintln!("GNU tar is not installed; the comparison with tar is skipped");
        return;
    }
    run(
        tmp.path(),
        tar,
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--sparse",
            "-cf",
            "f.tar",
            "-C",
            "src",
            "dir",
        ],
    );
    std::fs::create_dir(tmp.path().join("out-tar")).unwrap();
    run(
        tmp.path(),
        tar,
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-xpf",
            "f.tar",
            "-C",
            "out-tar",
        ],
    );
    let by_tar = fields(&tmp.path().join("out-tar"));
    let mut tar_kept = 0;
    for (path, w) in &want {
        for (field, value) in w {
            if by_tar.get(path).and_then(|m| m.get(field)) == Some(value) {
                tar_kept += 1;
                assert_eq!(
                    got[path].get(field),
                    Some(value),
                    "GNU tar keeps {field} of {}, ptar does not",
                    path.display()
                );
            }
        }
    }
    let total: usize = want.values().map(|m| m.len()).sum();
    eprintln!("of {total} fields: ptar kept {total}, GNU tar kept {tar_kept}");
}
