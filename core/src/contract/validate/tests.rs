use super::*;
use crate::contract::{EventType, ParticipantTag};
use proptest::prelude::*;
use serde_json::json;

fn answered() -> Value {
    json!({
        "SchemaVersion": "1.0", "Sequence": "3", "InvocationEventType": "CALL_ANSWERED",
        "CallDetails": {
            "TransactionId": "t-1", "SipApplicationId": "sma-1",
            "TransactionAttributes": {"call_id": "call_1"},
            "Participants": [{"CallId": "leg-a", "ParticipantTag": "Leg-A", "To": "+15555550100",
                "From": "+15555550199", "Direction": "Outbound",
                "StartTimeInMilliseconds": "1700000000123", "Status": "Connected"}]
        },
        "Unexpected": true
    })
}

#[test]
fn an_event_is_read_leniently() {
    let e = validate_event(&answered()).unwrap();
    assert_eq!(e.sequence, 3);
    assert_eq!(e.event_type, EventType::CallAnswered);
    assert_eq!(
        e.call_details.sip_media_application_id.as_deref(),
        Some("sma-1")
    );
    assert_eq!(e.call_details.attribute("call_id"), Some("call_1"));
    let leg = e.leg(&ParticipantTag::LegA).unwrap();
    assert_eq!(leg.start_time_ms(), Some(1_700_000_000_123));
    assert!(leg.is_connected());
}

#[test]
fn an_event_without_a_transaction_id_is_rejected() {
    let mut v = answered();
    v["CallDetails"]
        .as_object_mut()
        .unwrap()
        .remove("TransactionId");
    let err = validate_event(&v).unwrap_err().to_string();
    assert!(err.contains("CallDetails.TransactionId"), "{err}");
}

#[test]
fn an_unknown_event_type_is_kept() {
    let mut v = answered();
    v["InvocationEventType"] = json!("CALL_TELEPORTED");
    let e = validate_event(&v).unwrap();
    assert_eq!(e.event_type, EventType::Unknown("CALL_TELEPORTED".into()));
    assert_eq!(
        serde_json::to_value(&e).unwrap()["InvocationEventType"],
        "CALL_TELEPORTED"
    );
}

#[test]
fn errors_are_read_from_the_top_level_action_data_or_the_single_string() {
    let mut v = answered();
    v["InvocationEventType"] = json!("INVALID_LAMBDA_RESPONSE");
    v["ErrorType"] = json!("TransactionAttributesInvalidMapSize");
    assert_eq!(
        validate_event(&v).unwrap().error().unwrap().0,
        "TransactionAttributesInvalidMapSize"
    );
    let mut v = answered();
    v["ActionData"] =
        json!({"Type": "JoinChimeMeeting", "Error": "ErrorJoiningMeeting: no such meeting"});
    assert_eq!(
        validate_event(&v).unwrap().error().unwrap(),
        (
            "ErrorJoiningMeeting".to_owned(),
            Some("no such meeting".to_owned())
        )
    );
}

fn speak(i: usize) -> Value {
    json!({"Type": "Speak", "Parameters": {"CallId": "leg-a", "Text": format!("line {i}")}})
}

#[test]
fn a_voice_language_or_digit_regex_the_service_cannot_use_is_a_violation() {
    let speak = |params: Value| json!({"Type": "Speak", "Parameters": params});
    let bad = [
        (
            speak(json!({"CallId": "a", "Text": "x", "VoiceId": ""})),
            "voice is empty",
        ),
        (
            speak(json!({"CallId": "a", "Text": "x", "VoiceId": "Nobody"})),
            "not an Amazon Polly voice",
        ),
        (
            speak(json!({"CallId": "a", "Text": "x", "LanguageCode": "xx-INVALID"})),
            "not an Amazon Polly language",
        ),
        (
            speak(json!({"CallId": "a", "Text": "x", "VoiceId": "Kevin"})),
            "standard engine",
        ),
        (
            json!({"Type": "SpeakAndGetDigits", "Parameters": {"CallId": "a",
                "SpeechParameters": {"Text": "x"}, "FailureSpeechParameters": {"Text": "y"},
                "InputDigitsRegex": "((((", "RepeatDurationInMilliseconds": 3000}}),
            "InputDigitsRegex",
        ),
        (
            json!({"Type": "SpeakAndGetDigits", "Parameters": {"CallId": "a",
                "SpeechParameters": {"Text": "x", "VoiceId": "Lea", "LanguageCode": "fr-FR"},
                "FailureSpeechParameters": {"Text": "y", "LanguageCode": "de-DE"},
                "RepeatDurationInMilliseconds": 3000}}),
            "FailureSpeechParameters: Lea speaks fr-FR, not de-DE",
        ),
        (
            json!({"Type": "ReceiveDigits", "Parameters": {"CallId": "a",
                "InputDigitsRegex": "(?<=1)2", "InBetweenDigitsDurationInMilliseconds": 1000,
                "FlushDigitsDurationInMilliseconds": 10000}}),
            "InputDigitsRegex",
        ),
    ];
    for (action, why) in bad {
        let err = validate_action(&action).unwrap_err().to_string();
        assert!(err.contains(why), "{action}: {err}");
    }
    let good = speak(json!({"CallId": "a", "Text": "x", "VoiceId": "Kevin", "Engine": "neural"}));
    assert!(validate_action(&good).is_ok());
}

