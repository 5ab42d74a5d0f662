//! Bad input is rejected whole: every bad line listed with file, line and field, a non-zero
//! exit, and nothing written.

use crate::harness::*;

const NOW: &str = "2026-11-01T01:00:00+08:00";

fn env_with_accounts() -> Env {
    let env = Env::new();
    env.import_accounts(
        NOW,
        &["a1,One,2026-01-01T00:00:00Z,10", "a2,Two,2026-01-01T00:00:00Z,10"],
    );
    env
}

/// Imports `body` as a usage file and requires it rejected with `expected` (line, field,
/// message fragment) problems, and the database unchanged.
fn usage_rejected(env: &Env, name: &str, body: &str, expected: &[(u64, &str, &str)]) {
    let before = env.snapshot(&["2026-10"]);
    let path = env.file(name, body);
    let err = env.fails(3, &["--now", NOW, "usage", "import", &path]);
    assert!(err.contains(&format!("{path}: rejected, nothing was written")), "{err}");
    for (line, field, fragment) in expected {
        let wanted = if field.is_empty() {
            format!("{path}:line {line}: ")
        } else {
            format!("{path}:line {line}: field '{field}': ")
        };
        let hit = err.lines().find(|l| l.trim_start().starts_with(&wanted));
        assert!(
            hit.is_some_and(|l| l.contains(fragment)),
            "expected {wanted}…{fragment} in:\n{err}"
        );
    }
    let listed = err
        .lines()
        .filter(|l| l.trim_start().starts_with(&format!("{path}:line")))
        .count();
    assert_eq!(
        listed,
        expected.len(),
        "every problem, and only those, is listed:\n{err}"
    );
    assert_eq!(
        env.snapshot(&["2026-10"]),
        before,
        "a rejected file changed the database"
    );
    // Nothing was written: settling finds no usage at all.
    env.ok(&["--now", "2026-11-02T00:00:00+08:00", "settle", "--month", "2026-10"]);
    assert!(env.bills("2026-10").is_empty());
}

const HEADER: &str = "account_id,api,timestamp,calls\n";

#[test]
fn every_bad_usage_line_is_listed_and_nothing_is_written() {
    let env = env_with_accounts();
    let body = format!(
        "{HEADER}a1,CropImage,2026-10-02T10:00:00+08:00,5\n\
         ghost,CropImage,2026-10-02T10:00:00+08:00,5\n\
         a1,Teleport,2026-10-02T10:00:00+08:00,5\n\
         a1,CropImage,2026-10-02T10:00:00+08:00,0\n\
         a2,CropImage,2026-10-02T10:00:00+08:00,-3\n\
         a2,CropImage,2026-10-02T10:00:00+08:00,1.5\n\
         a2,CropImage,2026-10-02 10:00:00,5\n\
         a2,CropImage,2026-10-02T10:00:00,5\n\
         a2,EnhanceImage,2026-10-02T10:00:00Z,7\n"
    );
    usage_rejected(
        &env,
        "mixed.csv",
        &body,
        &[
            (3, "account_id", "unknown account 'ghost'"),
            (4, "api", "unknown API 'Teleport'"),
            (5, "calls", "must be greater than zero"),
            (6, "calls", "not a positive whole number"),
            (7, "calls", "not a positive whole number"),
            (8, "timestamp", "not an RFC 3339 timestamp with an offset"),
            (9, "timestamp", "not an RFC 3339 timestamp with an offset"),
        ],
    );
}

#[test]
fn each_kind_of_bad_usage_row_alone_rejects_the_file() {
    let env = env_with_accounts();
    let good = "a1,CropImage,2026-10-02T10:00:00+08:00,5\n";
    let cases: [(&str, &str, &str); 6] = [
        (
            "nobody,CropImage,2026-10-02T10:00:00+08:00,5",
            "account_id",
            "unknown account 'nobody'",
        ),
        ("a1,Resize,2026-10-02T10:00:00+08:00,5", "api", "unknown API 'Resize'"),
        ("a1,CropImage,2026-10-02T10:00:00+08:00,0", "calls", "greater than zero"),
        (
            "a1,CropImage,2026-10-02T10:00:00+08:00,2.0",
            "calls",
            "not a positive whole number",
        ),
        ("a1,CropImage,2026-10-02T10:00:00,5", "timestamp", "with an offset"),
        (
            "a1,CropImage,2026-10-02T10:00:00+08:00,",
            "calls",
            "not a positive whole number",
        ),
    ];
    for (i, (row, field, why)) in cases.iter().enumerate() {
        let body = format!("{HEADER}{good}{good}{row}\n{good}");
        usage_rejected(&env, &format!("case{i}.csv"), &body, &[(4, field, why)]);
    }
}

