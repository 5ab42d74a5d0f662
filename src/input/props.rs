//! Property tests of the three CSV readers on hostile input: arbitrary bytes, and files built
//! from fields chosen to break a reader (quotes, separators, line breaks, control and invisible
//! characters, byte-order marks, huge numbers, odd timestamps, columns in any order).
//!
//! Whatever the input, a reader never panics; every problem it reports names a line (1 or
//! later) and a field; and every row it accepts satisfies the rules the rest of billrun
//! relies on (an id that passes `check_id`, calls within bounds, an instant within bounds).

use super::usage::{TimeBounds, UsageRows};
use super::{accounts, check_account_id, packs, RowError};
use crate::domain::limits::{MAX_AMOUNT_FEN, MAX_ROW_CALLS};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn apis() -> BTreeSet<String> {
    ["AssessQuality", "CropImage", "EnhanceImage"].map(String::from).into()
}

fn bounds() -> TimeBounds {
    TimeBounds {
        assume: None,
        earliest: "2023-11-30T16:00:00Z".parse().unwrap(),
        latest: "2026-11-01T00:05:00Z".parse().unwrap(),
    }
}

fn named(p: &RowError) -> bool {
    p.line >= 1 && !p.field.is_empty() && !p.message.is_empty()
}

/// A field as a hostile or unlucky writer might fill it.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a1".to_owned()),
        Just("CropImage".to_owned()),
        Just("2026-10-05T09:30:00+08:00".to_owned()),
        Just("2026-10-31T23:59:60+08:00".to_owned()),
        Just("9999-12-31T23:59:59Z".to_owned()),
        Just("0000-01-01T00:00:00Z".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("-0.00".to_owned()),
        Just("10000000000000.00".to_owned()),
        Just("\"quoted, with comma\"".to_owned()),
        Just("\"line\nbreak\"".to_owned()),
        Just("\u{feff}a1".to_owned()),
        Just("a1\u{200b}".to_owned()),
        Just("=cmd|'/c calc'!A1".to_owned()),
        Just("e\u{301}".to_owned()),
        "[0-9]{1,20}",
        "[ -~]{0,12}",
        "\\PC{0,8}",
        any::<String>().prop_map(|s| s.chars().take(16).collect()),
    ]
}

/// A CSV file: a header naming `columns` in some order (maybe with an extra or a repeated
/// one), then rows of hostile fields, with LF or CRLF line ends, maybe a BOM first.
fn file(columns: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let header = Just(columns.to_vec()).prop_shuffle().prop_flat_map(|cols| {
        (
            Just(cols),
            prop_oneof![
                Just(None),
                Just(Some("note")),
                Just(Some("calls")),
                Just(Some("account_id"))
            ],
        )
    });
    (
        header,
        prop::collection::vec(prop::collection::vec(field(), 0..7), 0..12),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|((mut cols, extra), rows, crlf, bom)| {
            cols.extend(extra);
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = if bom { "\u{feff}".to_owned() } else { String::new() };
            text += &cols.join(",");
            text += end;
            for r in rows {
                text += &r.join(",");
                text += end;
            }
            text.into_bytes()
        })
}

fn check_usage(bytes: &[u8]) -> Result<(), TestCaseError> {
    let b = bounds();
    // Bytes that begin as gzip but are not gzip are refused when the stream is opened, by name.
    let opened = match crate::input::stream::open(Box::new(std::io::Cursor::new(bytes.to_vec())), None) {
        Ok(opened) => opened,
        Err(e) => {
            prop_assert!(bytes.starts_with(&[0x1f, 0x8b]), "{e}");
            prop_assert!(format!("{e}").contains("gzip"), "{e}");
            return Ok(());
        }
    };
    let first_row_line = match opened.format {
        crate::input::stream::Format::Csv => 2,
        crate::input::stream::Format::Ndjson => 1,
    };
    match UsageRows::open(opened.content, opened.format, apis(), b) {
        Err(problems) => {
            prop_assert!(!problems.is_empty());
            for p in &problems {
                prop_assert!(named(p), "{p:?}");
            }
        }
        Ok(rows) => {
            for row in rows {
                match row {
                    Ok(r) => {
                        prop_assert!(check_account_id(&r.account_id).is_ok(), "{r:?}");
                        prop_assert!(apis().contains(&r.api));
                        prop_assert!((1..=MAX_ROW_CALLS).contains(&r.calls), "{r:?}");
                        prop_assert!(r.ts >= b.earliest && r.ts <= b.latest, "{r:?}");
                        prop_assert!(r.line >= first_row_line);
                    }
                    Err(problems) => {
                        prop_assert!(!problems.is_empty());
                        for p in &problems {
                            prop_assert!(named(p), "{p:?}");
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn instant_ok(t: DateTime<Utc>) -> bool {
    t.timestamp_subsec_nanos() % 1000 == 0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn usage_files_of_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_usage(&bytes)?;
    }

    #[test]
    fn usage_files_of_hostile_fields(bytes in file(&super::usage::COLUMNS)) {
        check_usage(&bytes)?;
    }

    #[test]
    fn accounts_files(bytes in prop_oneof![file(&accounts::COLUMNS), prop::collection::vec(any::<u8>(), 0..400)]) {
        match accounts::read(bytes.as_slice(), None) {
            Ok(rows) => {
                let ids: BTreeSet<&str> = rows.iter().map(|r| r.account_id.as_str()).collect();
                prop_assert_eq!(ids.len(), rows.len(), "ids are unique");
                for r in &rows {
                    prop_assert!(check_account_id(&r.account_id).is_ok());
                    prop_assert!(super::check_name(&r.name).is_ok());
                    prop_assert!(r.balance_fen.abs() <= MAX_AMOUNT_FEN);
                    prop_assert!(r.activated_at.is_none_or(instant_ok));
                }
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for p in &problems {
                    prop_assert!(named(p), "{p:?}");
                }
            }
        }
    }

    #[test]
    fn packs_files(bytes in prop_oneof![file(&packs::COLUMNS), prop::collection::vec(any::<u8>(), 0..400)]) {
        match packs::read(bytes.as_slice(), &apis()) {
            Ok(rows) => {
                for r in &rows {
                    prop_assert!(super::check_id("pack_id", &r.pack_id).is_ok());
                    prop_assert!(!r.pack_id.starts_with("free:"));
                    prop_assert!(r.valid_until > r.valid_from);
                    prop_assert!((1..=crate::domain::limits::MAX_PACK_CALLS).contains(&r.calls));
                }
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for p in &problems {
                    prop_assert!(named(p), "{p:?}");
                }
            }
        }
    }
}