#[test]
fn a_digit_regex_the_dialects_read_differently_or_a_long_form_voice_is_a_violation() {
    let play = |regex: &str| {
        json!({"Type": "PlayAudioAndGetDigits", "Parameters": {"ParticipantTag": "LEG-A",
            "AudioSource": {"Type": "S3", "BucketName": "b", "Key": "k.wav"},
            "FailureAudioSource": {"Type": "S3", "BucketName": "b", "Key": "f.wav"},
            "InputDigitsRegex": regex, "RepeatDurationInMilliseconds": 5000}})
    };
    for (action, why) in [
        (
            play("1*+"),
            "action 1 (PlayAudioAndGetDigits): InputDigitsRegex \"1*+\" stacks two repetitions",
        ),
        (
            play("\\d{ 4 }"),
            "InputDigitsRegex \"\\\\d{ 4 }\" writes the count \"{ 4 }\" with spaces",
        ),
        (
            play("(?!0)\\d"),
            "InputDigitsRegex \"(?!0)\\\\d\" uses look-around",
        ),
        (
            json!({"Type": "Speak", "Parameters": {"CallId": "a", "Text": "x",
                "VoiceId": "Patrick", "Engine": "neural"}}),
            "\"Patrick\" is not an Amazon Polly voice the PSTN audio service can use",
        ),
    ] {
        let err = validate_action(&action).unwrap_err().to_string();
        assert!(err.contains(why), "{action}: {err}");
    }
    assert!(validate_action(&play("^\\d{4}#?$")).is_ok());
    let bilingual = json!({"Type": "SpeakAndGetDigits", "Parameters": {"CallId": "a",
        "SpeechParameters": {"Text": "x", "VoiceId": "Hala", "Engine": "neural", "LanguageCode": "arb"},
        "FailureSpeechParameters": {"Text": "y", "LanguageCode": "ar-AE"},
        "InputDigitsRegex": "^[12]$", "RepeatDurationInMilliseconds": 3000}});
    assert!(validate_action(&bilingual).is_ok(), "{bilingual}");
}

#[test]
fn a_response_with_eleven_actions_is_rejected() {
    let actions: Vec<Value> = (0..11).map(speak).collect();
    let err = validate_response(&json!({"SchemaVersion": "1.0", "Actions": actions})).unwrap_err();
    assert_eq!(err.to_string(), "11 actions; the SMA accepts at most 10");
}

#[test]
fn the_mistakes_people_make_are_named() {
    let cases = [
        (json!({"statusCode": 200, "body": "{}"}), "API Gateway"),
        (
            json!({"SchemaVersion": "2.0", "Actions": []}),
            "SchemaVersion \"2.0\"",
        ),
        (json!({"Actions": []}), "no SchemaVersion"),
        (
            json!({"SchemaVersion": 1.0, "Actions": []}),
            "SchemaVersion 1.0 does not match the event's \"1.0\"",
        ),
        (
            json!({"SchemaVersion": "1.0", "Actions": [{"Type": "Sing", "Parameters": {}}]}),
            "unknown action type \"Sing\"",
        ),
        (
            json!({"SchemaVersion": "1.0", "Actions": [speak(1), {"Type": "Speak", "Parameters": {"CallId": "x"}}]}),
            "action 2 (Speak): missing required parameter Text",
        ),
        (
            json!({"SchemaVersion": "1.0", "Actions": [{"Type": "Hangup", "Parameters": {"SipResponseCode": "603"}}]}),
            "603",
        ),
        (json!({"SchemaVersion": "1.0", "Actions": {}}), "array"),
        (
            json!({"SchemaVersion": "1.0", "Actions": null}),
            "keep running its current actions",
        ),
        (
            json!({"SchemaVersion": "1.0", "Actions": [], "TransactionAttributes": {"n": 1}}),
            "TransactionAttributes.n is not a string",
        ),
        (
            json!({"Type": "Speak", "Parameters": {"CallId": "a", "Text": "x".repeat(1001)}}),
            "action 1 (Speak): Text is longer than 1000 characters",
        ),
        (
            json!({"SchemaVersion": "1.0", "Sequence": 1, "InvocationEventType": "RINGING"}),
            "not an SMA event: missing field `CallDetails`",
        ),
        (json!([1, 2]), "neither an SMA event"),
    ];
    for (value, want) in cases {
        let err = validate(&value).unwrap_err().to_string();
        assert!(err.contains(want), "{value}: {err}");
    }
}

