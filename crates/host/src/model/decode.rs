//! Decoding, accepting what Go's `json.Unmarshal` accepts.

use std::cell::RefCell;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::*;

pub(super) const STATE_FIELDS: [&str; 9] = [
    "WorkflowID",
    "RunID",
    "Status",
    "Input",
    "Result",
    "Error",
    "History",
    "CreatedAt",
    "UpdatedAt",
];
pub(super) const EVENT_FIELDS: [&str; 10] = [
    "ID",
    "Type",
    "Timestamp",
    "ActivityName",
    "Input",
    "Result",
    "Error",
    "SignalName",
    "SignalPayload",
    "Duration",
];

/// Decodes bytes written by Go's `json.Marshal` (or [`encode_state`]), with
/// `json.Unmarshal`'s rules: field names match case-insensitively, unknown
/// fields are ignored, missing fields are zero ([`Timestamp::GO_ZERO`] for
/// times), `null` leaves a field unchanged (clears `History` and the JSON-text
/// fields), and JSON-text fields keep their exact raw text.
///
/// Fails for non-objects, wrong JSON types, malformed timestamps, non-integer
/// or out-of-range numbers, and unknown (or missing) status or event types.
pub fn decode_state(bytes: &[u8]) -> Result<WorkflowState, ModelError> {
    match decode_canonical(bytes) {
        Some(state) => Ok(state),
        None => decode_general(bytes),
    }
}

/// [`decode_state`] without its fast path: every input decides here.
pub(crate) fn decode_general(bytes: &[u8]) -> Result<WorkflowState, ModelError> {
    let ctx = Ctx::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = StateSeed(&ctx)
        .deserialize(&mut de)
        .and_then(|state| de.end().map(|()| state));
    result.map_err(|e| {
        ctx.0
            .into_inner()
            .unwrap_or_else(|| ModelError::NotAState(e.to_string()))
    })
}

/// Whether `key` equals the ASCII field `name` under Go's `encoding/json`
/// folding: ASCII case-insensitive, with `ſ` (U+017F) as `s` and the Kelvin
/// sign (U+212A) as `k`.
pub(super) fn fold_eq(key: &str, name: &str) -> bool {
    let mut name = name.bytes();
    key.chars().all(|c| {
        let folded = match c {
            '\u{17F}' => b'S',
            '\u{212A}' => b'K',
            c if c.is_ascii() => (c as u8).to_ascii_uppercase(),
            _ => return false,
        };
        name.next()
            .is_some_and(|n| n.to_ascii_uppercase() == folded)
    }) && name.next().is_none()
}

/// The first error noted while decoding, with its field; the serde error that
/// aborts the parse only carries it up.
#[derive(Default)]
struct Ctx(RefCell<Option<ModelError>>);

impl Ctx {
    fn fail<E: de::Error>(&self, err: ModelError) -> E {
        let e = E::custom(&err);
        self.0.borrow_mut().get_or_insert(err);
        e
    }

    fn note(&self, field: impl FnOnce() -> String, e: &impl fmt::Display) {
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(ModelError::InvalidField {
                field: field(),
                message: e.to_string(),
            });
        }
    }

    fn value<'de, A: MapAccess<'de>, S: DeserializeSeed<'de>>(
        &self,
        map: &mut A,
        seed: S,
        field: impl FnOnce() -> String,
    ) -> Result<S::Value, A::Error> {
        map.next_value_seed(seed)
            .inspect_err(|e| self.note(field, e))
    }

    fn string<'de, A: MapAccess<'de>>(
        &self,
        map: &mut A,
        slot: &mut String,
        field: impl FnOnce() -> String,
    ) -> Result<(), A::Error> {
        if let Some(s) = self.value(map, PhantomData::<Option<String>>, field)? {
            *slot = s;
        }
        Ok(())
    }

    fn json<'de, A: MapAccess<'de>>(
        &self,
        map: &mut A,
        field: impl Fn() -> String,
    ) -> Result<Option<Json>, A::Error> {
        let raw = self.value(map, PhantomData::<Option<&'de RawValue>>, &field)?;
        let Some(raw) = raw else { return Ok(None) };
        // The encoder's one rule for JSON fields: a record holding what it
        // would refuse is refused here, so whatever replay reads, a host can
        // serve and write again.
        encode::check_depth(raw.get()).map_err(|message| {
            self.fail(ModelError::InvalidJson {
                field: field(),
                message,
            })
        })?;
        Ok(Some(raw.get().to_owned()))
    }

    fn time<'de, A: MapAccess<'de>>(
        &self,
        map: &mut A,
        slot: &mut Timestamp,
        field: impl Fn() -> String,
    ) -> Result<(), A::Error> {
        let raw = self.value(map, PhantomData::<&'de RawValue>, &field)?.get();
        // Like Go's UnmarshalJSON: no-op for null; the raw bytes between the
        // quotes are parsed as they are (escapes are not decoded).
        if raw == "null" {
            return Ok(());
        }
        let err = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            // A time the encoder cannot write (a year past 9999 once the
            // offset is applied) is refused as Go's encoder refuses it.
            Some(inner) => match parse_rfc3339(inner.as_bytes()).filter(|t| time::writable(*t)) {
                Some(t) => {
                    *slot = t;
                    return Ok(());
                }
                None => ModelError::InvalidTimestamp {
                    field: field(),
                    value: inner.to_owned(),
                },
            },
            None => ModelError::InvalidField {
                field: field(),
                message: format!(
                    "expected an RFC 3339 timestamp string, found {}",
                    describe(raw)
                ),
            },
        };
        Err(self.fail(err))
    }

    /// A Go `int64`: a JSON integer literal in range; `None` for null.
    fn int<'de, A: MapAccess<'de>>(
        &self,
        map: &mut A,
        field: impl Fn() -> String,
    ) -> Result<Option<i64>, A::Error> {
        let raw = self.value(map, PhantomData::<&'de RawValue>, &field)?.get();
        let message = match raw.as_bytes().first() {
            Some(b'n') => return Ok(None),
            Some(b'-' | b'0'..=b'9') => match raw.parse::<i64>() {
                Ok(n) => return Ok(Some(n)),
                Err(_) if raw.contains(['.', 'e', 'E']) => {
                    format!("expected an integer, found {raw}")
                }
                Err(_) => format!("integer {raw} is out of the int64 range"),
            },
            _ => format!("expected an integer, found {}", describe(raw)),
        };
        Err(self.fail(ModelError::InvalidField {
            field: field(),
            message,
        }))
    }
}

/// Names the JSON type of a raw value, or gives a number's text.
pub(super) fn describe(raw: &str) -> &str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        _ => raw,
    }
}

