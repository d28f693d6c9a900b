//! Hand-checked samples of the wire format.

use super::decode::fold_eq;
use super::encode::write_str;
use super::time::{civil_from_days, days_from_civil, days_in_month};
use super::*;

/// 2024-01-02T03:04:05Z.
const T0: i64 = 1_704_164_645;

fn ts(seconds: i64, nanoseconds: u32) -> Timestamp {
    Timestamp {
        seconds,
        nanoseconds,
    }
}

fn state(status: WorkflowStatus) -> WorkflowState {
    WorkflowState {
        workflow_id: "wf-1".into(),
        run_id: "run-1".into(),
        status,
        input: None,
        result: None,
        error: String::new(),
        history: Vec::new(),
        created_at: ts(T0, 0),
        updated_at: ts(T0, 0),
    }
}

fn encode_str(s: &WorkflowState) -> String {
    String::from_utf8(encode_state(s).unwrap()).unwrap()
}

/// Decodes as `decode_state` does, checking on the way that its fast path,
/// whenever it answers, agrees with the general decoder.
fn decode(text: &str) -> Result<WorkflowState, ModelError> {
    let general = decode_general(text.as_bytes());
    if let Some(fast) = decode_canonical(text.as_bytes()) {
        assert_eq!(Ok(&fast), general.as_ref(), "fast path on {text}");
    }
    general
}