#[test]
fn numbers_as_strings_are_read_and_written_as_numbers() {
    let a = validate_action(
        &json!({"Type": "Pause", "Parameters": {"DurationInMilliseconds": "1500"}}),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        json!({"Type": "Pause", "Parameters": {"DurationInMilliseconds": 1500}})
    );
    let h =
        validate_action(&json!({"Type": "Hangup", "Parameters": {"SipResponseCode": 0}})).unwrap();
    assert_eq!(
        serde_json::to_value(&h).unwrap()["Parameters"]["SipResponseCode"],
        "0"
    );
}

#[test]
fn the_builder_stops_at_ten_actions_and_ten_attributes() {
    let event = validate_event(&answered()).unwrap();
    let mut b = Response::to(&event);
    for _ in 0..10 {
        b.push(Action::hangup("leg-a", 0)).unwrap();
    }
    assert_eq!(b.room(), 0);
    assert!(matches!(
        b.push(Action::hangup("leg-a", 0)),
        Err(ContractError::TooManyActions(11))
    ));
    let too_many: BTreeMap<String, String> =
        (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    assert!(b.attributes(too_many).is_err());
    let r = Response::empty("1.0");
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"SchemaVersion": "1.0", "Actions": []})
    );
}

#[test]
fn a_schema_version_too_long_to_echo_is_refused() {
    let mut v = answered();
    v["SchemaVersion"] = json!("9".repeat(MAX_SCHEMA_VERSION));
    assert!(validate_event(&v).is_ok());
    v["SchemaVersion"] = json!("9".repeat(MAX_SCHEMA_VERSION + 1));
    assert!(matches!(
        validate_event(&v),
        Err(ContractError::SchemaVersionTooLong(n)) if n == MAX_SCHEMA_VERSION + 1
    ));
}

