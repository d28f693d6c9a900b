//! `decode_state` on arbitrary bytes, as a replay meets them on a shared topic.
//!
//! Properties:
//! * it never panics (nor overflows: built with overflow checks);
//! * a decoded state is in the form the wire gives back: its JSON-text fields
//!   are already normalized (no surrounding whitespace, never the text `null`);
//! * a decoded state re-encodes: decoding refuses what the encoder would
//!   (a JSON-text field nested deeper than 10 000 levels, a time whose UTC
//!   year leaves 0..=9999 once its offset is applied), so whatever a replay
//!   accepts, a host can serve and write again;
//! * the encoding decodes to an equal state, and encoding that gives
//!   the same bytes again (the encoding is canonical);
//! * the decoder's fast path, whenever it answers, answers what the general
//!   decoder (`json.Unmarshal`'s rules) does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wf_host::model::{decode_state, encode_state};

fuzz_target!(|data: &[u8]| {
    if let (Some(fast), general) = wf_host::fuzzing::decode_both_paths(data) {
        assert_eq!(
            Ok(fast),
            general,
            "the fast path agrees with the general decoder"
        );
    }
    let Ok(state) = decode_state(data) else {
        return;
    };
    let mut normalized = state.clone();
    normalized.normalize_json_fields();
    assert_eq!(normalized, state, "decoded JSON-text fields are normalized");

    let encoded = encode_state(&state)
        .unwrap_or_else(|e| panic!("a decoded state does not encode: {e}\nstate: {state:?}"));
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
