//! Printing: listings, sizes, times, and error descriptions.

use std::io::Write;

use ptar::format::tree::{Entry, EntryType, Payload};

/// Whether an error chain ends in a broken pipe (a reader like `head` went away).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<ptar::Error>().is_some_and(|p| matches!(p, ptar::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe))
    })
}

/// One line for an error chain.
pub fn describe(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for c in e.chain().skip(1) {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
    }
    s
}

/// `rwxr-xr-x` with setuid/setgid/sticky letters.
pub fn mode_string(kind: EntryType, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind.letter());
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (b, c)) in bits.iter().enumerate() {
        let set = mode & b != 0;
        let special = match i {
            2 => (mode & 0o4000 != 0).then_some(if set { 's' } else { 'S' }),
            5 => (mode & 0o2000 != 0).then_some(if set { 's' } else { 'S' }),
            8 => (mode & 0o1000 != 0).then_some(if set { 't' } else { 'T' }),
            _ => None,
        };
        s.push(special.unwrap_or(if set { *c } else { '-' }));
    }
    s
}

/// A civil date `YYYY-MM-DD HH:MM` in UTC from Unix seconds.
pub fn date(secs: i64) -> String {
    let (y, m, d, hh, mm, _) = civil(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}")
}

/// A civil time `YYYY-MM-DDTHH:MM:SS` in UTC from Unix seconds (ISO 8601
/// without the zone).
#[cfg_attr(not(all(feature = "mount", target_os = "linux")), allow(dead_code))]
pub fn date_time(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}")
}

/// Year, month, day, hour, minute and second in UTC of Unix seconds.
fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Human size with binary units.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Writes a path as bytes (not necessarily UTF-8).
pub fn write_path(out: &mut impl Write, path: &[u8]) -> std::io::Result<()> {
    out.write_all(path)
}

/// Writes one listing line: names only, or `ls -l` style when `long`.
pub fn list_line(out: &mut impl Write, path: &[u8], e: &Entry, long: bool) -> std::io::Result<()> {
    if long {
        let owner = if e.user.is_empty() {
            e.uid.to_string()
        } else {
            String::from_utf8_lossy(&e.user).into_owned()
        };
        let group = if e.group.is_empty() {
            e.gid.to_string()
        } else {
            String::from_utf8_lossy(&e.group).into_owned()
        };
        let size = match &e.payload {
            Payload::Device { major, minor } => format!("{major},{minor}"),
            _ => e.size.to_string(),
        };
        write!(
            out,
            "{} {owner}/{group} {size:>10} {} ",
            mode_string(e.kind, e.mode),
            date(e.mtime.sec)
        )?;
    }
    write_path(out, path)?;
    if e.kind == EntryType::Dir {
        out.write_all(b"/")?;
    }
    if long {
        match &e.payload {
            Payload::Symlink(t) => {
                out.write_all(b" -> ")?;
                out.write_all(t)?;
            }
            Payload::Hardlink(t) => {
                out.write_all(b" link to ")?;
                out.write_all(t)?;
            }
            _ => {}
        }
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_modes() {
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(date_time(1_700_000_059), "2023-11-14T22:14:19");
        assert_eq!(date_time(-1), "1969-12-31T23:59:59");
        assert_eq!(mode_string(EntryType::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(EntryType::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