#[test]
fn the_fast_path_takes_the_canonical_form_and_leaves_the_rest() {
    let mut state = state(WorkflowStatus::Running);
    state.input = Some(r#"{"a":[1,-2.5e3,true,null,"\u00e9\n"],"b":{}}"#.into());
    let mut event = HistoryEvent::new(7, EventType::ActivityCompleted, ts(T0, 5));
    event.result = Some("[]".into());
    event.duration_ns = -3;
    state.history = vec![event];
    let canonical = encode_str(&state);
    assert_eq!(decode_canonical(canonical.as_bytes()), Some(state.clone()));
    assert_eq!(decode(&canonical).unwrap(), state);
    // Each of these is the general decoder's to decide: a folded name, an
    // unknown field, an escaped string, a null string, a lone surrogate, a
    // leading zero, a fraction where Go has an int64.
    for (from, to) in [
        ("\"RunID\"", "\"runid\""),
        ("\"RunID\"", "\"Extra\":1,\"RunID\""),
        ("\"WorkflowID\":\"", "\"WorkflowID\":\"\\u0061"),
        ("\"Error\":\"\"", "\"Error\":null"),
        ("\"b\":{}", "\"b\":\"\\ud800\""),
        ("\"ID\":7", "\"ID\":07"),
        ("\"Duration\":-3", "\"Duration\":-3.0"),
    ] {
        assert!(canonical.contains(from), "{from} in {canonical}");
        let text = canonical.replacen(from, to, 1);
        assert_eq!(decode_canonical(text.as_bytes()), None, "{text}");
        let _ = decode(&text);
    }
}

fn field_of(err: &ModelError) -> &str {
    match err {
        ModelError::UnknownEventType { field, .. }
        | ModelError::InvalidJson { field, .. }
        | ModelError::YearOutOfRange { field, .. }
        | ModelError::NanosecondsOutOfRange { field, .. }
        | ModelError::InvalidTimestamp { field, .. }
        | ModelError::InvalidField { field, .. } => field,
        other => panic!("no field in {other:?}"),
    }
}

fn escaped(s: &str) -> String {
    let mut out = Vec::new();
    write_str(&mut out, s);
    String::from_utf8(out).unwrap()
}

#[test]
fn encodes_a_full_state_like_go() {
    let mut s = state(WorkflowStatus::Completed);
    s.run_id = "run-<1>".into();
    s.input = Some(r#"{"order":42}"#.into());
    s.result = Some("[1,2]".into());
    s.updated_at = Timestamp::GO_ZERO;
    let mut started = HistoryEvent::new(1, EventType::WorkflowStarted, ts(T0, 100_000_000));
    started.input = Some(r#""hi""#.into());
    let mut done = HistoryEvent::new(2, EventType::ActivityCompleted, ts(T0, 123_456_789));
    done.activity_name = "charge".into();
    done.result = Some("true".into());
    done.error = "a\"b".into();
    done.duration_ns = 1_500_000_000;
    s.history = vec![started, done];
    let expected = concat!(
        r#"{"WorkflowID":"wf-1","RunID":"run-\u003c1\u003e","Status":"completed","#,
        r#""Input":{"order":42},"Result":[1,2],"Error":"","History":["#,
        r#"{"ID":1,"Type":"workflow_started","Timestamp":"2024-01-02T03:04:05.1Z","#,
        r#""ActivityName":"","Input":"hi","Result":null,"Error":"","SignalName":"","#,
        r#""SignalPayload":null,"Duration":0},"#,
        r#"{"ID":2,"Type":"activity_completed","Timestamp":"2024-01-02T03:04:05.123456789Z","#,
        r#""ActivityName":"charge","Input":null,"Result":true,"Error":"a\"b","SignalName":"","#,
        r#""SignalPayload":null,"Duration":1500000000}],"#,
        r#""CreatedAt":"2024-01-02T03:04:05Z","UpdatedAt":"0001-01-01T00:00:00Z"}"#
    );
    assert_eq!(encode_str(&s), expected);
    assert_eq!(decode(expected).unwrap(), s);
    assert!(encoded_len_hint(&s) >= expected.len());
}

#[test]
fn empty_history_is_null_and_null_history_is_empty() {
    let s = state(WorkflowStatus::Running);
    assert_eq!(
        encode_str(&s),
        concat!(
            r#"{"WorkflowID":"wf-1","RunID":"run-1","Status":"running","Input":null,"#,
            r#""Result":null,"Error":"","History":null,"CreatedAt":"2024-01-02T03:04:05Z","#,
            r#""UpdatedAt":"2024-01-02T03:04:05Z"}"#
        )
    );
    let d = decode(r#"{"Status":"running","History":null}"#).unwrap();
    assert!(d.history.is_empty());
    let d = decode(r#"{"Status":"running","History":[]}"#).unwrap();
    assert!(d.history.is_empty());
}

#[test]
fn formats_timestamps_like_go() {
    let f = |s, n| {
        Timestamp {
            seconds: s,
            nanoseconds: n,
        }
        .to_rfc3339()
        .unwrap()
    };
    assert_eq!(
        f(1_709_251_199, 123_456_789),
        "2024-02-29T23:59:59.123456789Z"
    );
    assert_eq!(f(T0, 500_000_000), "2024-01-02T03:04:05.5Z");
    assert_eq!(f(T0, 120_000), "2024-01-02T03:04:05.00012Z");
    assert_eq!(f(T0, 1), "2024-01-02T03:04:05.000000001Z");
    assert_eq!(f(T0, 0), "2024-01-02T03:04:05Z");
    assert_eq!(f(0, 0), "1970-01-01T00:00:00Z");
    assert_eq!(
        Timestamp::GO_ZERO.to_rfc3339().unwrap(),
        "0001-01-01T00:00:00Z"
    );
    assert_eq!(f(-1, 500_000_000), "1969-12-31T23:59:59.5Z");
    assert_eq!(f(-2_208_988_800, 0), "1900-01-01T00:00:00Z");
    assert_eq!(f(951_782_400, 0), "2000-02-29T00:00:00Z");
    assert_eq!(f(-62_167_219_200, 0), "0000-01-01T00:00:00Z");
    assert_eq!(
        f(253_402_300_799, 999_999_999),
        "9999-12-31T23:59:59.999999999Z"
    );
    assert_eq!(
        ts(253_402_300_800, 0).to_rfc3339(),
        Err(ModelError::YearOutOfRange {
            field: "timestamp".into(),
            year: 10000
        })
    );
    assert!(matches!(
        ts(-62_167_219_201, 0).to_rfc3339(),
        Err(ModelError::YearOutOfRange { year: -1, .. })
    ));
    assert!(matches!(
        ts(0, 1_000_000_000).to_rfc3339(),
        Err(ModelError::NanosecondsOutOfRange {
            nanoseconds: 1_000_000_000,
            ..
        })
    ));
    assert!(Timestamp::GO_ZERO.is_go_zero() && !Timestamp::default().is_go_zero());
    // Extreme values do not overflow.
    assert!(ts(i64::MAX, 0).to_rfc3339().is_err());
    assert!(ts(i64::MIN, 0).to_rfc3339().is_err());
}

#[test]
fn calendar_round_trips_every_day_in_range() {
    let first = days_from_civil(0, 1, 1);
    let last = days_from_civil(9999, 12, 31);
    let mut expected = (0, 1, 1);
    for day in first..=last {
        assert_eq!(civil_from_days(day), expected);
        let (y, m, d) = expected;
        expected = if d < days_in_month(y, m) {
            (y, m, d + 1)
        } else if m < 12 {
            (y, m + 1, 1)
        } else {
            (y + 1, 1, 1)
        };
    }
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(days_from_civil(-1, 12, 31), first - 1);
    assert_eq!(civil_from_days(first - 1), (-1, 12, 31));
}

#[test]
fn parses_timestamps_like_go() {
    let p = |s: &str| Timestamp::parse_rfc3339(s);
    assert_eq!(
        p("2024-02-29T23:59:59.123456789Z"),
        Ok(ts(1_709_251_199, 123_456_789))
    );
    assert_eq!(p("2024-01-02T03:04:05.5Z"), Ok(ts(T0, 500_000_000)));
    assert_eq!(p("2024-01-02T03:04:05Z"), Ok(ts(T0, 0)));
    assert_eq!(p("2024-01-02T05:04:05+02:00"), Ok(ts(T0, 0)));
    assert_eq!(p("2024-01-01T21:34:05.25-05:30"), Ok(ts(T0, 250_000_000)));
    assert_eq!(p("2024-01-02T03:04:05+00:00"), Ok(ts(T0, 0)));
    assert_eq!(p("0001-01-01T00:00:00Z"), Ok(Timestamp::GO_ZERO));
    assert_eq!(p("1969-12-31T23:59:59.5Z"), Ok(ts(-1, 500_000_000)));
    assert_eq!(
        p("9999-12-31T23:59:59.999999999Z"),
        Ok(ts(253_402_300_799, 999_999_999))
    );
    assert_eq!(
        p("0000-02-29T00:00:00Z"),
        Ok(ts(-62_167_219_200 + 59 * 86_400, 0))
    );
    // Digits after the ninth are truncated.
    assert_eq!(
        p("2024-01-02T03:04:05.1234567899Z"),
        Ok(ts(T0, 123_456_789))
    );
    assert_eq!(p("2024-01-02T03:04:05.000000000000Z"), Ok(ts(T0, 0)));
    assert_eq!(
        p("2024-02-29T00:00:00Z").map(|t| t.seconds),
        Ok(1_709_164_800)
    );
    for bad in [
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-02T24:00:00Z",
        "2024-01-02T03:60:05Z",
        "2024-01-02T03:04:60Z",
        "2024-01-02T03:04:05",
        "2024-01-02T03:04:05z",
        "2024-01-02t03:04:05Z",
        "2024-01-02 03:04:05Z",
        "2024/01/02T03:04:05Z",
        "2024-01-02T03-04:05Z",
        "2024-01-02T3:04:05Z",
        "24-01-02T03:04:05Z",
        "+024-01-02T03:04:05Z",
        "2024-01-02T03:04:05.Z",
        "2024-01-02T03:04:05,5Z",
        "2024-01-02T03:04:05.5",
        "2024-01-02T03:04:05+24:00",
        "2024-01-02T03:04:05+02:60",
        "2024-01-02T03:04:05+0200",
        "2024-01-02T03:04:05+2:00",
        "2024-01-02T03:04:05Z ",
        "2024-01-02T03:04:05ZZ",
        "2024-01-02",
        "",
    ] {
        assert_eq!(
            p(bad),
            Err(ModelError::InvalidTimestamp {
                field: "timestamp".into(),
                value: bad.into()
            }),
            "{bad}"
        );
    }
}

#[test]
fn decoded_timestamps_follow_go_unmarshal_json() {
    let with = |v: &str| decode(&format!(r#"{{"Status":"running","CreatedAt":{v}}}"#));
    assert_eq!(
        with(r#""2024-01-02T05:04:05+02:00""#).unwrap().created_at,
        ts(T0, 0)
    );
    assert_eq!(with("null").unwrap().created_at, Timestamp::GO_ZERO);
    assert_eq!(
        decode(r#"{"Status":"running"}"#).unwrap().created_at,
        Timestamp::GO_ZERO
    );
    let err = with(r#""2023-02-29T00:00:00Z""#).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"CreatedAt: invalid RFC 3339 timestamp "2023-02-29T00:00:00Z""#
    );
    // Go parses the raw bytes between the quotes: escapes are not decoded.
    assert!(with(r#""\u0032024-01-02T03:04:05Z""#).is_err());
    let err = with("1704164645").unwrap_err();
    assert_eq!(field_of(&err), "CreatedAt");
    assert!(err.to_string().contains("found 1704164645"), "{err}");
    let err = with("{}").unwrap_err();
    assert!(err.to_string().contains("found an object"), "{err}");
    // null leaves an earlier value alone, like Go.
    let d = decode(r#"{"Status":"running","UpdatedAt":"2024-01-02T03:04:05Z","UpdatedAt":null}"#);
    assert_eq!(d.unwrap().updated_at, ts(T0, 0));
    // A time the encoder cannot write (the offset moves it past 9999) is
    // refused on decoding too, as Go's encoder refuses to write it.
    let err = with(r#""9999-12-31T23:00:00-02:00""#).unwrap_err();
    assert_eq!(field_of(&err), "CreatedAt");
    assert!(with(r#""9999-12-31T23:00:00+02:00""#).is_ok());
}

#[test]
fn out_of_range_timestamps_name_the_field() {
    let mut s = state(WorkflowStatus::Running);
    s.created_at = ts(253_402_300_800, 0);
    let err = encode_state(&s).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CreatedAt: year 10000 is out of range 0..=9999"
    );
    s.created_at = ts(T0, 0);
    s.history = vec![HistoryEvent::new(1, EventType::TimerFired, ts(T0, 0))];
    s.history.push(HistoryEvent::new(
        2,
        EventType::TimerFired,
        ts(T0, 1_000_000_000),
    ));
    let err = encode_state(&s).unwrap_err();
    assert_eq!(
        err.to_string(),
        "History[1].Timestamp: nanoseconds 1000000000 is out of range 0..=999999999"
    );
}

#[test]
fn durations_and_ids_are_integers() {
    let mut s = state(WorkflowStatus::Running);
    for (i, ns) in [0, 1, -1, 1_500_000_000, i64::MAX, i64::MIN]
        .into_iter()
        .enumerate()
    {
        let mut e = HistoryEvent::new(i as u64, EventType::TimerFired, ts(T0, 0));
        e.duration_ns = ns;
        s.history.push(e);
    }
    s.history[0].id = i64::MAX as u64;
    let text = encode_str(&s);
    assert!(text.contains(r#""ID":9223372036854775807,"#), "{text}");
    assert!(
        text.contains(r#""Duration":-9223372036854775808}"#),
        "{text}"
    );
    assert!(text.contains(r#""Duration":1500000000}"#), "{text}");
    assert_eq!(decode(&text).unwrap(), s);

    s.history[0].id = i64::MAX as u64 + 1;
    let err = encode_state(&s).unwrap_err();
    assert_eq!(field_of(&err), "History[0].ID");

    let event = |body: &str| {
        decode(&format!(
            r#"{{"Status":"running","History":[{{"Type":"timer_fired",{body}}}]}}"#
        ))
    };
    assert_eq!(
        event(r#""Duration":-0,"ID":0"#).unwrap().history[0].duration_ns,
        0
    );
    assert_eq!(event(r#""Duration":null,"ID":null"#).unwrap().history[0], {
        HistoryEvent::new(0, EventType::TimerFired, Timestamp::GO_ZERO)
    });
    for (body, field, needle) in [
        (
            r#""Duration":1.5"#,
            "History[0].Duration",
            "expected an integer, found 1.5",
        ),
        (r#""Duration":1e3"#, "History[0].Duration", "found 1e3"),
        (r#""Duration":"5""#, "History[0].Duration", "found a string"),
        (
            r#""Duration":9223372036854775808"#,
            "History[0].Duration",
            "out of the int64 range",
        ),
        (
            r#""ID":-1"#,
            "History[0].ID",
            "must not be negative, found -1",
        ),
        (
            r#""ID":9223372036854775808"#,
            "History[0].ID",
            "out of the int64 range",
        ),
        (r#""ID":true"#, "History[0].ID", "found a boolean"),
        (r#""ID":[1]"#, "History[0].ID", "found an array"),
    ] {
        let err = event(body).unwrap_err();
        assert_eq!(field_of(&err), field, "{body}: {err}");
        assert!(err.to_string().contains(needle), "{body}: {err}");
    }
}

#[test]
fn field_names_match_case_insensitively_like_go() {
    let d = decode(concat!(
        r#"{"workflowid":"w","RUNID":"r","ſtatus":"failed","eRRoR":"boom","#,
        r#""WorKflowId":"w2","createdat":"2024-01-02T03:04:05Z","#,
        r#""hiſtory":[{"id":7,"TYPE":"signal_received","ſignalname":"go","ſignalpayload":1}]}"#
    ))
    .unwrap();
    assert_eq!(d.workflow_id, "w2");
    assert_eq!(d.run_id, "r");
    assert_eq!(d.status, WorkflowStatus::Failed);
    assert_eq!(d.error, "boom");
    assert_eq!(d.created_at, ts(T0, 0));
    assert_eq!(d.history[0].id, 7);
    assert_eq!(d.history[0].kind, EventType::SignalReceived);
    assert_eq!(d.history[0].signal_name, "go");
    assert_eq!(d.history[0].signal_payload.as_deref(), Some("1"));
    // Escaped keys are decoded before matching; other non-ASCII never matches.
    assert_eq!(
        decode(r#"{"\u017Ftatus":"running","\u0057orkflowID":"x"}"#)
            .unwrap()
            .workflow_id,
        "x"
    );
    assert_eq!(
        decode(r#"{"Status":"running","WorkflowİD":"x"}"#)
            .unwrap()
            .workflow_id,
        ""
    );
    assert_eq!(
        decode(r#"{"Status":"running","WorkflowIDs":"x"}"#)
            .unwrap()
            .workflow_id,
        ""
    );
    assert!(
        fold_eq("ID", "ID") && fold_eq("id", "ID") && !fold_eq("I", "ID") && !fold_eq("IDD", "ID")
    );
    assert!(!fold_eq("", "ID") && fold_eq("", ""));
}

#[test]
fn unknown_fields_missing_fields_and_nulls() {
    let d = decode(concat!(
        r#"{"Status":"running","Extra":{"deep":[1,{"x":null}]},"WorkflowID":null,"RunID":null,"#,
        r#""Error":null,"Input":null,"Result":null,"History":[{"Type":"timer_fired","Nope":[],"#,
        r#""ActivityName":null,"Error":null,"SignalName":null,"Input":null}]}"#
    ))
    .unwrap();
    let mut expected = state(WorkflowStatus::Running);
    expected.workflow_id = String::new();
    expected.run_id = String::new();
    expected.created_at = Timestamp::GO_ZERO;
    expected.updated_at = Timestamp::GO_ZERO;
    expected.history = vec![HistoryEvent::new(
        0,
        EventType::TimerFired,
        Timestamp::GO_ZERO,
    )];
    assert_eq!(d, expected);
    // Duplicate keys: the last wins; null leaves a string alone (Go).
    let d = decode(
        r#"{"Status":"failed","Error":"a","Error":"b","RunID":"r","RunID":null,"Input":1,"Input":null}"#,
    );
    let d = d.unwrap();
    assert_eq!(
        (d.error.as_str(), d.run_id.as_str(), d.input),
        ("b", "r", None)
    );
    let d = decode(r#"{"Status":"pending","Status":"canceled"}"#).unwrap();
    assert_eq!(d.status, WorkflowStatus::Canceled);
}

#[test]
fn json_fields_keep_their_raw_text() {
    let d = decode(concat!(
        r#"{"Status":"completed","Input": {"b":1, "a":[1,2]} ,"Result":"x\u00e9","#,
        r#""History":[{"Type":"activity_completed","Result":  -1.5e3 ,"Input":[ ]}]}"#
    ))
    .unwrap();
    assert_eq!(d.input.as_deref(), Some(r#"{"b":1, "a":[1,2]}"#));
    assert_eq!(d.result.as_deref(), Some(r#""x\u00e9""#));
    assert_eq!(d.history[0].result.as_deref(), Some("-1.5e3"));
    assert_eq!(d.history[0].input.as_deref(), Some("[ ]"));
    assert_eq!(d.history[0].signal_payload, None);
    let text = encode_str(&d);
    assert!(
        text.contains(r#""Input":{"b":1, "a":[1,2]},"Result":"x\u00e9","#),
        "{text}"
    );
    assert_eq!(decode(&text).unwrap(), d);
}

#[test]
fn strings_are_escaped_like_go() {
    assert_eq!(escaped("<a&b>"), r#""\u003ca\u0026b\u003e""#);
    assert_eq!(escaped("q\"b\\s/"), r#""q\"b\\s/""#);
    assert_eq!(escaped("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
    assert_eq!(
        escaped("\u{0}\u{1}\u{1f}\u{b}\u{7f}"),
        "\"\\u0000\\u0001\\u001f\\u000b\u{7f}\""
    );
    assert_eq!(escaped("a\u{2028}b\u{2029}c"), r#""a\u2028b\u2029c""#);
    assert_eq!(
        escaped("é😀…\u{202F}\u{2027}ü"),
        "\"é😀…\u{202F}\u{2027}ü\""
    );
    assert_eq!(escaped(""), r#""""#);
    assert_eq!(escaped("plain text"), r#""plain text""#);
    let all: String = (0..0x300u32)
        .chain(0x2000..0x2100)
        .filter_map(char::from_u32)
        .collect();
    let tricky = [
        "\u{E2}\u{2028}\u{80}",
        "…\u{2028}",
        "\u{2029}",
        "x\u{1F600}<",
        &all,
    ];
    for s in tricky {
        let text = escaped(s);
        assert_eq!(serde_json::from_str::<String>(&text).unwrap(), s);
        let raw: String = text.chars().filter(|c| !c.is_ascii()).collect();
        assert!(!raw.contains(['\u{2028}', '\u{2029}']), "{text}");
        assert!(
            !text.contains(['<', '>', '&']) && text.bytes().all(|b| b >= 0x20),
            "{text}"
        );
    }
    let mut s = state(WorkflowStatus::Failed);
    s.error = "<a&b> \u{2028}é😀\u{1}".into();
    let text = encode_str(&s);
    assert!(
        text.contains(r#""Error":"\u003ca\u0026b\u003e \u2028é😀\u0001""#),
        "{text}"
    );
    assert_eq!(decode(&text).unwrap(), s);
}

#[test]
fn invalid_json_fields_are_rejected_with_their_name() {
    assert_eq!(validate_json("Input", " {\"a\": [1, 2]} "), Ok(()));
    let err = validate_json("Input", "x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Input is not valid JSON: expected value at line 1 column 1"
    );
    assert!(validate_json("Input", "").is_err());
    assert!(validate_json("Input", "1 2").is_err());
    assert!(validate_json("Input", "{\"a\":1,}").is_err());
    let mut s = state(WorkflowStatus::Running);
    s.result = Some("{".into());
    assert_eq!(field_of(&encode_state(&s).unwrap_err()), "Result");
    s.result = None;
    s.history = vec![HistoryEvent::new(1, EventType::WorkflowStarted, ts(T0, 0)); 4];
    s.history[3].signal_payload = Some("nope".into());
    let err = encode_state(&s).unwrap_err();
    assert_eq!(field_of(&err), "History[3].SignalPayload");
    assert!(
        err.to_string()
            .starts_with("History[3].SignalPayload is not valid JSON: "),
        "{err}"
    );
}

#[test]
fn nesting_is_bounded_at_go_s_limit_in_saves_and_replays_alike() {
    for depth in [127, 128, 200, 10_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(validate_json("Input", &nested), Ok(()), "depth {depth}");
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        assert_eq!(validate_json("Input", &objects), Ok(()), "depth {depth}");
    }
    let deep = format!("{}{}", "[".repeat(10_001), "]".repeat(10_001));
    let err = validate_json("Input", &deep).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Input is not valid JSON: nesting deeper than 10000 levels at line 1 column 10001"
    );
    // Brackets inside strings do not count.
    let in_string = format!("[\"{}\\\"{}\"]", "[".repeat(20_000), "{".repeat(20_000));
    assert_eq!(validate_json("Input", &in_string), Ok(()));
    let mut s = state(WorkflowStatus::Running);
    s.input = Some(deep.clone());
    assert_eq!(field_of(&encode_state(&s).unwrap_err()), "Input");

    // What the encoder accepts, a replay reads and writes back byte for
    // byte; what it refuses, a replay refuses too (the record is skipped).
    let mut s = state(WorkflowStatus::Running);
    s.input = Some(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)));
    let bytes = encode_state(&s).unwrap();
    assert_eq!(encode_state(&decode_state(&bytes).unwrap()).unwrap(), bytes);
    let text = String::from_utf8(bytes).unwrap();
    let too_deep = text
        .replacen("\"Input\":[", &format!("\"Input\":{}", "[".repeat(2)), 1)
        .replacen("],\"Result\"", &format!("{},\"Result\"", "]".repeat(2)), 1);
    let err = decode_state(too_deep.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("nesting deeper than 10000 levels"), "{err}");
}

#[test]
fn decode_rejects_wrong_types_and_unknown_enums() {
    let err = |text: &str| decode(text).unwrap_err();
    assert_eq!(
        err(r#"{"Status":"pending"}"#),
        ModelError::UnknownStatus("pending".into())
    );
    assert_eq!(
        err(r#"{"Status":"pending"}"#).to_string(),
        r#"unknown workflow status "pending""#
    );
    assert_eq!(
        err(r#"{"Status":"Running"}"#),
        ModelError::UnknownStatus("Running".into())
    );
    assert_eq!(
        err(r#"{"WorkflowID":"w"}"#),
        ModelError::UnknownStatus(String::new())
    );
    assert_eq!(
        err(r#"{"Status":null}"#),
        ModelError::UnknownStatus(String::new())
    );
    assert_eq!(field_of(&err(r#"{"Status":1}"#)), "Status");
    let e = err(r#"{"Status":"running","Error":5}"#);
    assert_eq!(field_of(&e), "Error");
    assert!(
        e.to_string()
            .starts_with("Error: invalid type: integer `5`, expected a string"),
        "{e}"
    );
    let e = err(r#"{"Status":"running","History":{}}"#);
    assert_eq!(field_of(&e), "History");
    assert!(
        e.to_string()
            .contains("expected an array of history events or null"),
        "{e}"
    );
    assert_eq!(
        field_of(&err(
            r#"{"Status":"running","History":[{"Type":"timer_fired"},5]}"#
        )),
        "History[1]"
    );
    assert_eq!(
        field_of(&err(r#"{"Status":"running","History":[null]}"#)),
        "History[0]"
    );
    let e = err(r#"{"Status":"running","History":[{"Type":"timer_fired"},{"Type":"nap"}]}"#);
    assert_eq!(
        e,
        ModelError::UnknownEventType {
            field: "History[1].Type".into(),
            value: "nap".into()
        }
    );
    assert_eq!(
        e.to_string(),
        r#"History[1].Type: unknown event type "nap""#
    );
    let e = err(r#"{"Status":"running","History":[{"ID":1}]}"#);
    assert_eq!(
        e,
        ModelError::UnknownEventType {
            field: "History[0].Type".into(),
            value: String::new()
        }
    );
    let e = err(r#"{"Status":"running","History":[{"Type":"timer_fired","ActivityName":[]}]}"#);
    assert_eq!(field_of(&e), "History[0].ActivityName");
    let e = err(r#"{"Status":"running","History":[{"Type":"timer_fired","Timestamp":"soon"}]}"#);
    assert_eq!(
        e.to_string(),
        r#"History[0].Timestamp: invalid RFC 3339 timestamp "soon""#
    );
    for text in [
        "[1]",
        "5",
        "null",
        "\"x\"",
        "",
        "{",
        r#"{"Status":"running"} {}"#,
        r#"{"Status":"running",}"#,
    ] {
        let e = err(text);
        assert!(matches!(e, ModelError::NotAState(_)), "{text}: {e:?}");
        assert!(e.to_string().starts_with("not a workflow state: "), "{e}");
    }
    assert!(
        err("[1]")
            .to_string()
            .contains("invalid type: sequence, expected a JSON object")
    );
    // Whitespace around the object is fine.
    assert!(decode(" \n{\"Status\":\"running\"}\n ").is_ok());
}

#[test]
fn enums_round_trip_through_strings() {
    for s in WorkflowStatus::ALL {
        assert_eq!(s.as_str().parse::<WorkflowStatus>(), Ok(s));
        assert_eq!(s.to_string(), s.as_str());
    }
    for k in EventType::ALL {
        assert_eq!(k.as_str().parse::<EventType>(), Ok(k));
        assert_eq!(k.to_string(), k.as_str());
    }
    assert_eq!(EventType::SignalReceived.as_str(), "signal_received");
    assert_eq!(EventType::WorkflowCanceled.as_str(), "workflow_canceled");
    assert_eq!(
        "x".parse::<EventType>(),
        Err(ModelError::UnknownEventType {
            field: "Type".into(),
            value: "x".into()
        })
    );
    assert_eq!(
        "".parse::<WorkflowStatus>(),
        Err(ModelError::UnknownStatus(String::new()))
    );
}

#[test]
fn round_trips_a_variety_of_states() {
    for (i, status) in WorkflowStatus::ALL.into_iter().enumerate() {
        let mut s = state(status);
        s.workflow_id = format!("wf-{i}-<&>\u{2028}\"\\é");
        s.created_at = ts(
            -62_135_596_800 + i as i64 * 977_777_777,
            (i as u32) * 100_000_001,
        );
        s.updated_at = Timestamp::now();
        s.input = (i % 2 == 0).then(|| format!("{{\"n\":{i}}}"));
        s.result = (i > 1).then(|| "\"done\\n\"".to_owned());
        s.error = "\u{0}\u{1f}\t".repeat(i);
        for (j, kind) in EventType::ALL.into_iter().enumerate().take(i * 3 + 1) {
            let mut e = HistoryEvent::new(
                j as u64 + 1,
                kind,
                ts(j as i64 * 1_000_003 - 5_000_000, j as u32),
            );
            e.activity_name = format!("act {j}");
            e.signal_payload = (j % 3 == 1).then(|| "[null,true,{}]".to_owned());
            e.duration_ns = j as i64 * -7_919;
            e.signal_name = "<s>".repeat(j);
            s.history.push(e);
        }
        let bytes = encode_state(&s).unwrap();
        assert_eq!(decode_state(&bytes).unwrap(), s);
        assert_eq!(encode_state(&decode_state(&bytes).unwrap()).unwrap(), bytes);
    }
    let now = Timestamp::now();
    assert!(now.seconds > 1_700_000_000 && now.nanoseconds < NANOS_PER_SEC);
}

#[test]
fn json_numbers_are_kept_as_written_whatever_their_range_and_lone_surrogates_pass() {
    for ok in [
        "1e308",
        "-1.7976931348623157e308",
        "1e-400",
        "123456789012345678901234567890",
        "[0, -0, 1.5E+3]",
        "\"1e400 in a string\"",
        "\"\\ud800\"",
        "{\"\\udc00x\": 1}",
        // Go's json.RawMessage keeps these, and Go's encoder writes them.
        "1e400",
        "[1, -1e999]",
        "{\"a\":\n 2E309}",
    ] {
        assert_eq!(validate_json("Input", ok), Ok(()), "{ok}");
        let mut s = state(WorkflowStatus::Running);
        s.result = Some(ok.to_owned());
        let bytes = encode_state(&s).unwrap();
        assert_eq!(
            encode_state(&decode_state(&bytes).unwrap()).unwrap(),
            bytes,
            "{ok}"
        );
    }
    let huge = "9".repeat(400);
    assert_eq!(validate_json("Input", &huge), Ok(()));
    for bad in ["01", "1.", "-", "1e", "[1,]", "nul", "+1"] {
        assert!(validate_json("Input", bad).is_err(), "{bad}");
    }
}
