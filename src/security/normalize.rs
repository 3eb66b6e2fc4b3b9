//! The request target as the shields see it: one canonical spelling of
//! every way a client can write the same path, so that a rule written for
//! `/autodiscover/autodiscover.json` also sees `/%61utodiscover\\AutoDiscover.JSON`.
//!
//! [`normalize`] turns a request target (origin-form `/path?query`,
//! absolute-form `https://host/path?query`, or HTTP/2's `:path`) into:
//!
//! - the absolute form's scheme and authority removed;
//! - path and query split at the first `?` as sent (a `?` that arrives
//!   percent-encoded in the path stays part of the path);
//! - percent-escapes decoded until none is left: `%2f`, double `%252f`,
//!   triple and mixed (`%%32%66`), and IIS's `%u002f` form; an escape that
//!   decodes to `?` in the path is kept (as `%3f`), so that the path never
//!   holds a `?` and the split above is the same the next time;
//! - ASCII letters lower-cased;
//! - `\` read as `/`;
//! - `;` read as a separator: `/` in the path (so `/owa;x=y/powershell`
//!   shows the segments `owa`, `x=y` and `powershell`; nothing after a `;`
//!   is dropped), `&` in the query;
//! - runs of `/` collapsed into one; the path always starts with `/`.
//!
//! The result is a fixed point: normalizing it again gives it back (a
//! property test below and the `shields_normalize` fuzz target check it).
//! Dot segments are kept as they are: rules look for segments and words,
//! and a `..` hides none of them.
//!
//! Cost: one pass to decode and one to rewrite, in place. A target of up to
//! [`INLINE`] bytes is normalized in a buffer on the stack (no allocation);
//! a longer one in one heap buffer of its length.

/// Targets up to this many bytes (1 KiB) are normalized without allocating.
pub const INLINE: usize = 1024;

/// A normalized target (see the module documentation).
pub struct Normalized {
    storage: Storage,
    len: usize,
    /// Index of the `?` that starts the query, when there is one.
    query: Option<usize>,
}

// The inline buffer is the point: an ordinary target is normalized without
// allocating, in the stack frame of the one call that checks the request.
#[allow(clippy::large_enum_variant)]
enum Storage {
    Inline([u8; INLINE]),
    Heap(Box<[u8]>),
}

impl Normalized {
    /// The whole normalized target: path, then `?` and the query if any.
    pub fn as_bytes(&self) -> &[u8] {
        let all: &[u8] = match &self.storage {
            Storage::Inline(a) => a,
            Storage::Heap(b) => b,
        };
        &all[..self.len]
    }

    /// The path (always starting with `/`).
    pub fn path(&self) -> &[u8] {
        let all = self.as_bytes();
        &all[..self.query.unwrap_or(all.len())]
    }

    /// The query, without its `?`.
    pub fn query(&self) -> Option<&[u8]> {
        self.query.map(|q| &self.as_bytes()[q + 1..])
    }

    /// Whether it was normalized without allocating.
    pub fn is_inline(&self) -> bool {
        matches!(self.storage, Storage::Inline(_))
    }
}

impl std::fmt::Debug for Normalized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Which part of the target a byte belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Path,
    Query,
}

/// Normalizes a request target (see the module documentation). Never
/// panics, whatever the bytes.
pub fn normalize(target: &[u8]) -> Normalized {
    let target = strip_absolute(target);
    // The output is at most one byte longer than the input (the leading
    // `/`): decoding and collapsing only shorten it.
    let need = target.len() + 1;
    let mut storage = if need <= INLINE {
        Storage::Inline([0; INLINE])
    } else {
        Storage::Heap(vec![0; need].into_boxed_slice())
    };
    let buf: &mut [u8] = match &mut storage {
        Storage::Inline(a) => a,
        Storage::Heap(b) => b,
    };
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    buf[0] = b'/';
    let mut len = decode(path, buf, 1, 0, Part::Path);
    len = rewrite(buf, 0, len, Part::Path);
    let mut at = None;
    if let Some(query) = query {
        buf[len] = b'?';
        at = Some(len);
        let start = len + 1;
        len = decode(query, buf, start, start, Part::Query);
        len = rewrite(buf, start, len, Part::Query);
    }
    Normalized {
        storage,
        len,
        query: at,
    }
}

