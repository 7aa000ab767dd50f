//! A small JSON Lines writer (objects of strings, numbers, booleans, arrays).
//!
//! Every object carries `"ptar_json":1`. Fields may be added in later
//! versions; consumers must ignore fields they do not know (the rule restic
//! states for its `--json`).

/// Escapes a string for JSON.
pub fn string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A JSON object being built, field by field.
pub struct Obj(String);

impl Obj {
    /// `{"ptar_json":1,"message_type":KIND`.
    pub fn new(kind: &str) -> Obj {
        Obj(format!(
            "{{\"ptar_json\":1,\"message_type\":{}",
            string(kind)
        ))
    }

    fn key(&mut self, k: &str) {
        self.0.push(',');
        self.0.push_str(&string(k));
        self.0.push(':');
    }

    /// A string field.
    pub fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        self.0.push_str(&string(v));
        self
    }

    /// A byte-string field (paths): UTF-8 when possible, with invalid bytes replaced.
    pub fn bytes(self, k: &str, v: &[u8]) -> Obj {
        self.str(k, &String::from_utf8_lossy(v))
    }

    /// A number field.
    pub fn num(mut self, k: &str, v: impl Into<i128>) -> Obj {
        self.key(k);
        self.0.push_str(&v.into().to_string());
        self
    }

    /// A boolean field.
    pub fn bool(mut self, k: &str, v: bool) -> Obj {
        self.key(k);
        self.0.push_str(if v { "true" } else { "false" });
        self
    }

    /// An array of strings.
    pub fn strs<'a>(mut self, k: &str, v: impl IntoIterator<Item = &'a str>) -> Obj {
        self.key(k);
        let items: Vec<String> = v.into_iter().map(string).collect();
        self.0.push('[');
        self.0.push_str(&items.join(","));
        self.0.push(']');
        self
    }

    /// The finished line (no newline).
    pub fn done(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        let o = Obj::new("x")
            .num("n", 5u64)
            .bool("b", true)
            .strs("l", ["p", "q"])
            .done();
        assert_eq!(
            o,
            "{\"ptar_json\":1,\"message_type\":\"x\",\"n\":5,\"b\":true,\"l\":[\"p\",\"q\"]}"
        );
    }
}
