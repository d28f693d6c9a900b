//! The fast path of [`decode_state`](super::decode_state): one pass over the
//! bytes for the form Go's `json.Marshal` and [`encode_state`](super::encode_state)
//! write (canonical field names, strings without `\u` surrogates or control
//! characters, integer numbers where Go has `int64`).
//!
//! It gives up (`None`) at the first thing outside that form — a folded or
//! unknown field name, a `null` where the encoder never writes one, an
//! error of any kind — and the general decoder then decides with
//! `json.Unmarshal`'s full rules. So it never decides anything the general
//! decoder would decide differently; the fuzz target of `decode_state`
//! checks that on every input it accepts.

use super::*;

/// The bytes that end a plain run of a JSON string: a quote, a backslash,
/// or a control character.
const STOPS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// JSON nested deeper than this leaves the fast path (the general decoder
/// allows up to [`encode::MAX_DEPTH`]).
const FAST_DEPTH: usize = 64;

/// Decodes `bytes` if they are in the canonical form; `None` otherwise.
pub(crate) fn decode_canonical(bytes: &[u8]) -> Option<WorkflowState> {
    // One check of the whole input makes every slice of it a `&str`.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut scan = Scan { text, at: 0 };
    let state = scan.state()?;
    scan.skip_ws();
    (scan.at == text.len()).then_some(state)
}

struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn eat_literal(&mut self, literal: &str) -> bool {
        self.skip_ws();
        let hit = self.text[self.at..].starts_with(literal);
        if hit {
            self.at += literal.len();
        }
        hit
    }

    /// A string with no escapes and no control characters, without its quotes.
    fn plain_str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let len = self.bytes()[start..]
            .iter()
            .position(|&b| STOPS[usize::from(b)])?;
        if self.bytes()[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// A Go `int64`: an integer literal in range.
    fn int(&mut self) -> Option<i64> {
        self.skip_ws();
        let start = self.at;
        let bytes = self.bytes();
        let mut end = start + usize::from(bytes.get(start) == Some(&b'-'));
        let digits = bytes[end..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        // No leading zeros, no fraction or exponent: the general decoder
        // says why such numbers are refused.
        if digits == 0 || (digits > 1 && bytes[end] == b'0') {
            return None;
        }
        end += digits;
        if matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.at = end;
        self.text[start..end].parse().ok()
    }

    fn time(&mut self) -> Option<Timestamp> {
        let text = self.plain_str()?;
        parse_rfc3339(text.as_bytes()).filter(|t| time::writable(*t))
    }

    /// A JSON-text field: `None` for `null`, else the value's exact text.
    fn json(&mut self) -> Option<Option<Json>> {
        if self.eat_literal("null") {
            return Some(None);
        }
        let start = self.at;
        self.value(0)?;
        Some(Some(self.text[start..self.at].to_owned()))
    }

    /// Skips one valid JSON value (after whitespace), as strictly as serde_json.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.any_str(),
            b'{' if depth < FAST_DEPTH => self.items(b'{', b'}', |scan| {
                scan.any_str()?;
                scan.eat(b':')?;
                scan.value(depth + 1)
            }),
            b'[' if depth < FAST_DEPTH => self.items(b'[', b']', |scan| scan.value(depth + 1)),
            b'{' | b'[' => None,
            b't' => self.eat_literal("true").then_some(()),
            b'f' => self.eat_literal("false").then_some(()),
            b'n' => self.eat_literal("null").then_some(()),
            _ => self.number(),
        }
    }

    /// A string with any escapes but `\u` surrogates, and no control characters.
    fn any_str(&mut self) -> Option<()> {
        self.eat(b'"')?;
        let bytes = self.bytes();
        loop {
            let len = bytes[self.at..]
                .iter()
                .position(|&b| STOPS[usize::from(b)])?;
            self.at += len;
            match bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => match bytes.get(self.at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                    b'u' => {
                        let hex = self.text.get(self.at + 2..self.at + 6)?;
                        let unit = u16::from_str_radix(hex, 16).ok()?;
                        if hex.starts_with('+') || (0xD800..=0xDFFF).contains(&unit) {
                            return None;
                        }
                        self.at += 6;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let bytes = self.bytes();
        let digits = |at: usize| {
            bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut at = self.at + usize::from(bytes.get(self.at) == Some(&b'-'));
        match digits(at) {
            0 => return None,
            n if n > 1 && bytes[at] == b'0' => return None,
            n => at += n,
        }
        if bytes.get(at) == Some(&b'.') {
            match digits(at + 1) {
                0 => return None,
                n => at += 1 + n,
            }
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            match digits(at) {
                0 => return None,
                n => at += n,
            }
        }
        self.at = at;
        Some(())
    }

    /// Calls `item` for each item between `open` and `close`, which are
    /// separated by commas (an object's members, an array's elements).
    fn items(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b if b == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Calls `field` for each member of an object, with the field's name.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.items(b'{', b'}', |scan| {
            let name = scan.plain_str()?;
            scan.eat(b':')?;
            field(scan, name)
        })
    }

    fn state(&mut self) -> Option<WorkflowState> {
        let mut state = WorkflowState::new(String::new(), String::new(), WorkflowStatus::Running);
        let mut status = None;
        self.object(|scan, name| {
            match name {
                "WorkflowID" => state.workflow_id = scan.plain_str()?.to_owned(),
                "RunID" => state.run_id = scan.plain_str()?.to_owned(),
                "Status" => status = Some(scan.plain_str()?.parse().ok()?),
                "Input" => state.input = scan.json()?,
                "Result" => state.result = scan.json()?,
                "Error" => state.error = scan.plain_str()?.to_owned(),
                "History" => state.history = scan.history()?,
                "CreatedAt" => state.created_at = scan.time()?,
                "UpdatedAt" => state.updated_at = scan.time()?,
                _ => return None,
            }
            Some(())
        })?;
        state.status = status?;
        Some(state)
    }

    fn history(&mut self) -> Option<Vec<HistoryEvent>> {
        if self.eat_literal("null") {
            return Some(Vec::new());
        }
        let mut events = Vec::new();
        self.items(b'[', b']', |scan| {
            events.push(scan.event()?);
            Some(())
        })?;
        Some(events)
    }

    fn event(&mut self) -> Option<HistoryEvent> {
        let mut event = HistoryEvent::new(0, EventType::WorkflowStarted, Timestamp::GO_ZERO);
        let mut kind = None;
        self.object(|scan, name| {
            match name {
                "ID" => event.id = u64::try_from(scan.int()?).ok()?,
                "Type" => kind = Some(scan.plain_str()?.parse().ok()?),
                "Timestamp" => event.timestamp = scan.time()?,
                "ActivityName" => event.activity_name = scan.plain_str()?.to_owned(),
                "Input" => event.input = scan.json()?,
                "Result" => event.result = scan.json()?,
                "Error" => event.error = scan.plain_str()?.to_owned(),
                "SignalName" => event.signal_name = scan.plain_str()?.to_owned(),
                "SignalPayload" => event.signal_payload = scan.json()?,
                "Duration" => event.duration_ns = scan.int()?,
                _ => return None,
            }
            Some(())
        })?;
        event.kind = kind?;
        Some(event)
    }
}
