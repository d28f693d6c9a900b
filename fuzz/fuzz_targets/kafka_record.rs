//! The Kafka store's record decoder (`decode_record`) on arbitrary records:
//! an optional key and an optional value.
//!
//! Input layout (so that hand-written seeds stay readable): byte 0 is flags
//! (bit 0: key present, bit 1: value present, bit 2: take the key from the
//! value's own `WorkflowID`, so that valid records are reached), byte 1 the
//! key's length `n`, the next `n` bytes the key, the rest the value.
//!
//! Properties, the decoder's contract with replay:
//! * no key or an empty key is `MissingKey`; a non-UTF-8 key `KeyNotUtf8`;
//! * no value is a tombstone for exactly that key;
//! * a value is accepted iff `decode_state` accepts it and its `WorkflowID`
//!   is the key; then the record's key is the state's `WorkflowID` and the
//!   state is the decoded one with its JSON-text fields normalized (so the
//!   cache holds what a save through any backend would keep);
//! * a value that does not decode is `BadValue` with the decoder's message, and
//!   one naming another workflow is `KeyMismatch` with both ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wf_host::model::decode_state;
use wf_store_kafka::fuzzing::{KafkaRecord, Skip, kafka_record};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (key_len, rest) = rest.split_first().map_or((0, rest), |(&n, r)| (n, r));
    let key_len = usize::from(key_len).min(rest.len());
    let (key, value) = rest.split_at(key_len);
    let value = (flags & 2 != 0).then_some(value);
    let decoded = value.map(decode_state);
    let id_from_value = decoded
        .as_ref()
        .and_then(|d| d.as_ref().ok())
        .map(|s| s.workflow_id.as_bytes().to_vec());
    let key = match (flags & 1 != 0, flags & 4 != 0, &id_from_value) {
        (_, true, Some(id)) => Some(id.as_slice()),
        (true, _, _) => Some(key),
        (false, _, _) => None,
    };

    let got = kafka_record(key, value);

    let key_text = match key {
        None | Some([]) => {
            assert_eq!(got, Err(Skip::MissingKey));
            return;
        }
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                assert_eq!(got, Err(Skip::KeyNotUtf8));
                return;
            }
        },
    };
    match decoded {
        None => assert_eq!(
            got,
            Ok(KafkaRecord {
                key: key_text.to_owned(),
                state: None
            }),
            "a record without a value is a tombstone of its key"
        ),
        Some(Err(e)) => assert_eq!(got, Err(Skip::BadValue(e.to_string()))),
        Some(Ok(state)) if state.workflow_id != key_text => assert_eq!(
            got,
            Err(Skip::KeyMismatch {
                key: key_text.to_owned(),
                workflow_id: state.workflow_id
            })
        ),
        Some(Ok(mut state)) => {
            let record = got.expect("a record whose value names its key is accepted");
            assert_eq!(record.key, key_text);
            let kept = record.state.expect("a value is not a tombstone");
            assert_eq!(kept.workflow_id, record.key, "key == WorkflowID");
            state.normalize_json_fields();
            assert_eq!(kept, state, "the record holds the normalized decoded state");
        }
    }
});
