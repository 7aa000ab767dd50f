//! Shell-style wildcards over byte strings, with GNU tar's semantics for
//! exclusions: `*` and `?` also match `/`, and a pattern matches a member
//! when it matches the whole name or any tail of it that starts after a `/`.

/// Matches `text` against `pat` (`*`, `?`, `[...]` with ranges and `!`/`^`
/// negation, `\` escapes). `*` and `?` match any byte, `/` included.
pub fn glob_match(pat: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pat, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() => {
                    if pat[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// A bracket expression at `pat[p] == b'['`: whether `c` matches, and the
/// index after the expression; `None` if the bracket is not closed.
fn class(pat: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = p + 1;
    let negate = matches!(pat.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let lo = pat[i];
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            if lo <= c && c <= pat[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// Whether an exclusion pattern matches a member name, as GNU tar does by
/// default: unanchored (it may match any tail that starts after a `/`) and
/// matching leading directories (a pattern naming a directory matches
/// everything under it).
pub fn exclude_match(pat: &[u8], name: &[u8]) -> bool {
    let pat = pat.strip_suffix(b"/").unwrap_or(pat);
    let starts = std::iter::once(0).chain(
        name.iter()
            .enumerate()
            .filter(|(_, &b)| b == b'/')
            .map(|(i, _)| i + 1),
    );
    for s in starts {
        let tail = &name[s..];
        let ends = tail
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'/')
            .map(|(i, _)| i)
            .chain(std::iter::once(tail.len()));
        for e in ends {
            if glob_match(pat, &tail[..e]) {
                return true;
            }
        }
    }
    false
}

/// Names GNU tar's `--exclude-vcs` leaves out.
pub const VCS_NAMES: &[&str] = &[
    "CVS",
    ".cvsignore",
    "RCS",
    "SCCS",
    ".svn",
    ".git",
    ".gitignore",
    ".gitattributes",
    ".gitmodules",
    ".arch-ids",
    "{arch}",
    "=RELEASE-ID",
    "=meta-update",
    "=update",
    ".bzr",
    ".bzrignore",
    ".bzrtags",
    ".hg",
    ".hgignore",
    ".hgtags",
    "_darcs",
];

/// The first bytes of a `CACHEDIR.TAG` file that marks a cache directory.
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.o", b"a/b.o"), "* matches /");
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"[a-c]x", b"bx"));
        assert!(!glob_match(b"[!a-c]x", b"bx"));
        assert!(glob_match(b"\\*", b"*"));
        assert!(!glob_match(b"\\*", b"a"));
        assert!(glob_match(b"**", b""));
        assert!(glob_match(b"a*b*c", b"a-b-b-c"));
        assert!(!glob_match(b"a*b*c", b"a-b-b-d"));
    }

    #[test]
    fn exclusions_are_unanchored() {
        assert!(exclude_match(b"foo", b"dir/foo"));
        assert!(exclude_match(b"foo", b"foo"));
        assert!(!exclude_match(b"foo", b"dir/foobar"));
        assert!(exclude_match(b"dir/foo", b"top/dir/foo"));
        assert!(exclude_match(b"*.tmp", b"a/b/c.tmp"));
        assert!(exclude_match(b"build/", b"x/build"));
        assert!(
            exclude_match(b"a/sub", b"a/sub/two.txt"),
            "leading directories match"
        );
        assert!(!exclude_match(b"a/sub", b"a/subway"));
    }
}
