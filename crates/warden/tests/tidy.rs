//! Tidy: checks on the source tree itself, in the manner of rust-analyzer's `tidy.rs`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every module says what it owns in a `//!` line at its top.
#[test]
fn every_module_opens_with_a_doc_comment() {
    let mut files = Vec::new();
    for krate in std::fs::read_dir(crates_dir()).expect("crates/").flatten() {
        rust_files(&krate.path().join("src"), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).expect("readable");
            !text
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with("//!"))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a `//!` line: {missing:#?}"
    );
}

/// The policy crate stays pure: no IO, no async, no clock.
#[test]
fn the_policy_crate_does_no_io() {
    let mut files = Vec::new();
    rust_files(&crates_dir().join("policy").join("src"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for banned in [
            "std::fs",
            // Addresses are values the engine compares; sockets would be IO.
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "tokio",
            "async fn",
            "SystemTime",
            "Instant::now",
            "std::env",
        ] {
            assert!(!text.contains(banned), "{} uses `{banned}`", file.display());
        }
    }
}