#[test]
fn a_missing_column_is_named() {
    let env = env_with_accounts();
    usage_rejected(
        &env,
        "nocalls.csv",
        "account_id,api,timestamp\na1,CropImage,2026-10-02T10:00:00+08:00\n",
        &[(1, "calls", "missing column")],
    );
    let before = env.snapshot(&[]);
    let f = env.file("acc.csv", "account_id,name,balance\nx,X,1\n");
    let err = env.fails(3, &["accounts", "import", &f]);
    assert!(err.contains("line 1: field 'activated_at': missing column"), "{err}");
    assert_eq!(env.snapshot(&[]), before);
}

#[test]
fn a_row_with_the_wrong_number_of_fields_is_reported() {
    let env = env_with_accounts();
    usage_rejected(
        &env,
        "ragged.csv",
        &format!("{HEADER}a1,CropImage,2026-10-02T10:00:00+08:00,5,extra\n"),
        &[(2, "column 5", "the row has 5 fields, the header has 4")],
    );
}

#[test]
fn importing_the_same_usage_file_twice_is_refused() {
    let env = env_with_accounts();
    let path = env.file(
        "usage.csv",
        &format!("{HEADER}a1,CropImage,2026-10-02T10:00:00+08:00,5000\n"),
    );
    env.ok(&["--now", NOW, "usage", "import", &path]);
    let before = env.snapshot(&[]);
    // The same rows, whatever bytes carry them: an exact copy, CRLF line endings, a
    // byte-order mark, other quoting, the columns and rows in another order, an extra column.
    let rows = "a1,CropImage,2026-10-02T10:00:00+08:00,5000\n";
    let copies = [
        std::fs::read_to_string(&path).unwrap(),
        format!("{HEADER}{rows}").replace('\n', "\r\n"),
        format!("\u{feff}{HEADER}{rows}"),
        format!("{HEADER}\"a1\",\"CropImage\",\"2026-10-02T10:00:00+08:00\",\"5000\"\n"),
        "calls,note,timestamp,api,account_id\n5000,re-sent,2026-10-02T02:00:00Z,CropImage,a1\n".to_owned(),
    ];
    for (i, content) in copies.iter().enumerate() {
        let copy = env.file(&format!("usage-copy-{i}.csv"), content);
        let err = env.fails(3, &["--now", NOW, "usage", "import", &copy]);
        assert!(err.contains("already imported (import #1"), "{content:?}: {err}");
        assert!(err.contains("would bill their calls twice"), "{err}");
        assert_eq!(env.snapshot(&[]), before, "{content:?}");
    }
    env.settle("2026-10", "2026-11-02T00:00:00+08:00");
    assert_eq!(line(&env.bills("2026-10"), "a1", CROP)["total_calls"], "5000");
}

#[test]
fn bad_accounts_files_write_nothing() {
    let env = env_with_accounts();
    let before = env.snapshot(&[]);
    let f = env.file(
        "accounts.csv",
        "account_id,name,activated_at,balance\n\
         n1,New,2026-01-01T00:00:00Z,10\n\
         n2,Bad decimal,,12.3.4\n\
         n3,Fraction of a fen,,0.001\n\
         n1,Duplicate,,0\n\
         n4,No offset,2026-01-01T00:00:00,0\n",
    );
    let err = env.fails(3, &["accounts", "import", &f]);
    for want in [
        "line 3: field 'balance': '12.3.4' is not a plain decimal",
        "line 4: field 'balance': '0.001' has more than two decimals",
        "line 5: field 'account_id': duplicate account id 'n1' (first on line 2)",
        "line 6: field 'activated_at'",
    ] {
        assert!(err.contains(want), "expected {want:?} in:\n{err}");
    }
    assert_eq!(env.snapshot(&[]), before);
    // An id already in the database is refused too, and the good rows of that file are not kept.
    let f = env.file(
        "again.csv",
        "account_id,name,activated_at,balance\nn9,Fine,,1\na1,Again,,5\n",
    );
    let err = env.fails(3, &["accounts", "import", &f]);
    assert!(
        err.contains("line 3: field 'account_id': account 'a1' already exists"),
        "{err}"
    );
    assert_eq!(env.snapshot(&[]), before);
    assert!(!env.accounts().contains_key("n9"));
}