/// `input` with every percent-escape decoded to the end (`?` too, as in a
/// query), written to `out`; `None` when `input` is longer than `out`.
pub(crate) fn decode_fully<'o>(input: &[u8], out: &'o mut [u8]) -> Option<&'o [u8]> {
    if input.len() > out.len() {
        return None;
    }
    let n = decode(input, out, 0, 0, Part::Query);
    Some(&out[..n])
}

/// `target` without the scheme and authority of the absolute form
/// (`https://mail.lab.com/owa/` -> `/owa/`); other targets as they are.
fn strip_absolute(target: &[u8]) -> &[u8] {
    let scheme = target
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    let starts_alpha = target.first().is_some_and(u8::is_ascii_alphabetic);
    match target.get(scheme..) {
        Some(rest) if starts_alpha && rest.starts_with(b"://") => {
            let rest = &rest[3..];
            let end = rest
                .iter()
                .position(|b| matches!(b, b'/' | b'?' | b'#' | b'\\'))
                .unwrap_or(rest.len());
            &rest[end..]
        }
        _ => target,
    }
}

/// Appends `input` to `buf` at `len`, decoding escapes until none is left
/// in `buf[start..]` (see [`escape_at_end`]); returns the new length.
///
/// Decoding is done on the output: each byte is pushed, and whenever the
/// bytes at the end form an escape they are replaced by the byte it stands
/// for, which may complete an earlier escape (`%25` + `41` -> `%41` -> `A`).
/// No decodable escape can be left behind, since any new one ends with the
/// byte just pushed; every replacement shortens the output, so the work is
/// linear. An escape is at most 6 bytes (`%u00XX`): a byte more than 5
/// places after the last `%` of the output cannot end one, so runs without
/// `%` beyond that are copied whole.
fn decode(input: &[u8], buf: &mut [u8], mut len: usize, start: usize, part: Part) -> usize {
    let last_pct = |buf: &[u8], len: usize| {
        let from = len.saturating_sub(6).max(start);
        memchr::memrchr(b'%', &buf[from..len]).map(|i| from + i)
    };
    let mut pct = last_pct(buf, len);
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != b'%' && pct.is_none_or(|p| len - p > 5) {
            let end = memchr::memchr(b'%', &input[i..]).map_or(input.len(), |j| i + j);
            buf[len..len + end - i].copy_from_slice(&input[i..end]);
            len += end - i;
            i = end;
            continue;
        }
        buf[len] = b;
        len += 1;
        i += 1;
        if b == b'%' {
            pct = Some(len - 1);
        }
        while let Some((decoded, width)) = escape_at_end(&buf[start..len], part) {
            len -= width;
            buf[len] = decoded;
            len += 1;
            pct = last_pct(buf, len);
        }
    }
    len
}

