//! What the PSTN audio service can speak and which digits it can wait for, checked before a
//! campaign is accepted rather than found out call by call.
//!
//! - **Voices and languages.** `Speak` and `SpeakAndGetDigits` take Amazon Polly's voice ids,
//!   language codes and its `standard` or `neural` engine. The voices, each with its language,
//!   the engines it speaks with and the other languages of a bilingual voice, are data in
//!   `core/data/polly-voices.tsv`, with their sources. A voice must exist, speak with the
//!   engine asked for, and speak the language asked for.
//! - **Digit regexes.** AWS does not say which regex dialect `InputDigitsRegex` is read in:
//!   the `ReceiveDigits`, `PlayAudioAndGetDigits` and `SpeakAndGetDigits` pages ask only for
//!   "a valid regular expression pattern", and their examples (`^\d{2}#$`) read alike
//!   everywhere. outdial therefore accepts only the part that Java's, ECMAScript's and RE2's
//!   dialects all read the same way, over the keys a phone has: the keys `0`-`9`, `#` and `*`
//!   (escaped or in a class), `\d`, `.`, bracketed classes of keys and digit ranges, groups
//!   with or without capture, alternation, the anchors `^` and `$`, and the repetitions `?`,
//!   `*`, `+`, `{m}`, `{m,}`, `{m,n}` (lazy ones too) applied once to something that is not an
//!   anchor, with counts written without spaces and at most [`MAX_REPEAT`]. Anything else
//!   could be read differently by the service, be refused by it, or match nothing a caller
//!   can press, so it is refused with the reason: look-around and back-references (RE2 has
//!   neither), named groups, flags, stacked repetitions (`1*+` is possessive in Java, an error
//!   elsewhere), `{ 3 }` (literal text in ECMAScript, an error in Java), letters and escapes
//!   other than of punctuation. The whole pattern is at most [`MAX_REGEX`] characters.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use regex_syntax::ast::{self, Ast, ClassSet, ClassSetItem, GroupKind, LiteralKind};

/// The longest digit regex accepted.
pub const MAX_REGEX: usize = 256;
/// The largest count a digit regex may repeat by (`{m,n}`): RE2 refuses larger ones.
pub const MAX_REPEAT: u32 = 1000;
/// The engines a `Speak` action may ask for.
pub const ENGINES: [&str; 2] = ["standard", "neural"];

/// One Polly voice, as `core/data/polly-voices.tsv` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollyVoice {
    pub id: &'static str,
    pub language: &'static str,
    pub standard: bool,
    pub neural: bool,
    /// The other languages of a bilingual voice.
    pub also: Vec<&'static str>,
}

impl PollyVoice {
    /// Whether it speaks `language`.
    #[must_use]
    pub fn speaks(&self, language: &str) -> bool {
        self.language == language || self.also.contains(&language)
    }

    /// Whether it speaks with `engine` (`standard` or `neural`).
    #[must_use]
    pub fn has_engine(&self, engine: &str) -> bool {
        match engine {
            "standard" => self.standard,
            "neural" => self.neural,
            _ => false,
        }
    }
}

const DATA: &str = include_str!("../data/polly-voices.tsv");

static VOICES: LazyLock<HashMap<&'static str, PollyVoice>> = LazyLock::new(|| {
    parse(DATA)
        .unwrap_or_else(|e| unreachable!("core/data/polly-voices.tsv is checked by a test: {e}"))
});

/// Reads the voice list.
fn parse(data: &'static str) -> Result<HashMap<&'static str, PollyVoice>, String> {
    let mut voices = HashMap::new();
    for (n, line) in data.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, language, engines, also] = fields[..] else {
            return Err(format!("line {}: four tab-separated fields", n + 1));
        };
        let engines: BTreeSet<&str> = engines.split(',').collect();
        if engines.is_empty() || engines.iter().any(|e| !ENGINES.contains(e)) {
            return Err(format!("line {}: engines are standard and neural", n + 1));
        }
        let voice = PollyVoice {
            id,
            language,
            standard: engines.contains("standard"),
            neural: engines.contains("neural"),
            also: if also == "-" {
                Vec::new()
            } else {
                also.split(',').collect()
            },
        };
        if voices.insert(id, voice).is_some() {
            return Err(format!("line {}: {id} is listed twice", n + 1));
        }
    }
    Ok(voices)
}

