//! `ptar sync`: snapshots copied from one archive into another.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ptar::{Archive, Writer};

use crate::cli::SyncArgs;
use crate::commands::{
    absolute, load_signing_key, new_archive_options, open_archive, pack_from, CliProgress, ReadFrom,
};
use crate::output::human;
use crate::{json, passphrase};

/// The snapshots `ptar sync` copies: all of SRC's, or those selected, in
/// SRC's order, each once.
fn sync_selection(src: &Archive, a: &SyncArgs) -> Result<Vec<ptar::Snapshot>> {
    if a.snapshots.is_empty() {
        return src
            .snapshots()
            .with_context(|| a.file.display().to_string());
    }
    let mut chosen: Vec<ptar::Snapshot> = Vec::new();
    for sel in &a.snapshots {
        let s = src
            .find_snapshot(sel)
            .with_context(|| format!("{}: --snapshot {sel}", a.file.display()))?;
        if !chosen.iter().any(|c| c.id == s.id) {
            chosen.push(s);
        }
    }
    let table = src.store().snapshot_list();
    let mut placed = chosen
        .into_iter()
        .map(|s| Ok((table.position(&s.id)?, s)))
        .collect::<Result<Vec<_>, ptar::Error>>()?;
    placed.sort_by_key(|(at, _)| *at);
    Ok(placed.into_iter().map(|(_, s)| s).collect())
}

/// `ptar sync -f SRC DST`: copies snapshots into DST (created when absent)
/// in one new generation, or writes nothing when DST holds them all.
pub fn sync(a: &SyncArgs) -> Result<ExitCode> {
    if a.dest == Path::new("-") {
        bail!("sync needs a destination archive file, not standard output");
    }
    let dest = absolute(&a.dest)?;
    let dest_md = std::fs::metadata(&dest).ok();
    if let (Some(d), Ok(s)) = (&dest_md, std::fs::metadata(&a.file)) {
        use std::os::unix::fs::MetadataExt;
        if a.file != Path::new("-") && (d.dev(), d.ino()) == (s.dev(), s.ino()) {
            bail!(
                "{}: the source and the destination are the same archive",
                a.dest.display()
            );
        }
    }
    let src = open_archive(
        &a.file,
        ReadFrom::new(a.passphrase_file.as_deref(), a.ignore_damaged_tail),
    )?;
    let chosen = sync_selection(&src, a)?;
    let key = load_signing_key(a.sign.as_deref())?;
    let pack = pack_from(a.fast, a.best, a.level, a.threads);
    let old_len = dest_md.as_ref().map_or(0, |m| m.len());
    let mut w = if dest_md.is_some() {
        if a.encrypt {
            bail!(
                "--encrypt applies when creating DST; an existing archive keeps its own encryption"
            );
        }
        let header = ptar::probe(&dest).with_context(|| dest.display().to_string())?;
        let pass = if header.encrypted() {
            Some(passphrase::dest_for_reading(
                a.dest_passphrase_file.as_deref(),
            )?)
        } else {
            None
        };
        let mut w = Writer::append(&dest, pass.as_deref().map(|p| p.as_slice()))
            .with_context(|| dest.display().to_string())?;
        w.set_pack_options(pack)?;
        w
    } else {
        let opts = new_archive_options(
            pack,
            a.encrypt.then_some(a.kdf_params.as_deref()),
            a.dest_passphrase_file.as_deref(),
            "--dest-passphrase-file",
            passphrase::dest_for_new_archive,
        )?;
        Writer::create(&dest, opts).with_context(|| dest.display().to_string())?
    };
    if let Some(k) = key {
        w.sign_with(k);
    }
    let progress = CliProgress::to(0, Box::new(std::io::stderr())).with_bar_unless(
        a.quiet || a.json,
        None,
        "copying",
    );
    let started = std::time::Instant::now();
    // A write error without a path of its own is a write to DST.
    let name_dest = |e: ptar::Error| match e {
        ptar::Error::Io { path: None, source } => ptar::Error::Io {
            path: Some(a.dest.clone()),
            source,
        },
        other => other,
    };
    let outcome = ptar::sync::sync(&src, &chosen, &mut w, &progress).map_err(name_dest);
    progress.finish();
    let outcome = outcome?;
    let info = if outcome.snapshots_copied > 0 {
        match crate::commands::committed(w.commit(), &a.dest)? {
            Ok(info) => Some(info),
            Err(code) => return Ok(code),
        }
    } else {
        // Nothing to add: no generation at all (dropping the writer
        // leaves DST as it was, or never creates it).
        drop(w);
        None
    };
    let added = info
        .as_ref()
        .map_or(0, |i| i.archive_len.saturating_sub(old_len));
    if a.json {
        for s in &outcome.snapshots {
            let line = json::Obj::new("synced")
                .str("source", &s.source.to_hex())
                .str("snapshot", &s.dest.to_hex())
                .bool("copied", s.copied)
                .done();
            println!("{line}");
        }
        let mut line = json::Obj::new("sync")
            .num("snapshots_copied", outcome.snapshots_copied)
            .num("snapshots_skipped", outcome.snapshots_skipped)
            .num("chunks_copied", outcome.chunks_copied)
            .num("chunks_present", outcome.chunks_present)
            .num("bytes_read", outcome.bytes_read)
            .num("bytes_stored", outcome.bytes_stored)
            .num("bytes_added", added)
            .bool("nothing_to_copy", info.is_none());
        if let Some(i) = &info {
            line = line
                .num("generation", i.generation)
                .num("archive_bytes", i.archive_len);
        }
        let line = line
            .num("duration_ms", started.elapsed().as_millis() as u64)
            .done();
        println!("{line}");
    } else if !a.quiet {
        match &info {
            None if chosen.is_empty() => {
                eprintln!("ptar: nothing to copy: {} holds no snapshot", a.file.display())
            }
            None => eprintln!(
                "ptar: nothing to copy: {} already holds the {} snapshot(s) asked for",
                a.dest.display(),
                outcome.snapshots_skipped
            ),
            Some(i) => eprintln!(
                "ptar: copied {} snapshot(s) into generation {} of {} ({} already there): {} chunk(s) stored, {} already there; {} read, {} added ({added} bytes)",
                outcome.snapshots_copied,
                i.generation,
                a.dest.display(),
                outcome.snapshots_skipped,
                outcome.chunks_copied,
                outcome.chunks_present,
                human(outcome.bytes_read),
                human(added),
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
