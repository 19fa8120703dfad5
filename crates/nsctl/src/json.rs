//! JSON output exactly as iproute2 writes it (`ip -j` and `ip -j -p`).
//!
//! Compact output is serde_json's own. Pretty output follows iproute2's
//! `json_writer.c`, which is not serde_json's pretty style: arrays open with
//! `[ ` and close with ` ]`, objects inside arrays follow each other as `},{`,
//! and every key starts a new line indented four spaces per level.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// How the command line asked for output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Style {
    /// `-j`: JSON instead of text.
    pub(crate) json: bool,
    /// `-p`: pretty JSON (only with `-j`, as in ip).
    pub(crate) pretty: bool,
}

/// iproute2's pretty JSON layout as a serde_json formatter.
#[derive(Debug, Default)]
struct IpPretty {
    depth: usize,
    /// Per open container: whether it has had an element yet.
    had: Vec<bool>,
}

impl IpPretty {
    fn newline<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.depth {
            w.write_all(b"    ")?;
        }
        Ok(())
    }
}

impl Formatter for IpPretty {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.had.push(false);
        w.write_all(b"[ ")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if self.had.pop().unwrap_or(false) {
            w.write_all(b" ")?;
        }
        w.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if let Some(had) = self.had.last_mut() {
            *had = true;
        }
        if first { Ok(()) } else { w.write_all(b",") }
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.had.push(false);
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if self.had.pop().unwrap_or(false) {
            self.newline(w)?;
        }
        w.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if let Some(had) = self.had.last_mut() {
            *had = true;
        }
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// `value` as iproute2 prints it with `-j` (compact) or `-j -p` (pretty),
/// followed by a newline.
pub(crate) fn render<T: Serialize>(value: &T, pretty: bool) -> String {
    let mut out = Vec::new();
    let written = if pretty {
        let mut ser = serde_json::Serializer::with_formatter(&mut out, IpPretty::default());
        value.serialize(&mut ser)
    } else {
        let mut ser = serde_json::Serializer::new(&mut out);
        value.serialize(&mut ser)
    };
    // Serializing plain structs of strings and integers into a Vec cannot fail.
    debug_assert!(written.is_ok());
    out.push(b'\n');
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Entry {
        name: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<i32>,
    }

    #[test]
    fn compact_matches_ip() {
        let v = vec![
            Entry {
                name: "c",
                id: None,
            },
            Entry {
                name: "a",
                id: Some(5),
            },
        ];
        assert_eq!(
            render(&v, false),
            "[{\"name\":\"c\"},{\"name\":\"a\",\"id\":5}]\n"
        );
    }

    #[test]
    fn pretty_matches_ip() {
        let v = vec![
            Entry {
                name: "c",
                id: None,
            },
            Entry {
                name: "a",
                id: Some(5),
            },
        ];
        let want = "[ {\n        \"name\": \"c\"\n    },{\n        \"name\": \"a\",\n        \"id\": 5\n    } ]\n";
        assert_eq!(render(&v, true), want);
        let empty: Vec<Entry> = Vec::new();
        assert_eq!(render(&empty, true), "[ ]\n");
        assert_eq!(render(&empty, false), "[]\n");
    }
}