/// The voice `id`, if Polly has it (ids are case-sensitive, as the service reads them).
#[must_use]
pub fn voice(id: &str) -> Option<&'static PollyVoice> {
    VOICES.get(id)
}

/// Whether some voice speaks `language`.
#[must_use]
pub fn is_language(language: &str) -> bool {
    VOICES.values().any(|v| v.speaks(language))
}

/// Checks a voice as a `Speak` action would name it: the voice (Joanna when absent, as the
/// service defaults), the engine (`standard` when absent) and the language (the voice's own
/// when absent).
///
/// # Errors
/// The reason, naming the value at fault.
pub fn check_voice(
    voice_id: Option<&str>,
    engine: Option<&str>,
    language: Option<&str>,
) -> Result<(), String> {
    let id = voice_id.unwrap_or("Joanna");
    let engine = engine.unwrap_or("standard");
    if !ENGINES.contains(&engine) {
        return Err(format!("engine {engine:?} is not one of standard, neural"));
    }
    let Some(voice) = voice(id) else {
        return Err(if id.is_empty() {
            "the voice is empty: name an Amazon Polly voice, such as Joanna".to_owned()
        } else {
            format!("{id:?} is not an Amazon Polly voice the PSTN audio service can use")
        });
    };
    if !voice.has_engine(engine) {
        return Err(format!("{id} does not speak with the {engine} engine"));
    }
    if let Some(language) = language {
        if !is_language(language) {
            return Err(format!("{language:?} is not an Amazon Polly language code"));
        }
        if !voice.speaks(language) {
            return Err(format!(
                "{id} speaks {}, not {language}",
                std::iter::once(voice.language)
                    .chain(voice.also.iter().copied())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
    }
    Ok(())
}

/// Checks a digit regex against the dialect in the [module documentation](self).
///
/// # Errors
/// Why the service might not read it as outdial does.
pub fn check_digits_regex(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.chars().count() > MAX_REGEX {
        return Err(format!("must be 1 to {MAX_REGEX} characters"));
    }
    let ast = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| match e.kind() {
            ast::ErrorKind::UnsupportedLookAround => {
                "uses look-around ((?=, (?!, (?<=, (?<!), which RE2 and others lack".to_owned()
            }
            ast::ErrorKind::UnsupportedBackreference => {
                "uses a back-reference (\\1), which RE2 and others lack".to_owned()
            }
            kind => format!("is not a regex: {kind}"),
        })?;
    portable(pattern, &ast)
}

fn is_key(c: char) -> bool {
    c.is_ascii_digit() || c == '#' || c == '*'
}

fn key_literal(l: &ast::Literal) -> Result<(), String> {
    match l.kind {
        LiteralKind::Verbatim | LiteralKind::Meta | LiteralKind::Superfluous if is_key(l.c) => {
            Ok(())
        }
        _ if is_key(l.c) => Err(format!(
            "writes the key {:?} as a code escape; write the key itself",
            l.c
        )),
        _ => Err(format!(
            "matches {:?}, which is not a key of a phone (0-9, # and *)",
            l.c
        )),
    }
}

fn repetition(pattern: &str, r: &ast::Repetition) -> Result<(), String> {
    match &*r.ast {
        Ast::Repetition(_) => {
            return Err(
                "stacks two repetitions (as in **, *+ or {2}{3}), which the dialects read differently or refuse"
                    .to_owned(),
            );
        }
        Ast::Assertion(_) => return Err("repeats an anchor".to_owned()),
        _ => {}
    }
    if let ast::RepetitionKind::Range(range) = &r.op.kind {
        let written = pattern
            .get(r.op.span.start.offset..r.op.span.end.offset)
            .unwrap_or_default();
        if written.chars().any(char::is_whitespace) {
            return Err(format!(
                "writes the count {written:?} with spaces, which the dialects read differently"
            ));
        }
        let (ast::RepetitionRange::Exactly(n)
        | ast::RepetitionRange::AtLeast(n)
        | ast::RepetitionRange::Bounded(_, n)) = *range;
        if n > MAX_REPEAT {
            return Err(format!("repeats {n} times; at most {MAX_REPEAT}"));
        }
    }
    portable(pattern, &r.ast)
}

fn portable(pattern: &str, node: &Ast) -> Result<(), String> {
    let all = |asts: &[Ast]| asts.iter().try_for_each(|a| portable(pattern, a));
    match node {
        Ast::Empty(_) | Ast::Dot(_) => Ok(()),
        Ast::Literal(l) => key_literal(l),
        Ast::Assertion(a) => match a.kind {
            ast::AssertionKind::StartLine | ast::AssertionKind::EndLine => Ok(()),
            _ => Err("uses an anchor other than ^ and $".to_owned()),
        },
        Ast::ClassPerl(c) if c.kind == ast::ClassPerlKind::Digit && !c.negated => Ok(()),
        Ast::ClassPerl(_) => Err("uses a class other than \\d".to_owned()),
        Ast::ClassUnicode(_) => Err("uses a Unicode class".to_owned()),
        Ast::ClassBracketed(c) => class_set(&c.kind),
        Ast::Repetition(r) => repetition(pattern, r),
        Ast::Group(g) => match &g.kind {
            GroupKind::CaptureIndex(_) => portable(pattern, &g.ast),
            GroupKind::NonCapturing(flags) if flags.items.is_empty() => portable(pattern, &g.ast),
            GroupKind::NonCapturing(_) => Err("sets flags".to_owned()),
            GroupKind::CaptureName { .. } => Err("names a group".to_owned()),
        },
        Ast::Flags(_) => Err("sets flags".to_owned()),
        Ast::Alternation(a) => all(&a.asts),
        Ast::Concat(c) => all(&c.asts),
    }
}

fn class_set(set: &ClassSet) -> Result<(), String> {
    match set {
        ClassSet::Item(item) => class_item(item),
        ClassSet::BinaryOp(_) => Err("uses a class operation (&&, --, ~~)".to_owned()),
    }
}

fn class_item(item: &ClassSetItem) -> Result<(), String> {
    match item {
        ClassSetItem::Empty(_) => Ok(()),
        ClassSetItem::Literal(l) => key_literal(l),
        ClassSetItem::Range(r) if r.start.c.is_ascii_digit() && r.end.c.is_ascii_digit() => Ok(()),
        ClassSetItem::Range(_) => Err("has a range that is not of digits".to_owned()),
        ClassSetItem::Perl(c) if c.kind == ast::ClassPerlKind::Digit && !c.negated => Ok(()),
        ClassSetItem::Perl(_) => Err("uses a class other than \\d".to_owned()),
        ClassSetItem::Ascii(_) | ClassSetItem::Unicode(_) => Err("uses a named class".to_owned()),
        ClassSetItem::Bracketed(_) => Err("nests a class".to_owned()),
        ClassSetItem::Union(u) => u.items.iter().try_for_each(class_item),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_voice_list_reads_without_a_duplicate_and_every_language_is_polly_s() {
        let voices = parse(DATA).unwrap();
        assert!(voices.len() >= 90, "{}", voices.len());
        for v in voices.values() {
            assert!(v.standard || v.neural, "{}", v.id);
            assert!(!v.language.is_empty() && !v.also.contains(&v.language));
        }
        assert!(parse("Joanna\ten-US\tstandard\t-\nJoanna\ten-US\tneural\t-\n").is_err());
        assert!(parse("Joanna\ten-US\tlong-form\t-\n").is_err());
    }

    #[test]
    fn a_voice_must_exist_speak_the_engine_and_the_language_asked_for() {
        assert_eq!(check_voice(None, None, None), Ok(()));
        assert_eq!(
            check_voice(Some("Joanna"), Some("neural"), Some("en-US")),
            Ok(())
        );
        assert_eq!(
            check_voice(Some("Aditi"), None, Some("hi-IN")),
            Ok(()),
            "bilingual"
        );
        assert!(
            check_voice(Some(""), None, None)
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            check_voice(Some("Nobody"), None, None)
                .unwrap_err()
                .contains("not an Amazon Polly voice")
        );
        assert!(
            check_voice(Some("joanna"), None, None).is_err(),
            "ids are case-sensitive"
        );
        assert!(
            check_voice(Some("Kevin"), Some("standard"), None)
                .unwrap_err()
                .contains("standard engine")
        );
        assert!(check_voice(Some("Joanna"), Some("generative"), None).is_err());
        assert!(
            check_voice(Some("Joanna"), None, Some("xx-INVALID"))
                .unwrap_err()
                .contains("not an Amazon Polly language")
        );
        assert_eq!(
            check_voice(Some("Joanna"), None, Some("fr-FR")).unwrap_err(),
            "Joanna speaks en-US, not fr-FR"
        );
        assert_eq!(
            check_voice(Some("Hala"), Some("neural"), Some("arb")),
            Ok(()),
            "Hala and Zayd are bilingual"
        );
        assert_eq!(
            check_voice(Some("Zayd"), Some("neural"), Some("fr-FR")).unwrap_err(),
            "Zayd speaks ar-AE and arb, not fr-FR"
        );
        assert!(
            check_voice(Some("Patrick"), None, None).is_err(),
            "long-form only"
        );
    }

    #[test]
    fn digit_regexes_are_read_in_the_portable_dialect_over_a_phone_s_keys() {
        for ok in [
            "^\\d{4}$",
            "[12]",
            "1|2|9",
            "^(?:1|2)$",
            "[0-9#*]+",
            "\\*\\d+#",
            "(\\d{3})#?",
            ".",
            "^[^0]\\d{0,3}$",
            "\\d+?",
            "#",
            "\\#\\*",
        ] {
            assert_eq!(check_digits_regex(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("((((", "is not a regex"),
            ("", "1 to 256"),
            ("(?=1)1", "look-around"),
            ("(?!0)\\d", "look-around"),
            ("(?<=1)2", "look-around"),
            ("(1)\\1", "back-reference"),
            ("(?P<pin>\\d+)", "names a group"),
            ("(?i)1", "sets flags"),
            ("[a-z]", "not of digits"),
            ("abc", "not a key of a phone"),
            ("\\w+", "other than \\d"),
            ("\\b1", "anchor"),
            ("\\p{L}", "Unicode"),
            ("[[:digit:]]", "named class"),
        ] {
            let err = check_digits_regex(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(check_digits_regex(&"1".repeat(257)).is_err());
    }

    #[test]
    fn what_the_rust_parser_takes_but_the_dialects_read_otherwise_is_refused() {
        // regex-syntax reads each of these; Java, ECMAScript or RE2 refuses it or reads it
        // as something else.
        for (bad, why) in [
            ("1**", "stacks two repetitions"),
            ("1*+", "stacks two repetitions"),
            ("1{2}{3}", "stacks two repetitions"),
            ("\\d{ 3 }", "with spaces"),
            ("\\d{1, 3}", "with spaces"),
            ("\\d{1001}", "at most 1000"),
            ("^*1", "repeats an anchor"),
            ("\\x31", "as a code escape"),
            ("[\\u0023]", "as a code escape"),
            ("\\d{,3}", "is not a regex"),
        ] {
            let err = check_digits_regex(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        for ok in ["\\d{2,4}?", "\\d{1000}", "1{2}?", "(1*)+", "(?:\\d{2}){2}"] {
            assert_eq!(check_digits_regex(ok), Ok(()), "{ok}");
        }
    }
}