#[test]
fn bad_packs_files_write_nothing() {
    let env = env_with_accounts();
    let before = env.snapshot(&[]);
    let f = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         P1,a1,CropImage,100,2026-10-01T00:00:00Z,2026-12-01T00:00:00Z,2026-09-01T00:00:00Z\n\
         P2,ghost,CropImage,100,2026-10-01T00:00:00Z,2026-12-01T00:00:00Z,2026-09-01T00:00:00Z\n\
         P3,a1,CropImage,100,2026-10-01T00:00:00Z,2026-09-01T00:00:00Z,2026-09-01T00:00:00Z\n",
    );
    let err = env.fails(3, &["packs", "import", &f]);
    assert!(
        err.contains("line 4: field 'valid_until': valid_until must be after valid_from"),
        "{err}"
    );
    assert_eq!(env.snapshot(&[]), before);
    // Once the file is otherwise valid, the unknown account is the one problem left.
    let f = env.file(
        "packs2.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         P1,a1,CropImage,100,2026-10-01T00:00:00Z,2026-12-01T00:00:00Z,2026-09-01T00:00:00Z\n\
         P2,ghost,CropImage,100,2026-10-01T00:00:00Z,2026-12-01T00:00:00Z,2026-09-01T00:00:00Z\n",
    );
    let err = env.fails(3, &["packs", "import", &f]);
    assert!(
        err.contains("line 3: field 'account_id': unknown account 'ghost'"),
        "{err}"
    );
    assert_eq!(env.snapshot(&[]), before);
}

