use super::*;

pub(crate) const REMINDER: &str = r#"{
        "voice": { "voice_id": "Joanna", "engine": "neural" },
        "start": "greet",
        "steps": {
            "greet": { "say": "Hello {{name}}, your appointment is on {{date}}.", "next": "menu" },
            "menu": { "gather": { "say": "Press 1 to confirm, 2 to cancel.", "max_digits": 1 },
                      "branches": { "1": "confirm", "2": "decline" }, "no_input": "goodbye" },
            "confirm": { "say": "Thank you, see you then.", "outcome": "confirmed" },
            "decline": { "say": "We have cancelled it.", "outcome": "declined" },
            "goodbye": { "say": "We will try again later.", "outcome": "no_input" }
        }
    }"#;

fn parse(json: &str) -> Result<Script, String> {
    serde_json::from_str::<Script>(json).map_err(|e| e.to_string())
}

#[test]
fn the_reminder_script_is_valid_and_round_trips() {
    let script = parse(REMINDER).unwrap();
    assert_eq!(script.start(), "greet");
    assert_eq!(
        script.variables().into_iter().collect::<Vec<_>>(),
        vec!["date".to_owned(), "name".to_owned()]
    );
    let again: Script = serde_json::from_value(serde_json::to_value(&script).unwrap()).unwrap();
    assert_eq!(again, script);
}

