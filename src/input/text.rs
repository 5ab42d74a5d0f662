//! What an id or a name may contain.
//!
//! Ids (accounts, prepaid packs, payment references) are keys: two ids that look the same on
//! screen must be the same id. So an id is refused if it holds a control character, an invisible
//! formatting character (a zero-width space, a byte-order mark, a bidirectional override), any
//! space other than the plain one, or if it is not in Unicode normalization form C (the same
//! letter written as one character or as a letter and a combining accent would otherwise be two
//! different accounts).
//!
//! Names are display text, shown on terminals, in spreadsheets and in the month report. A name
//! is refused if it holds a control character (an escape sequence that retitles or clears a
//! terminal, a NUL byte PostgreSQL cannot store, a line break that splits a table row) or a
//! bidirectional override or isolate, which reorders how the text around it is displayed.

use crate::domain::limits::{MAX_ID_CHARS, MAX_NAME_CHARS};
use unicode_normalization::{is_nfc, UnicodeNormalization};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The characters that change the direction of the text around them: the bidirectional
/// embeddings, overrides and isolates, and the directional marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// What is wrong with `c` in an id, if anything.
fn id_char_problem(c: char) -> Option<&'static str> {
    if c.is_control() {
        Some("a control character")
    } else if c.general_category() == GeneralCategory::Format {
        Some("an invisible formatting character (zero-width, byte-order mark or bidirectional control)")
    } else if c.is_whitespace() && c != ' ' {
        Some("a space other than the plain space")
    } else {
        None
    }
}

/// Checks an id of kind `what` (`account_id`, `pack_id`, `reference`): non-empty, at most
/// [`MAX_ID_CHARS`] characters, no surrounding spaces, only visible characters, in NFC.
pub fn check_id(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if text.trim() != text {
        return Err(format!("{what} '{}' starts or ends with a space", shown(text)));
    }
    // Printable ASCII (what meters mostly write) holds no control, formatting or odd space
    // character and is NFC: the per-character checks below are for the rest.
    if text.len() <= MAX_ID_CHARS && text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Ok(());
    }
    check_id_chars(what, text)
}

/// [`check_id`]'s checks of length and of each character, for any text.
fn check_id_chars(what: &str, text: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(format!(
            "{what} is {chars} characters long; at most {MAX_ID_CHARS} are allowed"
        ));
    }
    if let Some((i, c, problem)) = text
        .chars()
        .enumerate()
        .find_map(|(i, c)| id_char_problem(c).map(|p| (i, c, p)))
    {
        return Err(format!(
            "{what} '{}' contains {problem} (U+{:04X}, character {})",
            shown(text),
            c as u32,
            i + 1
        ));
    }
    if !is_nfc(text) {
        return Err(format!(
            "{what} '{}' is not in Unicode normalization form C: write it as '{}'",
            shown(text),
            text.nfc().collect::<String>()
        ));
    }
    Ok(())
}

/// Checks an account id (see [`check_id`]).
pub fn check_account_id(text: &str) -> Result<(), String> {
    check_id("account_id", text)
}

/// Checks a display name: at most [`MAX_NAME_CHARS`] characters, no control character and no
/// bidirectional control. Empty is allowed.
pub fn check_name(text: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "the name is {chars} characters long; at most {MAX_NAME_CHARS} are allowed"
        ));
    }
    if let Some((i, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() || is_bidi_control(*c) || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        let what = if c.is_control() {
            "a control character"
        } else if is_bidi_control(c) {
            "a bidirectional control, which reorders the text displayed around it"
        } else {
            "a line or paragraph separator"
        };
        return Err(format!(
            "the name '{}' contains {what} (U+{:04X}, character {})",
            shown(text),
            c as u32,
            i + 1
        ));
    }
    Ok(())
}

/// `text` as it may be shown in a message: control and formatting characters written as
/// `\u{…}` escapes, at most 64 characters.
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 64 {
            out.push('…');
            break;
        }
        if c.is_control() || c.general_category() == GeneralCategory::Format || is_bidi_control(c) {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_passes_the_checks_the_fast_path_skips() {
        for c in ' '..='~' {
            let id = format!("a{c}b");
            assert_eq!(check_id_chars("id", &id), Ok(()), "{id:?}");
            assert_eq!(check_id("id", &id), Ok(()), "{id:?}");
        }
        let longest = "x".repeat(MAX_ID_CHARS);
        assert_eq!(check_id_chars("id", &longest), check_id("id", &longest));
        assert!(check_id("id", &format!("{longest}x")).is_err());
        assert!(check_id("id", " a").is_err() && check_id("id", "a ").is_err() && check_id("id", "").is_err());
    }

    #[test]
    fn ids_that_would_look_like_another_are_refused() {
        for good in ["acme", "示例-1", "a b", "Zoë", "x_y.z@corp"] {
            assert_eq!(check_id("account_id", good), Ok(()), "{good:?}");
        }
        for (bad, why) in [
            ("", "empty"),
            (" acme", "space"),
            ("acme\u{200B}", "formatting"),
            ("ac\u{202E}me", "formatting"),
            ("\u{FEFF}acme", "formatting"),
            ("ac\u{1b}]0;x\u{7}me", "control"),
            ("a\u{00A0}b", "other than the plain space"),
            ("Zoe\u{0308}", "normalization form C: write it as 'Zoë'"),
        ] {
            let e = check_id("account_id", bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(check_id("account_id", &"x".repeat(MAX_ID_CHARS)).is_ok());
        assert!(check_id("account_id", &"x".repeat(MAX_ID_CHARS + 1)).is_err());
    }

    #[test]
    fn names_may_not_drive_a_terminal_or_reorder_text() {
        for good in [
            "",
            "Acme Photo Ltd",
            "示例三 Clarity Studio",
            "=HYPERLINK(\"x\")",
            "👩\u{200D}💻 Labs",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
        for bad in [
            "a\u{1b}[2Jb",
            "a\u{0}b",
            "a\nb",
            "evil\u{202E}gpj.exe",
            "a\u{2028}b",
            "\u{9b}31m",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"n".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn messages_show_invisible_characters() {
        assert_eq!(shown("a\u{1b}b\u{200B}"), "a\\u{001b}b\\u{200b}");
    }
}