#[test]
fn a_sequence_no_real_call_reaches_is_refused() {
    let read = |seq: Value| {
        let mut v = answered();
        v["Sequence"] = seq;
        validate_event(&v)
    };
    assert_eq!(read(json!(MAX_SEQUENCE)).unwrap().sequence, MAX_SEQUENCE);
    assert!(matches!(
        read(json!(MAX_SEQUENCE + 1)),
        Err(ContractError::SequenceOutOfRange(s)) if s == MAX_SEQUENCE + 1
    ));
    assert!(matches!(
        read(json!(u64::MAX)),
        Err(ContractError::SequenceOutOfRange(u64::MAX))
    ));
    // 2^64 does not fit: it is not read as u64::MAX.
    let mut v = answered();
    v["Sequence"] = json!(7);
    let text = serde_json::to_string(&v)
        .unwrap()
        .replace("\"Sequence\":7", "\"Sequence\":18446744073709551616");
    assert!(text.contains("18446744073709551616"), "{text}");
    assert!(matches!(
        parse_event(text.as_bytes()),
        Err(ContractError::NotAnEvent(_))
    ));
    for bad in [json!(-1), json!(1.5), json!("many"), json!(1e300)] {
        assert!(read(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn an_event_read_from_bytes_points_at_the_value_of_the_wrong_type() {
    let mut v = answered();
    v["Sequence"] = json!("three");
    let text = serde_json::to_string_pretty(&v).unwrap();
    let err = parse_event(text.as_bytes()).unwrap_err();
    assert!(matches!(err, ContractError::NotAnEvent(_)), "{err:?}");
    let line = text.lines().position(|l| l.contains("three")).unwrap() + 1;
    assert!(
        err.to_string().contains(&format!("at line {line} column")),
        "{err}"
    );
    assert!(matches!(
        parse_event(b"{\"Sequence\": "),
        Err(ContractError::NotJson(_))
    ));
}

#[test]
fn the_statement_envelope_of_the_recording_page_is_read_as_its_action() {
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Type": "StopCallRecording", "Parameters": {"CallId": "leg-a"}}
    ]});
    assert_eq!(classify(&doc), Payload::Action);
    assert_eq!(
        validate_action(&doc).unwrap().type_name(),
        "StopCallRecording"
    );
}

#[test]
fn shapes_are_classified_without_being_checked() {
    let cases = [
        (answered(), Payload::Event),
        (json!({"SchemaVersion": "9"}), Payload::Response),
        (json!({"Type": "Nope"}), Payload::Action),
        (json!({"httpMethod": "POST"}), Payload::ApiGatewayShaped),
        (
            json!({"statusCode": 200, "body": ""}),
            Payload::ApiGatewayShaped,
        ),
        (json!({"Hello": 1}), Payload::Unrecognized),
        (json!("text"), Payload::Unrecognized),
    ];
    for (value, want) in cases {
        assert_eq!(classify(&value), want, "{value}");
    }
}

/// JSON trees built from the contract's own keys and values, so that generated inputs
/// reach the readers' inner branches rather than stopping at the first missing field.
fn contract_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "SchemaVersion",
            "Sequence",
            "InvocationEventType",
            "ActionData",
            "CallDetails",
            "TransactionId",
            "Participants",
            "ParticipantTag",
            "CallId",
            "Type",
            "Parameters",
            "Actions",
            "TransactionAttributes",
            "ErrorType",
            "Error",
            "SipResponseCode",
            "Arguments",
            "StartTimeInMilliseconds",
            "Statement",
            "statusCode",
            "body",
            "Text",
            "DurationInMilliseconds",
            "Endpoints",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "1.0",
            "3",
            "-1",
            "1e3",
            "LEG-A",
            "leg-b",
            "Speak",
            "Hangup",
            "HANGUP",
            "CALL_ANSWERED",
            "Code: message",
            ":",
            "",
        ])
        .prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_event(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in contract_json()) {
        let _ = validate(&value);
        let _ = validate_response(&value);
        let _ = validate_action(&value);
        let _ = parse_event(value.to_string().as_bytes());
        if let Ok(event) = validate_event(&value) {
            let _ = (event.arguments(), event.error(), event.sip_response_code());
            let _ = (event.action_leg(), event.received_digits());
        }
    }

    #[test]
    fn an_event_with_any_part_replaced_never_panics(
        at in prop::sample::select(vec![
            "/Sequence", "/ActionData", "/ErrorType", "/CallDetails/TransactionAttributes",
            "/CallDetails/Participants", "/CallDetails/Participants/0",
            "/CallDetails/Participants/0/StartTimeInMilliseconds",
            "/CallDetails/Participants/0/ParticipantTag",
        ]),
        value in contract_json(),
    ) {
        let mut event = answered();
        event["ActionData"] = json!({"Type": "Hangup", "Parameters": {"CallId": "leg-a"}});
        if let Some(slot) = event.pointer_mut(at) {
            *slot = value;
        }
        if let Ok(event) = validate_event(&event) {
            let _ = (event.arguments(), event.error(), event.sip_response_code());
            let _ = (event.action_leg(), event.received_digits());
            let _ = serde_json::to_value(&event).unwrap();
        }
    }
}

#[test]
fn action_data_keeps_its_fields_and_every_other_result_field_as_sent() {
    let data = json!({
        "Type": "ReceiveDigits",
        "Parameters": {"CallId": "leg-a", "InputDigitsRegex": "^\\d$", "Nested": {"a": [1, 2]}},
        "ReceivedDigits": "9",
        "ErrorType": null,
        "Error": "Code: message",
        "RecordingDestination": {"Type": "S3", "BucketName": "b"},
        "ErrorList": ["one", "two"]
    });
    let mut event = answered();
    event["ActionData"] = data.clone();
    let read = validate_event(&event).unwrap();
    let action = read.action_data.as_ref().unwrap();
    assert_eq!(action.action_type, "ReceiveDigits");
    assert_eq!(action.parameters["Nested"]["a"][1], 2);
    assert_eq!(action.received_digits.as_deref(), Some("9"));
    assert_eq!(action.error_type, None);
    assert_eq!(action.error.as_deref(), Some("Code: message"));
    assert_eq!(
        action.extra.keys().collect::<Vec<_>>(),
        ["ErrorList", "RecordingDestination"]
    );
    // Read from text too, and written back as it came (the null left out).
    let text = serde_json::to_vec(&event).unwrap();
    assert_eq!(parse_event(&text).unwrap(), read);
    let mut written = data;
    written.as_object_mut().unwrap().remove("ErrorType");
    assert_eq!(serde_json::to_value(action).unwrap(), written);
    // A known field of the wrong type is refused, as before.
    event["ActionData"]["ReceivedDigits"] = json!(9);
    assert!(matches!(
        validate_event(&event),
        Err(ContractError::NotAnEvent(_))
    ));
    event["ActionData"] = json!(["not", "an", "object"]);
    assert!(validate_event(&event).is_err());
}
