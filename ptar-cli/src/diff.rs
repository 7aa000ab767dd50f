//! `ptar diff` and `ptar find`: two snapshots compared, snapshots searched.

use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::commands::{open_archive, type_name, ReadFrom};
use crate::json;
use crate::output;

/// `ptar diff`: what changed from snapshot `old` to snapshot `new`.
/// Exit 0 when nothing did, 1 when something did, 2 when a directory could
/// not be read (the rest is still compared).
pub fn snapshot_diff(
    file: &Path,
    old: &str,
    new: &str,
    ctime: bool,
    as_json: bool,
    from: ReadFrom<'_>,
) -> Result<ExitCode> {
    use ptar::diff::{ChangeKind, DiffOptions};
    let archive = open_archive(file, from)?;
    let a = archive.find_snapshot(old)?;
    let b = archive.find_snapshot(new)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let opts = DiffOptions::default().with_ctime(ctime);
    let stats = ptar::diff::diff(&archive, &a, &b, &opts, |c| {
        let (letter, word) = match c.kind {
            ChangeKind::Added => ('+', "added"),
            ChangeKind::Removed => ('-', "removed"),
            ChangeKind::Modified => ('M', "modified"),
            _ => ('U', "metadata"),
        };
        let kind = c.entry_type();
        if as_json {
            let mut o = json::Obj::new("change")
                .str("change", word)
                .bytes("path", &c.path)
                .str("type", type_name(kind));
            if let Some(old) = c.old.as_ref().filter(|o| o.kind != kind) {
                o = o.str("old_type", type_name(old.kind));
            }
            if !c.fields.is_empty() {
                o = o.strs("fields", c.fields.names());
            }
            writeln!(out, "{}", o.done())?;
        } else {
            write!(out, "{letter}    ")?;
            output::write_path(&mut out, &c.path)?;
            if kind == ptar::format::tree::EntryType::Dir {
                out.write_all(b"/")?;
            }
            if c.kind == ChangeKind::Metadata {
                write!(
                    out,
                    " ({})",
                    c.fields.names().collect::<Vec<_>>().join(", ")
                )?;
            }
            out.write_all(b"\n")?;
        }
        Ok(())
    })?;
    if as_json {
        let line = json::Obj::new("summary")
            .str("old_snapshot", &a.id.to_hex())
            .str("new_snapshot", &b.id.to_hex())
            .num("added", stats.added)
            .num("removed", stats.removed)
            .num("modified", stats.modified)
            .num("metadata", stats.metadata)
            .num("dirs_compared", stats.dirs_compared)
            .num("dirs_skipped", stats.dirs_skipped)
            .num("errors", stats.failures.len() as u64)
            .done();
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    drop(out);
    for (p, msg) in &stats.failures {
        eprintln!("ptar: {}: {msg}", String::from_utf8_lossy(p));
    }
    if !as_json {
        eprintln!(
            "ptar: {} -> {}: {} added, {} removed, {} modified, {} metadata only; directories: {} compared, {} skipped as unchanged",
            a.id.short(),
            b.id.short(),
            stats.added,
            stats.removed,
            stats.modified,
            stats.metadata,
            stats.dirs_compared,
            stats.dirs_skipped
        );
    }
    Ok(if !stats.failures.is_empty() {
        eprintln!(
            "ptar: {} directories could not be read; what is under them was not compared",
            stats.failures.len()
        );
        ExitCode::from(2)
    } else if stats.changes() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `ptar find`: entries matching any pattern, in every snapshot or those
/// selected. Exit 0 when something matched, 1 when nothing did, 2 when a
/// directory could not be read (the rest is still searched).
pub fn find(
    file: &Path,
    patterns: &[std::ffi::OsString],
    selectors: &[String],
    as_json: bool,
    from: ReadFrom<'_>,
) -> Result<ExitCode> {
    use ptar::find::FindPattern;
    let patterns: Vec<FindPattern> = patterns
        .iter()
        .map(|p| FindPattern::new(p.as_bytes()))
        .collect::<ptar::Result<_>>()?;
    let archive = open_archive(file, from)?;
    let snaps = if selectors.is_empty() {
        archive.snapshots()?
    } else {
        let mut v: Vec<ptar::Snapshot> = Vec::new();
        for sel in selectors {
            let s = archive.find_snapshot(sel)?;
            if !v.iter().any(|x| x.id == s.id) {
                v.push(s);
            }
        }
        v
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let stats = ptar::find::find(&archive, &snaps, &patterns, |s, path, e| {
        if as_json {
            let line = json::Obj::new("match")
                .str("snapshot", &s.id.to_hex())
                .bytes("path", path)
                .str("type", type_name(e.kind))
                .num("size", e.size)
                .num(
                    "mtime_ns",
                    e.mtime.sec as i128 * 1_000_000_000 + e.mtime.nsec as i128,
                )
                .done();
            writeln!(out, "{line}")?;
        } else {
            write!(out, "{}  ", s.id.short())?;
            output::write_path(&mut out, path)?;
            if e.kind == ptar::format::tree::EntryType::Dir {
                out.write_all(b"/")?;
            }
            out.write_all(b"\n")?;
        }
        Ok(())
    })?;
    if as_json {
        let line = json::Obj::new("summary")
            .num("snapshots", stats.snapshots)
            .num("matches", stats.matches)
            .num("dirs_read", stats.dirs_read)
            .num("dirs_reused", stats.dirs_reused)
            .num("errors", stats.failures.len() as u64)
            .done();
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    drop(out);
    for (snap, p, msg) in &stats.failures {
        let p = if p.is_empty() {
            "/".into()
        } else {
            String::from_utf8_lossy(p)
        };
        eprintln!("ptar: {} {p}: {msg}", snap.short());
    }
    Ok(if !stats.failures.is_empty() {
        ExitCode::from(2)
    } else if stats.matches == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
