//! `application/x-www-form-urlencoded` decoding (forms and query strings)
//! and percent-encoding for URLs the server writes.

/// Decodes `a=1&b=x%20y+z` into pairs, in order. Malformed escapes are kept
/// as they are; invalid UTF-8 is replaced.
pub fn parse(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of `name` (case-insensitive) in a decoded form.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Percent-decodes one component, `+` meaning a space.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms() {
        let f = parse("username=alice%40lab.com&password=Alice%21lab1&x=a+b&flag&bad=%zz%4");
        assert_eq!(get(&f, "USERNAME"), Some("alice@lab.com"));
        assert_eq!(get(&f, "password"), Some("Alice!lab1"));
        assert_eq!(get(&f, "x"), Some("a b"));
        assert_eq!(get(&f, "flag"), Some(""));
        assert_eq!(get(&f, "bad"), Some("%zz%4"));
        assert_eq!(get(&f, "none"), None);
    }

    #[test]
    fn encode_round_trips() {
        let s = "https://ex1.lab.local/owa/?a=b&c=d é";
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
