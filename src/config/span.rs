//! From byte offsets (what the TOML parser reports) to 1-based line:col.

use std::ops::Range;

/// A 1-based line and column in the config text. Columns count characters,
/// not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

/// The position of byte `offset` in `text` (clamped to the text's end and
/// to a character boundary).
pub(crate) fn position(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() + 1,
        col: before[line_start..].chars().count() + 1,
    }
}

/// The start of the key whose value spans `value`, for `key = value`
/// written on one line (bare, quoted or dotted keys). Falls back to the
/// value's start when the text before the value is not `key =` (an array
/// element, an inline table).
pub(crate) fn key_start(text: &str, value: &Range<usize>) -> usize {
    let start = value.start.min(text.len());
    let Some(before) = text.get(..start) else {
        return start;
    };
    let trimmed = before.trim_end_matches([' ', '\t']);
    let Some(before_eq) = trimmed.strip_suffix('=') else {
        return start;
    };
    let key_end = before_eq.trim_end_matches([' ', '\t']);
    let bytes = key_end.as_bytes();
    let mut i = bytes.len();
    // Walk back over the last key segment: bare characters or one quoted string.
    match bytes.last() {
        Some(&q @ (b'"' | b'\'')) => {
            i -= 1;
            while i > 0 && bytes[i - 1] != q {
                i -= 1;
            }
            i = i.saturating_sub(1);
        }
        Some(_) => {
            while i > 0 && is_bare_key_byte(bytes[i - 1]) {
                i -= 1;
            }
        }
        None => return start,
    }
    if i == bytes.len() {
        return start;
    }
    i
}

fn is_bare_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(position(text, 0), Position { line: 1, col: 1 });
        assert_eq!(position(text, 4), Position { line: 1, col: 5 });
        assert_eq!(position(text, 6), Position { line: 2, col: 1 });
        let quote = text.find('"').unwrap();
        assert_eq!(position(text, quote), Position { line: 2, col: 6 });
        assert_eq!(position(text, 1000), Position { line: 3, col: 1 });
    }

    #[test]
    fn finds_the_key_of_a_value() {
        let text = "  cert = \"x.crt\"\n\"my key\"=1\narr = [\"a\"]\n";
        let v = text.find("\"x.crt").unwrap();
        assert_eq!(key_start(text, &(v..v + 7)), 2);
        let v = text.find("=1").unwrap() + 1;
        assert_eq!(key_start(text, &(v..v + 1)), text.find("\"my").unwrap());
        let v = text.find("\"a\"").unwrap();
        assert_eq!(key_start(text, &(v..v + 3)), v);
    }
}
