//! `decode_state` on arbitrary bytes, as a replay meets them on a shared topic.
//!
//! Properties:
//! * it never panics (nor overflows: built with overflow checks);
//! * a decoded state is in the form the wire gives back: its JSON-text fields
//!   are already normalized (no surrounding whitespace, never the text `null`);
//! * re-encoding a decoded state fails only for the reasons decoding does not
//!   rule out, because decoding keeps JSON-text fields as raw text that is
//!   only checked to be JSON, and `json.Unmarshal` accepts times that
//!   `json.Marshal` cannot write: a time whose UTC year leaves 0..=9999 after
//!   its offset is applied (`0000-01-01T00:00:00+01:00`), a JSON-text field
//!   nested deeper than the 127 levels the encoder allows (Go decodes up to
//!   10000), or one holding a number out of the float64 range (`1e400`,
//!   which the Go provider could not decode into an `any`, so the encoder's
//!   check refuses it while the decoder keeps raw text);
//! * otherwise the encoding decodes to an equal state, and encoding that gives
//!   the same bytes again (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wf_host::model::{ModelError, decode_state, encode_state};

fuzz_target!(|data: &[u8]| {
    let Ok(state) = decode_state(data) else {
        return;
    };
    let mut normalized = state.clone();
    normalized.normalize_json_fields();
    assert_eq!(normalized, state, "decoded JSON-text fields are normalized");

    let encoded = match encode_state(&state) {
        Ok(encoded) => encoded,
        Err(ModelError::YearOutOfRange { .. }) => return,
        Err(ModelError::InvalidJson { message, .. }) if encoder_stricter(&message) => return,
        Err(e) => panic!("a decoded state does not encode: {e}\nstate: {state:?}"),
    };
    let again = decode_state(&encoded).unwrap_or_else(|e| {
        panic!(
            "an encoded state does not decode: {e}\nencoded: {}",
            String::from_utf8_lossy(&encoded)
        )
    });
    assert_eq!(again, state, "decode(encode(s)) == s");
    assert_eq!(
        encode_state(&again).expect("re-encode"),
        encoded,
        "encode is canonical"
    );
});

/// Whether `message` (from the encoder's JSON check) is one of the reasons the
/// encoder refuses raw JSON text that decoding keeps.
fn encoder_stricter(message: &str) -> bool {
    ["nesting deeper than 127 levels", "number out of range"]
        .iter()
        .any(|reason| message.starts_with(reason))
}