#[test]
fn a_dangling_branch_is_named() {
    let err = parse(&REMINDER.replace(r#""2": "decline""#, r#""2": "nowhere""#)).unwrap_err();
    assert!(
        err.contains("menu.branches.2") && err.contains("nowhere"),
        "{err}"
    );
}

#[test]
fn a_step_with_two_actions_is_refused() {
    let err =
        parse(r#"{"start": "a", "steps": {"a": {"say": "hi", "pause_ms": 100}}}"#).unwrap_err();
    assert!(err.contains("script.steps.a"), "{err}");
}

#[test]
fn a_loop_that_never_waits_for_the_callee_is_refused() {
    let err = parse(
        r#"{"start": "a", "steps": {"a": {"say": "hi", "next": "b"}, "b": {"pause_ms": 100, "next": "a"}}}"#,
    )
    .unwrap_err();
    assert!(err.contains("loop"), "{err}");
    // A loop through a gather is a menu, and is fine.
    parse(
        r#"{"start": "a", "steps": {"a": {"gather": {"say": "press 1"}, "branches": {"1": "a"}}}}"#,
    )
    .unwrap();
}

#[test]
fn long_texts_and_unknown_fields_are_refused() {
    let long = "x".repeat(MAX_TEXT + 1);
    let err = parse(&format!(
        r#"{{"start": "a", "steps": {{"a": {{"say": "{long}"}}}}}}"#
    ))
    .unwrap_err();
    assert!(err.contains("1000"), "{err}");
    assert!(parse(r#"{"start": "a", "steps": {"a": {"hangup": true, "sing": 1}}}"#).is_err());
}

#[test]
fn templates_are_filled_and_escaped_for_ssml() {
    let vars = BTreeMap::from([("name".to_owned(), "Ada <b>& co</b>".to_owned())]);
    assert_eq!(fill("Hi {{ name }}!", &vars, false), "Hi Ada <b>& co</b>!");
    assert_eq!(
        fill("<speak>Hi {{name}}</speak>", &vars, true),
        "<speak>Hi Ada &lt;b&gt;&amp; co&lt;/b&gt;</speak>"
    );
    assert_eq!(fill("Hi {{missing}}.", &vars, false), "Hi .");
    assert_eq!(fill("unclosed {{name", &vars, false), "unclosed {{name");
}

#[test]
fn a_voice_the_service_cannot_speak_with_is_refused_naming_the_field() {
    let with_voice =
        |voice: &str| REMINDER.replace(r#""voice_id": "Joanna", "engine": "neural""#, voice);
    for (voice, field) in [
        (r#""voice_id": """#, "script.voice.voice_id"),
        (r#""voice_id": "Nobody""#, "script.voice.voice_id"),
        (
            r#""voice_id": "Kevin", "engine": "standard""#,
            "script.voice.engine",
        ),
        (
            r#""voice_id": "Joanna", "language": "xx-INVALID""#,
            "script.voice.language",
        ),
        (
            r#""voice_id": "Joanna", "language": "fr-FR""#,
            "script.voice.language",
        ),
    ] {
        let err = parse(&with_voice(voice)).unwrap_err();
        assert!(err.starts_with(field), "{voice}: {err}");
    }
    for voice in [
        r#""voice_id": "Kajal", "engine": "neural", "language": "hi-IN""#,
        r#""voice_id": "Lea", "engine": "standard""#,
    ] {
        assert!(parse(&with_voice(voice)).is_ok(), "{voice}");
    }
}

#[test]
fn a_gather_regex_outside_the_portable_dialect_is_refused() {
    let with_regex = |re: &str| {
        REMINDER.replace(
            r#""max_digits": 1 }"#,
            &format!(r#""max_digits": 1, "regex": {} }}"#, serde_json::json!(re)),
        )
    };
    assert!(parse(&with_regex("^[12]$")).is_ok());
    for re in ["((((", "(?=1)1", "[a-z]", "(?i)1"] {
        let err = parse(&with_regex(re)).unwrap_err();
        assert!(
            err.starts_with("script.steps.menu.gather.regex"),
            "{re}: {err}"
        );
    }
}

#[test]
fn a_bilingual_voice_speaks_both_its_languages_and_no_other() {
    let with_voice =
        |voice: &str| REMINDER.replace(r#""voice_id": "Joanna", "engine": "neural""#, voice);
    for voice in [
        r#""voice_id": "Hala", "engine": "neural", "language": "arb""#,
        r#""voice_id": "Zayd", "engine": "neural", "language": "ar-AE""#,
        r#""voice_id": "Aditi", "language": "hi-IN""#,
    ] {
        assert!(parse(&with_voice(voice)).is_ok(), "{voice}");
    }
    let err = parse(&with_voice(
        r#""voice_id": "Zayd", "engine": "neural", "language": "fr-FR""#,
    ))
    .unwrap_err();
    assert_eq!(
        err,
        "script.voice.language: Zayd speaks ar-AE and arb, not fr-FR"
    );
}

#[test]
fn a_gather_regex_says_which_construct_the_service_may_not_read() {
    let with_regex = |re: &str| {
        REMINDER.replace(
            r#""max_digits": 1 }"#,
            &format!(r#""max_digits": 1, "regex": {} }}"#, serde_json::json!(re)),
        )
    };
    for (re, why) in [
        ("(?=1)1", "look-around"),
        ("(1)\\1", "back-reference"),
        ("1*+", "stacks two repetitions"),
        ("\\d{ 1 }", "with spaces"),
    ] {
        let err = parse(&with_regex(re)).unwrap_err();
        assert!(
            err.starts_with("script.steps.menu.gather.regex: ") && err.contains(why),
            "{re}: {err}"
        );
    }
}

#[test]
fn a_gather_without_a_regex_waits_for_exactly_its_branches() {
    let script = parse(REMINDER).unwrap();
    let menu = script.step("menu").unwrap();
    let Action::Gather(g) = &menu.action else {
        panic!("menu gathers")
    };
    assert_eq!(
        g.input_digits_regex(&menu.branches).as_deref(),
        Some("^(1|2)$")
    );
    let keys = BTreeMap::from([
        ("#".to_owned(), "a".to_owned()),
        ("*9".to_owned(), "a".to_owned()),
    ]);
    assert_eq!(g.input_digits_regex(&keys).as_deref(), Some("^(\\#|\\*9)$"));
    assert_eq!(g.input_digits_regex(&BTreeMap::new()), None);
    let own = Gather {
        regex: Some("^\\d$".to_owned()),
        ..g.clone()
    };
    assert_eq!(own.input_digits_regex(&keys).as_deref(), Some("^\\d$"));
}

#[test]
fn branches_that_make_too_long_a_digit_regex_are_refused() {
    // 30 ten-digit branches: `^(` + 30 keys joined by `|` + `)$` is 333 characters.
    let branches: Vec<String> = (0..30)
        .map(|i| format!(r#""{:010}": "confirm""#, 5_550_000_000_u64 + i))
        .collect();
    let json = REMINDER
        .replace(r#""max_digits": 1"#, r#""max_digits": 10"#)
        .replace(
            r#""branches": { "1": "confirm", "2": "decline" }"#,
            &format!(
                r#""branches": {{ {}, "2": "decline" }}"#,
                branches.join(", ")
            ),
        );
    let err = parse(&json).unwrap_err();
    assert!(
        err.starts_with("script.steps.menu.branches: ") && err.contains("more than 256"),
        "{err}"
    );
    // The same branches with a regex of the gather's own are fine.
    let own = json.replace(
        r#""max_digits": 10 }"#,
        r#""max_digits": 10, "regex": "^\\d{10}$" }"#,
    );
    assert!(parse(&own).is_ok(), "{}", parse(&own).unwrap_err());
}

/// The reminder with a caller name its greeting says, and an opt-out on 9.
fn lawful(extra: &str) -> String {
    REMINDER
        .replace(
            "Hello {{name}}, your",
            "Hello {{name}}, this is Riverside Clinic. Your",
        )
        .replacen(
            r#""start": "greet","#,
            &format!(r#""start": "greet", "caller_name": "Riverside Clinic", {extra}"#),
            1,
        )
}

#[test]
fn a_script_that_names_its_caller_first_is_identified() {
    let script = parse(&lawful(
        r#""opt_out": {"digit": "9", "say": "You will not be called again."},"#,
    ))
    .unwrap();
    assert_eq!(script.check_identification(), Ok(()));
    assert_eq!(script.caller_name(), Some("Riverside Clinic"));
    assert_eq!(script.opt_out().map(|o| o.digit.as_str()), Some("9"));
    let again: Script = serde_json::from_value(serde_json::to_value(&script).unwrap()).unwrap();
    assert_eq!(again, script);
    // Letter case aside, and past a pause at the start.
    let paused = lawful("")
        .replace(r#""start": "greet""#, r#""start": "wait""#)
        .replace(
            r#""steps": {"#,
            r#""steps": { "wait": {"pause_ms": 500, "next": "greet"},"#,
        )
        .replace("Riverside Clinic.", "RIVERSIDE clinic.");
    assert_eq!(parse(&paused).unwrap().check_identification(), Ok(()));
}

#[test]
fn a_script_that_does_not_identify_the_caller_is_refused_with_the_rule() {
    let unnamed = parse(REMINDER).unwrap().check_identification().unwrap_err();
    assert!(unnamed.to_string().contains("64.1200(b)(1)"), "{unnamed}");
    let late = REMINDER.replacen(
        r#""start": "greet","#,
        r#""start": "greet", "caller_name": "Riverside Clinic","#,
        1,
    );
    let err = parse(&late).unwrap().check_identification().unwrap_err();
    assert!(err.to_string().contains("step \"greet\""), "{err}");
    let audio = lawful("").replace(
        r#""say": "Hello {{name}}, this is Riverside Clinic. Your appointment is on {{date}}.""#,
        r#""play": {"bucket": "b", "key": "k.wav"}"#,
    );
    let err = parse(&audio).unwrap().check_identification().unwrap_err();
    assert!(err.to_string().contains("recording"), "{err}");
    let blank = lawful("").replace(
        r#""caller_name": "Riverside Clinic""#,
        r#""caller_name": "  ""#,
    );
    assert!(parse(&blank).unwrap_err().contains("script.caller_name"));
}

#[test]
fn an_opt_out_must_be_one_key_that_no_menu_uses() {
    for (opt_out, needle) in [
        (r#"{"digit": "10", "say": "Bye."}"#, "script.opt_out.digit"),
        (r#"{"digit": "x", "say": "Bye."}"#, "script.opt_out.digit"),
        (r#"{"digit": "1", "say": "Bye."}"#, "branches on \"1\""),
        (r#"{"digit": "9", "say": ""}"#, "script.opt_out.say"),
        (
            r#"{"digit": "9", "say": {"bucket": "b", "key": "k"}}"#,
            "script.opt_out.say",
        ),
    ] {
        let err = parse(&lawful(&format!(r#""opt_out": {opt_out},"#))).unwrap_err();
        assert!(err.contains(needle), "{opt_out}: {err}");
    }
}
