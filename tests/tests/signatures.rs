//! Signed footers: the right key passes, another fails, any changed byte fails.

use std::path::Path;

use ptar_tests::{ptar_s, random_bytes};

fn keygen(dir: &Path, name: &str) -> (String, String) {
    let k = dir.join(name);
    let out = ptar_s(&["keygen", "-o", k.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = k.to_str().unwrap().to_string();
    (secret.clone(), format!("{secret}.pub"))
}

#[test]
fn signatures_check_out_only_with_the_right_key_and_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().to_str().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f.bin"), random_bytes(b"sig", 400_000)).unwrap();
    std::fs::write(src.join("note.txt"), "signed\n").unwrap();
    let (k1, p1) = keygen(tmp.path(), "alice.key");
    let (_, p2) = keygen(tmp.path(), "mallory.key");
    let archive = tmp.path().join("s.ptar");
    let a = archive.to_str().unwrap();
    assert!(ptar_s(&["-c", "--sign", &k1, "-f", a, "-C", t, "src"], &[])
        .status
        .success());
    std::fs::write(src.join("later.txt"), "appended\n").unwrap();
    assert!(ptar_s(&["-r", "--sign", &k1, "-f", a, "-C", t, "src"], &[])
        .status
        .success());

    let ok = ptar_s(&["--verify", "--full", "--trusted-key", &p1, "-f", a], &[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("signed by: "));

    let other = ptar_s(&["--verify", "--trusted-key", &p2, "-f", a], &[]);
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("not by the trusted key"));

    // An unsigned archive does not pass a trusted-key check.
    let plain = tmp.path().join("u.ptar");
    assert!(
        ptar_s(&["-c", "-f", plain.to_str().unwrap(), "-C", t, "src"], &[])
            .status
            .success()
    );
    let out = ptar_s(
        &[
            "--verify",
            "--trusted-key",
            &p1,
            "-f",
            plain.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed"));

    // Any changed byte fails the check.
    let pristine = std::fs::read(&archive).unwrap();
    let n = 60;
    for i in 0..n {
        let off = i * (pristine.len() - 1) / (n - 1);
        let mut b = pristine.clone();
        b[off] ^= 0x04;
        let damaged = tmp.path().join("d.ptar");
        std::fs::write(&damaged, &b).unwrap();
        let out = ptar_s(
            &[
                "--verify",
                "--full",
                "--trusted-key",
                &p1,
                "-f",
                damaged.to_str().unwrap(),
            ],
            &[],
        );
        assert!(
            !out.status.success(),
            "a change at byte {off} of {} passed",
            pristine.len()
        );
    }
}
