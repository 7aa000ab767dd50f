//! Regenerates every file under `testdata/` from code.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    match ptar_tests::vectors::write_all(&root) {
        Ok(n) => eprintln!("gen-testdata: wrote {n} files under {}", root.display()),
        Err(e) => {
            eprintln!("gen-testdata: {e}");
            std::process::exit(1);
        }
    }
}