/// The escape `s` ends with, if any: `%XX` or IIS's `%u00XX` (hex digits in
/// either case), as (byte, width). An escape of `?` in the path is left
/// alone (see the module documentation).
fn escape_at_end(s: &[u8], part: Part) -> Option<(u8, usize)> {
    let n = s.len();
    let byte = |hi: u8, lo: u8| Some(hex(hi)? << 4 | hex(lo)?);
    let found = if n >= 3 && s[n - 3] == b'%' {
        byte(s[n - 2], s[n - 1]).map(|b| (b, 3))
    } else if n >= 6
        && s[n - 6] == b'%'
        && matches!(s[n - 5], b'u' | b'U')
        && &s[n - 4..n - 2] == b"00"
    {
        byte(s[n - 2], s[n - 1]).map(|b| (b, 6))
    } else {
        None
    };
    found.filter(|(b, _)| !(part == Part::Path && *b == b'?'))
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Rewrites `buf[start..len]` in place: lower case, `\\` as `/`, `;` as a
/// separator, runs of `/` as one; returns the new length. Lower-casing is
/// one pass over the whole region; the byte-by-byte pass runs only when
/// there is a `\\`, a `;` or a `//` to rewrite (an ordinary target has none).
fn rewrite(buf: &mut [u8], start: usize, len: usize, part: Part) -> usize {
    let region = &mut buf[start..len];
    region.make_ascii_lowercase();
    let doubled = memchr::memchr_iter(b'/', region).any(|i| region.get(i + 1) == Some(&b'/'));
    if !doubled && memchr::memchr2(b'\\', b';', region).is_none() {
        return len;
    }
    let mut w = start;
    for r in start..len {
        let c = match buf[r] {
            b'\\' => b'/',
            b';' if part == Part::Path => b'/',
            b';' => b'&',
            c => c,
        };
        if c == b'/' && w > start && buf[w - 1] == b'/' {
            continue;
        }
        buf[w] = c;
        w += 1;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> String {
        String::from_utf8_lossy(normalize(s.as_bytes()).as_bytes()).into_owned()
    }

    #[test]
    fn ordinary_targets_are_lower_cased_only() {
        assert_eq!(n("/owa/"), "/owa/");
        assert_eq!(n("/EWS/Exchange.asmx"), "/ews/exchange.asmx");
        assert_eq!(
            n("/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=X1"),
            "/microsoft-server-activesync?cmd=sync&user=alice&deviceid=x1"
        );
        assert_eq!(n("/"), "/");
        assert_eq!(n(""), "/");
        assert_eq!(n("owa"), "/owa");
        let t = normalize(b"/OWA/auth.owa?a=B");
        assert_eq!(t.path(), b"/owa/auth.owa");
        assert_eq!(t.query(), Some(&b"a=b"[..]));
        assert!(t.is_inline());
        assert_eq!(normalize(b"/owa/").query(), None);
    }

    #[test]
    fn percent_escapes_are_decoded_to_the_end() {
        assert_eq!(
            n("/%61utodiscover/%41utodiscover.json"),
            "/autodiscover/autodiscover.json"
        );
        assert_eq!(n("/owa%2fpowershell"), "/owa/powershell");
        // Double, triple and escapes built of escapes.
        assert_eq!(n("/owa%252fpowershell"), "/owa/powershell");
        assert_eq!(n("/owa%25252fpowershell"), "/owa/powershell");
        assert_eq!(n("/%%32%66x"), "/x");
        assert_eq!(n("/%2541"), "/a");
        // IIS's %u form.
        assert_eq!(n("/owa%u002fpowershell"), "/owa/powershell");
        assert_eq!(n("/%U0041"), "/a");
        // Not escapes: kept.
        assert_eq!(n("/a%zz%4"), "/a%zz%4");
        assert_eq!(n("/100%"), "/100%");
        assert_eq!(n("/%u12"), "/%u12");
    }

    #[test]
    fn a_question_mark_escaped_in_the_path_stays_in_the_path() {
        let t = normalize(b"/owa/x%3F/powershell?a=%3F");
        assert_eq!(t.path(), b"/owa/x%3f/powershell");
        assert_eq!(t.query(), Some(&b"a=?"[..]));
        let t = normalize(b"/owa/x%253f/powershell");
        assert_eq!(t.path(), b"/owa/x%3f/powershell");
        assert_eq!(t.query(), None);
        assert_eq!(n("/a%u003Fb"), "/a%u003fb");
    }

    #[test]
    fn separators_and_slashes() {
        assert_eq!(n("\\owa\\powershell"), "/owa/powershell");
        assert_eq!(n("/owa%5cpowershell"), "/owa/powershell");
        assert_eq!(n("//owa///powershell//"), "/owa/powershell/");
        assert_eq!(n("/owa;x=1/powershell"), "/owa/x=1/powershell");
        assert_eq!(n("/owa/;/powershell"), "/owa/powershell");
        assert_eq!(n("/PowerShell?a=1;b=2"), "/powershell?a=1&b=2");
        assert_eq!(n("/x?u=https://a//b"), "/x?u=https:/a/b");
        assert_eq!(n("/owa/../powershell"), "/owa/../powershell");
    }

    #[test]
    fn the_absolute_form_is_reduced_to_its_path() {
        assert_eq!(n("https://mail.lab.com/OWA/?x=1"), "/owa/?x=1");
        assert_eq!(n("HTTPS://mail.lab.com:443/owa"), "/owa");
        assert_eq!(n("http://mail.lab.com"), "/");
        assert_eq!(n("http://mail.lab.com?q"), "/?q");
        assert_eq!(n("https://user@host\\owa"), "/owa");
        // Not the absolute form: a path that merely holds `://`.
        assert_eq!(n("/x/http://y"), "/x/http:/y");
        assert_eq!(n("1http://y/z"), "/1http:/y/z");
    }

    #[test]
    fn long_targets_go_to_the_heap() {
        let long = format!("/owa/{}", "A".repeat(INLINE * 2));
        let t = normalize(long.as_bytes());
        assert!(!t.is_inline());
        assert_eq!(t.as_bytes(), long.to_ascii_lowercase().as_bytes());
        let just = format!("/{}", "a".repeat(INLINE - 2));
        assert!(normalize(just.as_bytes()).is_inline());
    }

    /// The decoder without its fast path: one byte at a time.
    fn decode_slowly(input: &[u8], part: Part) -> Vec<u8> {
        let mut buf = vec![0; input.len()];
        let mut len = 0;
        for &b in input {
            buf[len] = b;
            len += 1;
            while let Some((decoded, width)) = escape_at_end(&buf[..len], part) {
                len -= width;
                buf[len] = decoded;
                len += 1;
            }
        }
        buf.truncate(len);
        buf
    }

    /// Targets built of the pieces that normalization treats specially.
    fn tricky() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"%".to_vec()),
            Just(b"%25".to_vec()),
            Just(b"%2".to_vec()),
            Just(b"%3f".to_vec()),
            Just(b"%3F".to_vec()),
            Just(b"%u00".to_vec()),
            Just(b"u".to_vec()),
            Just(b"3".to_vec()),
            Just(b"f".to_vec()),
            Just(b"/".to_vec()),
            Just(b"\\".to_vec()),
            Just(b";".to_vec()),
            Just(b"?".to_vec()),
            Just(b"&".to_vec()),
            Just(b"http://h".to_vec()),
            Just(b"A".to_vec()),
            Just(b"owa".to_vec()),
            Just(b"abcdefghij".to_vec()),
            any::<u8>().prop_map(|b| vec![b]),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn normalizing_twice_changes_nothing(t in tricky()) {
            let once = normalize(&t);
            let twice = normalize(once.as_bytes());
            prop_assert_eq!(once.as_bytes(), twice.as_bytes());
            prop_assert_eq!(once.query, twice.query);
            prop_assert!(once.path().starts_with(b"/"));
            prop_assert!(!once.path().contains(&b'?'));
        }

        #[test]
        fn the_fast_decoder_is_the_slow_one(t in tricky()) {
            for part in [Part::Path, Part::Query] {
                let mut buf = vec![0; t.len()];
                let n = decode(&t, &mut buf, 0, 0, part);
                prop_assert_eq!(&buf[..n], &decode_slowly(&t, part)[..]);
            }
        }

        #[test]
        fn any_bytes_normalize_to_a_fixed_point(t in proptest::collection::vec(any::<u8>(), 0..300)) {
            let once = normalize(&t);
            let twice = normalize(once.as_bytes());
            prop_assert_eq!(once.as_bytes(), twice.as_bytes());
            prop_assert!(once.as_bytes().len() <= t.len() + 1);
        }
    }
}
