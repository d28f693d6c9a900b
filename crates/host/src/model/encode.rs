//! Encoding, byte for byte as Go's `json.Marshal`.

use super::*;

/// The deepest nesting of arrays and objects accepted in a JSON field: Go's
/// decoder's limit, so that what a Go writer can write, a host can read,
/// serve and write again.
pub const MAX_DEPTH: usize = 10_000;

/// Checks that `text` is exactly one valid JSON value (surrounding whitespace
/// allowed) nested at most [`MAX_DEPTH`] levels deep. Numbers are kept as
/// written, whatever their range (Go's `json.RawMessage` keeps them too).
/// `field` names the field in the error, e.g. `Input`. The one rule for
/// JSON fields: saves, inputs, results, replayed records and re-encoding
/// all apply it, so whatever a host accepts it can serve.
pub fn validate_json(field: &str, text: &str) -> Result<(), ModelError> {
    check_json(text).map_err(|message| ModelError::InvalidJson {
        field: field.to_owned(),
        message,
    })
}

pub(super) fn check_json(text: &str) -> Result<(), String> {
    // serde_json reads a raw value without recursion (and so without a depth
    // limit); the depth is bounded here.
    serde_json::from_str::<&serde_json::value::RawValue>(text).map_err(|e| e.to_string())?;
    check_depth(text)
}

/// For text already known to be valid JSON: refuses nesting deeper than
/// [`MAX_DEPTH`].
pub(super) fn check_depth(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    // Each level opens with a byte of its own: a text this short cannot
    // nest too deep, and a typical field is skipped without a scan.
    if bytes.len() <= MAX_DEPTH {
        return Ok(());
    }
    let at = |i: usize| {
        let before = &bytes[..i];
        let line = 1 + before.iter().filter(|&&c| c == b'\n').count();
        let column = i - before
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |p| p + 1)
            + 1;
        format!("at line {line} column {column}")
    };
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} levels {}", at(i)));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A cheap estimate of the encoded size of `state`, in bytes (used as the
/// initial capacity by [`encode_state`]).
pub fn encoded_len_hint(state: &WorkflowState) -> usize {
    const STATE_OVERHEAD: usize = 200;
    const EVENT_OVERHEAD: usize = 224;
    let json = |j: &Option<Json>| j.as_ref().map_or(4, String::len);
    let events: usize = state
        .history
        .iter()
        .map(|e| {
            EVENT_OVERHEAD
                + e.activity_name.len()
                + e.error.len()
                + e.signal_name.len()
                + json(&e.input)
                + json(&e.result)
                + json(&e.signal_payload)
        })
        .sum();
    STATE_OVERHEAD
        + state.workflow_id.len()
        + state.run_id.len()
        + json(&state.input)
        + json(&state.result)
        + state.error.len()
        + events
}

/// Encodes `state` as Go's `json.Marshal` does. The JSON-text fields are
/// validated ([`validate_json`]) and embedded verbatim.
///
/// Fails for invalid JSON fields, timestamps outside years 0..=9999, and event
/// ids over `i64::MAX`.
pub fn encode_state(state: &WorkflowState) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::with_capacity(encoded_len_hint(state));
    out.extend_from_slice(b"{\"WorkflowID\":");
    write_str(&mut out, &state.workflow_id);
    out.extend_from_slice(b",\"RunID\":");
    write_str(&mut out, &state.run_id);
    out.extend_from_slice(b",\"Status\":\"");
    out.extend_from_slice(state.status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"Input\":");
    write_json(&mut out, state.input.as_deref(), || "Input".to_owned())?;
    out.extend_from_slice(b",\"Result\":");
    write_json(&mut out, state.result.as_deref(), || "Result".to_owned())?;
    out.extend_from_slice(b",\"Error\":");
    write_str(&mut out, &state.error);
    out.extend_from_slice(b",\"History\":");
    if state.history.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        for (i, event) in state.history.iter().enumerate() {
            out.push(if i == 0 { b'[' } else { b',' });
            write_event(&mut out, i, event)?;
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"CreatedAt\":");
    write_time(&mut out, state.created_at, || "CreatedAt".to_owned())?;
    out.extend_from_slice(b",\"UpdatedAt\":");
    write_time(&mut out, state.updated_at, || "UpdatedAt".to_owned())?;
    out.push(b'}');
    Ok(out)
}

pub(super) fn write_event(
    out: &mut Vec<u8>,
    index: usize,
    e: &HistoryEvent,
) -> Result<(), ModelError> {
    let field = |name: &'static str| move || format!("History[{index}].{name}");
    let id = i64::try_from(e.id).map_err(|_| ModelError::InvalidField {
        field: field("ID")(),
        message: format!("{} is over the Go int64 maximum", e.id),
    })?;
    out.extend_from_slice(b"{\"ID\":");
    write_i64(out, id);
    out.extend_from_slice(b",\"Type\":\"");
    out.extend_from_slice(e.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"Timestamp\":");
    write_time(out, e.timestamp, field("Timestamp"))?;
    out.extend_from_slice(b",\"ActivityName\":");
    write_str(out, &e.activity_name);
    out.extend_from_slice(b",\"Input\":");
    write_json(out, e.input.as_deref(), field("Input"))?;
    out.extend_from_slice(b",\"Result\":");
    write_json(out, e.result.as_deref(), field("Result"))?;
    out.extend_from_slice(b",\"Error\":");
    write_str(out, &e.error);
    out.extend_from_slice(b",\"SignalName\":");
    write_str(out, &e.signal_name);
    out.extend_from_slice(b",\"SignalPayload\":");
    write_json(out, e.signal_payload.as_deref(), field("SignalPayload"))?;
    out.extend_from_slice(b",\"Duration\":");
    write_i64(out, e.duration_ns);
    out.push(b'}');
    Ok(())
}

pub(super) fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

pub(super) fn write_time(
    out: &mut Vec<u8>,
    t: Timestamp,
    field: impl FnOnce() -> String,
) -> Result<(), ModelError> {
    out.push(b'"');
    append_rfc3339(out, t).map_err(|e| e.at(field()))?;
    out.push(b'"');
    Ok(())
}

pub(super) fn write_json(
    out: &mut Vec<u8>,
    json: Option<&str>,
    field: impl FnOnce() -> String,
) -> Result<(), ModelError> {
    match json {
        None => out.extend_from_slice(b"null"),
        Some(text) => {
            check_json(text).map_err(|message| ModelError::InvalidJson {
                field: field(),
                message,
            })?;
            out.extend_from_slice(text.as_bytes());
        }
    }
    Ok(())
}

/// Escape class of each byte: 0 = copy, `u` = `\u00XX`, `LS` = maybe the lead
/// byte of U+2028/U+2029, anything else = `\` followed by that byte.
pub(super) const LS: u8 = 1;
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'<' as usize] = b'u';
    t[b'>' as usize] = b'u';
    t[b'&' as usize] = b'u';
    t[0xE2] = LS;
    t
};

/// Writes `s` as a JSON string escaped exactly like Go's `json.Marshal`.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        match ESCAPE[usize::from(b)] {
            0 => {
                i += 1;
                continue;
            }
            LS => {
                // U+2028 is E2 80 A8 and U+2029 is E2 80 A9.
                if !(bytes.get(i + 1) == Some(&0x80)
                    && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)))
                {
                    i += 1;
                    continue;
                }
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(if bytes[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
            }
            b'u' => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
                i += 1;
            }
            short => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(&[b'\\', short]);
                i += 1;
            }
        }
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}