#[test]
fn bad_command_lines_and_configuration_are_clear_errors() {
    let env = env_with_accounts();
    let err = env.fails(2, &["--now", "2026-11-01 00:00", "enforce"]);
    assert!(err.contains("not an RFC 3339 timestamp"), "{err}");
    let err = env.fails(2, &["--tz", "Mars/Olympus", "enforce"]);
    assert!(err.contains("not an IANA time zone"), "{err}");
    let err = env.fails(2, &["settle", "--month", "2026-13"]);
    assert!(err.contains("is not a month"), "{err}");
    let err = env.fails(3, &["recharge", "ghost", "10"]);
    assert!(err.contains("unknown account 'ghost'"), "{err}");
    let err = env.fails(3, &["recharge", "a1", "-5"]);
    assert!(err.contains("must be greater than zero"), "{err}");
    let err = env.fails(3, &["recharge", "a1", "1.001"]);
    assert!(err.contains("more than two decimals"), "{err}");
    let err = env.fails(3, &["accounts", "activate", "ghost"]);
    assert!(err.contains("unknown account 'ghost'"), "{err}");
    let cat = env.file(
        "bad.toml",
        "[[versions]]\nversion = \"x\"\neffective_from = \"2026-1\"\napis = []\n",
    );
    let err = env.fails(3, &["--catalog", &cat, "packs", "list"]);
    assert!(err.contains("effective_from"), "{err}");
    let err = env.fails(3, &["usage", "import", "/nonexistent/usage.csv"]);
    assert!(err.contains("cannot read /nonexistent/usage.csv"), "{err}");
    let out = std::process::Command::new(BIN)
        .args([
            "--database",
            "postgres://bill:hunter2@localhost:1/x",
            "accounts",
            "list",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Nothing listens on port 1: the database is unavailable (retry), and the password is hidden.
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(!err.contains("hunter2") && err.contains("bill:***@"), "{err}");
    let out = std::process::Command::new(BIN)
        .args(["--database", "mysql://a:b@c/d", "accounts", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL 'mysql://a:***@c/d'"));
}

#[test]
fn a_required_column_named_twice_is_refused_not_guessed() {
    let env = env_with_accounts();
    usage_rejected(
        &env,
        "twice.csv",
        "account_id,api,timestamp,calls,calls\na1,CropImage,2026-10-02T10:00:00+08:00,5,500\n",
        &[(1, "calls", "the column appears 2 times (columns 4 and 5)")],
    );
}

#[test]
fn a_file_with_thousands_of_bad_rows_lists_the_first_thousand_and_counts_the_rest() {
    let env = env_with_accounts();
    let mut body = String::from(HEADER);
    for i in 0..5000 {
        body += &format!("a1,CropImage,2026-10-02T10:00:00+08:00,x{i}\n");
    }
    let path = env.file("many.csv", &body);
    let err = env.fails(3, &["--now", NOW, "usage", "import", &path]);
    assert!(
        err.contains("rejected, nothing was written (5000 problems; the first 1000 are listed)"),
        "{}",
        &err[..300]
    );
    let listed = err
        .lines()
        .filter(|l| l.trim_start().starts_with(&format!("{path}:line")))
        .count();
    assert_eq!(listed, 1000);
    assert!(err.contains("… and 4000 more problems, not listed"));
    assert!(!err.contains("line 0"), "every listed problem has a real line");
    assert!(err.contains(&format!("{path}:line 1001: field 'calls'")));
}

#[test]
fn names_that_would_drive_a_terminal_and_ids_that_look_like_others_are_refused() {
    let env = env_with_accounts();
    let before = env.snapshot(&[]);
    let f = env.file(
        "accounts.csv",
        "account_id,name,activated_at,balance\n\
         t1,\"Evil\u{1b}]0;owned\u{7}\u{1b}[2J\",,0\n\
         t2,Nul\u{0}byte,,0\n\
         t3,Reversed \u{202e}gpj.exe,,0\n\
         a1\u{200b},Zero width,,0\n\
         \u{202e}a2,Override,,0\n\
         Zoe\u{0308},Decomposed,,0\n\
         t4,Line\u{2028}break,,0\n\
         t5,Fine,,0\n",
    );
    let err = env.fails(3, &["accounts", "import", &f]);
    for (line, field) in [
        (2, "name"),
        (3, "name"),
        (4, "name"),
        (5, "account_id"),
        (6, "account_id"),
        (7, "account_id"),
        (8, "name"),
    ] {
        assert!(
            err.contains(&format!("accounts.csv:line {line}: field '{field}'")),
            "line {line}:\n{err}"
        );
    }
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{202e}'),
        "messages show escapes, not the characters"
    );
    assert!(err.contains("\\u{001b}"), "{err}");
    assert_eq!(env.snapshot(&[]), before);
    // Usage and packs name accounts by the same rules.
    usage_rejected(
        &env,
        "lookalike.csv",
        &format!("{HEADER}a1\u{200b},CropImage,2026-10-02T10:00:00+08:00,5\n"),
        &[(2, "account_id", "invisible formatting character")],
    );
}

#[test]
fn a_line_too_long_to_be_a_row_is_refused_before_it_fills_the_memory() {
    let env = env_with_accounts();
    let huge = "x".repeat(200_000);
    usage_rejected(
        &env,
        "huge.csv",
        &format!("{HEADER}a1,CropImage,2026-10-02T10:00:00+08:00,5\na1,{huge},2026-10-02T10:00:00+08:00,5\n"),
        &[(3, "(line)", "longer than 65536 bytes")],
    );
    let f = env.file(
        "accounts.csv",
        &format!("account_id,name,activated_at,balance\nbig,{huge},,0\n"),
    );
    let err = env.fails(3, &["accounts", "import", &f]);
    assert!(
        err.contains("accounts.csv:line 2: field '(line)'"),
        "{}",
        &err[..200.min(err.len())]
    );
}

/// Excel saves "CSV UTF-8" with a byte-order mark and CRLF line ends: its problems are named
/// on their own lines. A file saved in GBK is told how to save it instead.
#[test]
fn an_excel_saved_file_names_its_lines_right_and_a_gbk_one_says_how_to_save_it() {
    let env = env_with_accounts();
    usage_rejected(
        &env,
        "excel.csv",
        "\u{feff}account_id,api,timestamp,calls\r\n\
         a1,CropImage,2026-10-05T00:00:00+08:00,5\r\n\
         a1,CropImage,2026-10-05T00:00:00+08:00,-5\r\n\
         a2,Nope,2026-10-05T00:00:00+08:00,5\r\n",
        &[(3, "calls", "-5"), (4, "api", "Nope")],
    );
    // 测试 in GBK, in an account's name.
    let path = env.dir.path().join("gbk.csv");
    let mut gbk = b"account_id,name,activated_at,balance\r\nz1,".to_vec();
    gbk.extend([0xB2, 0xE2, 0xCA, 0xD4]);
    gbk.extend(b",,0\r\n");
    std::fs::write(&path, gbk).unwrap();
    let err = env.fails(3, &["--now", NOW, "accounts", "import", path.to_str().unwrap()]);
    assert!(
        err.contains("gbk.csv:line 2: field 'name': not valid UTF-8 text"),
        "{err}"
    );
    assert!(err.contains("save it as \"CSV UTF-8\""), "{err}");
}
