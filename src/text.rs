//! Names and paths made safe to print: nothing a user or a peer chose reaches a terminal
//! raw.
//!
//! [`Quoted`] shows a name or path in double quotes with every control character, every
//! bidirectional control (so a name cannot display as something it is not) and every byte
//! that is not UTF-8 escaped, the way Rust's `{:?}` writes a path (`"a\u{1b}[31m"`,
//! `"x\u{202e}txt"`, `"\xFF"`). Quotes make a name with spaces one field in a log line.
//! [`printable`] escapes the same characters without quoting, for JSON values, where the
//! encoder adds the quotes.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;

/// A name or path shown quoted and escaped.
#[derive(Clone, Copy)]
pub struct Quoted<T>(pub T);

impl<T: AsRef<OsStr>> fmt::Display for Quoted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Path's Debug escapes control, format and bidi characters and non-UTF-8 bytes.
        write!(f, "{:?}", Path::new(self.0.as_ref()))
    }
}

impl<T: AsRef<OsStr>> fmt::Debug for Quoted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `c` prints as itself: not a control, format or bidirectional character.
fn shows_as_itself(c: char) -> bool {
    matches!(c, '\\' | '"' | '\'') || c.escape_debug().len() == 1
}

/// `text` with every character that does not print as itself escaped (`\u{202e}`), and
/// bytes that are not UTF-8 as `\xNN`; unquoted.
pub fn printable(text: &OsStr) -> String {
    let mut out = String::with_capacity(text.len());
    for chunk in text.as_encoded_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if shows_as_itself(c) {
                out.push(c);
            } else {
                out.extend(c.escape_debug());
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{printable, Quoted};
    use std::ffi::OsStr;

    #[test]
    fn quoted_escapes_what_a_terminal_would_act_on() {
        let shown = Quoted("a\u{1b}[31mred \u{202e}txt \"q\"").to_string();
        assert_eq!(shown, r#""a\u{1b}[31mred \u{202e}txt \"q\"""#);
        assert!(!shown.chars().any(|c| c.is_control() || c == '\u{202e}'));
        assert_eq!(Quoted("plain name.txt").to_string(), "\"plain name.txt\"");
    }

    #[test]
    fn printable_keeps_plain_text_and_escapes_the_rest() {
        assert_eq!(printable(OsStr::new("a b\"c\\d")), "a b\"c\\d");
        assert_eq!(
            printable(OsStr::new("x\u{2066}y\u{7}z\u{9b}")),
            "x\\u{2066}y\\u{7}z\\u{9b}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            assert_eq!(printable(OsStr::from_bytes(b"a\xffb")), "a\\xFFb");
            assert_eq!(Quoted(OsStr::from_bytes(b"a\xffb")).to_string(), "\"a\\xFFb\"");
        }
    }
}