/// Deserializes a map key into the canonical name of the field it matches.
struct KeySeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|name| fold_eq(key, name)))
    }
}

struct StateSeed<'a>(&'a Ctx);

impl<'de> DeserializeSeed<'de> for StateSeed<'_> {
    type Value = WorkflowState;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<WorkflowState, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StateSeed<'_> {
    type Value = WorkflowState;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WorkflowState, A::Error> {
        let ctx = self.0;
        let (mut workflow_id, mut run_id, mut status, mut error) =
            (String::new(), String::new(), String::new(), String::new());
        let (mut input, mut result, mut history) = (None, None, Vec::new());
        let (mut created_at, mut updated_at) = (Timestamp::GO_ZERO, Timestamp::GO_ZERO);
        while let Some(key) = map.next_key_seed(KeySeed(&STATE_FIELDS))? {
            let name = key.unwrap_or("");
            let field = move || name.to_owned();
            match name {
                "WorkflowID" => ctx.string(&mut map, &mut workflow_id, field)?,
                "RunID" => ctx.string(&mut map, &mut run_id, field)?,
                "Status" => ctx.string(&mut map, &mut status, field)?,
                "Input" => input = ctx.json(&mut map, field)?,
                "Result" => result = ctx.json(&mut map, field)?,
                "Error" => ctx.string(&mut map, &mut error, field)?,
                "History" => history = ctx.value(&mut map, HistorySeed(ctx), field)?,
                "CreatedAt" => ctx.time(&mut map, &mut created_at, field)?,
                "UpdatedAt" => ctx.time(&mut map, &mut updated_at, field)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let status = status.parse().map_err(|e| ctx.fail(e))?;
        Ok(WorkflowState {
            workflow_id,
            run_id,
            status,
            input,
            result,
            error,
            history,
            created_at,
            updated_at,
        })
    }
}

struct HistorySeed<'a>(&'a Ctx);

impl<'de> DeserializeSeed<'de> for HistorySeed<'_> {
    type Value = Vec<HistoryEvent>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HistorySeed<'_> {
    type Value = Vec<HistoryEvent>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of history events or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut events = Vec::new();
        loop {
            let index = events.len();
            match seq.next_element_seed(EventSeed { ctx: self.0, index }) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => return Ok(events),
                Err(e) => {
                    self.0.note(|| format!("History[{index}]"), &e);
                    return Err(e);
                }
            }
        }
    }
}

struct EventSeed<'a> {
    ctx: &'a Ctx,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = HistoryEvent;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<HistoryEvent, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = HistoryEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a history event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HistoryEvent, A::Error> {
        let (ctx, index) = (self.ctx, self.index);
        let mut e = HistoryEvent::new(0, EventType::WorkflowStarted, Timestamp::GO_ZERO);
        let mut kind = String::new();
        while let Some(key) = map.next_key_seed(KeySeed(&EVENT_FIELDS))? {
            let name = key.unwrap_or("");
            let field = move || format!("History[{index}].{name}");
            match name {
                "ID" => {
                    if let Some(id) = ctx.int(&mut map, field)? {
                        e.id = u64::try_from(id).map_err(|_| {
                            ctx.fail(ModelError::InvalidField {
                                field: field(),
                                message: format!("must not be negative, found {id}"),
                            })
                        })?;
                    }
                }
                "Type" => ctx.string(&mut map, &mut kind, field)?,
                "Timestamp" => ctx.time(&mut map, &mut e.timestamp, field)?,
                "ActivityName" => ctx.string(&mut map, &mut e.activity_name, field)?,
                "Input" => e.input = ctx.json(&mut map, field)?,
                "Result" => e.result = ctx.json(&mut map, field)?,
                "Error" => ctx.string(&mut map, &mut e.error, field)?,
                "SignalName" => ctx.string(&mut map, &mut e.signal_name, field)?,
                "SignalPayload" => e.signal_payload = ctx.json(&mut map, field)?,
                "Duration" => {
                    if let Some(ns) = ctx.int(&mut map, field)? {
                        e.duration_ns = ns;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        e.kind = match kind.parse() {
            Ok(k) => k,
            Err(_) => {
                return Err(ctx.fail(ModelError::UnknownEventType {
                    field: format!("History[{index}].Type"),
                    value: kind,
                }));
            }
        };
        Ok(e)
    }
}
