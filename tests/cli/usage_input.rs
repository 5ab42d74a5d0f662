//! Usage as meters and log shippers send it: standard input, gzip, NDJSON, event ids, and a
//! stream cut off by SIGKILL.

use crate::harness::*;
use std::io::Write;
use std::process::{Command, Stdio};

const NOW: &str = "2026-11-01T01:00:00+08:00";

/// A generated month: its accounts imported into `env`; the usage file's path.
fn generated(env: &Env) -> String {
    let dir = env.dir.path().join("gen");
    let dir = dir.to_str().unwrap();
    env.ok(&[
        "gen",
        "--accounts",
        "200",
        "--rows",
        "5000",
        "--month",
        "2026-10",
        "--seed",
        "5",
        "--out",
        dir,
    ]);
    env.ok(&[
        "--now",
        "2026-10-01T00:00:00+08:00",
        "accounts",
        "import",
        &format!("{dir}/accounts.csv"),
    ]);
    format!("{dir}/usage.csv")
}

/// `bytes` compressed by the system's own `gzip`, not by billrun's library.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip must be installed");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// The CSV usage file's rows as NDJSON, one object per line, fields in another order and
/// calls as numbers.
fn as_ndjson(csv: &str) -> String {
    parse_csv(csv)
        .iter()
        .map(|r| {
            let calls: u64 = r["calls"].parse().unwrap();
            let object = serde_json::json!({
                "timestamp": r["timestamp"],
                "calls": calls,
                "api": r["api"],
                "account_id": r["account_id"],
            });
            format!("{object}\n")
        })
        .collect()
}

/// Runs `billrun args` with `input` on standard input; returns its output.
fn with_stdin(env: &Env, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = env
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A rejected stream may stop reading early: a broken pipe is not the test's failure.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn usage_through_stdin_gzip_or_ndjson_bills_the_same_as_the_plain_file() {
    let mut exports = Vec::new();
    let mut plain_csv = String::new();
    for way in ["plain file", "gzip on stdin", "NDJSON gzip file", "NDJSON on stdin"] {
        let env = Env::new();
        let usage = generated(&env);
        plain_csv = std::fs::read_to_string(&usage).unwrap();
        let ndjson = as_ndjson(&plain_csv);
        let import = ["--now", NOW, "usage", "import"];
        let stdout = match way {
            "plain file" => env.ok(&[&import[..], &[usage.as_str()]].concat()),
            "gzip on stdin" => stdout_of(&with_stdin(
                &env,
                &[&import[..], &["-"]].concat(),
                &gzip(plain_csv.as_bytes()),
            )),
            "NDJSON gzip file" => {
                let path = env.dir.path().join("usage.ndjson.gz");
                std::fs::write(&path, gzip(ndjson.as_bytes())).unwrap();
                env.ok(&[&import[..], &[path.to_str().unwrap()]].concat())
            }
            _ => stdout_of(&with_stdin(&env, &[&import[..], &["-"]].concat(), ndjson.as_bytes())),
        };
        assert!(stdout.contains("imported 5000 usage rows"), "{way}: {stdout}");
        if way.contains("stdin") {
            assert!(stdout.contains("from <stdin>"), "{stdout}");
        }
        // The same rows, whatever carries them, are refused a second time.
        let again = with_stdin(&env, &[&import[..], &["-"]].concat(), &gzip(ndjson.as_bytes()));
        assert_eq!(
            again.status.code(),
            Some(3),
            "{way}: the same rows again must be refused"
        );
        assert!(String::from_utf8_lossy(&again.stderr).contains("already imported"));
        let again = env.fails(3, &[&import[..], &[usage.as_str()]].concat());
        assert!(again.contains("already imported"), "{again}");
        env.settle("2026-10", "2026-11-01T02:00:00+08:00");
        env.ok(&["verify"]);
        exports.push((way, env.bills_csv("2026-10")));
    }
    assert!(exports[0].1.lines().count() > 200, "{}", plain_csv.len());
    for (way, export) in &exports[1..] {
        assert_same(
            export,
            &exports[0].1,
            &format!("bills from {way} against the plain file's"),
        );
    }
}

#[test]
fn an_event_imported_before_is_not_billed_again_in_any_file_or_format() {
    let env = Env::new();
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &["a1,A,2026-09-01T00:00:00+08:00,0", "a2,B,2026-09-01T00:00:00+08:00,0"],
    );
    let first = env.file(
        "first.csv",
        "account_id,api,timestamp,calls,event_id\n\
         a1,CropImage,2026-10-05T10:00:00+08:00,1500,e1\n\
         a1,CropImage,2026-10-05T10:00:01+08:00,10,e2\n\
         a2,CropImage,2026-10-05T10:00:02+08:00,7,e1\n\
         a1,CropImage,2026-10-05T10:00:03+08:00,5,\n",
    );
    let out = env.ok(&["--now", NOW, "usage", "import", &first]);
    assert!(out.contains("imported 4 usage rows (1522 calls)"), "{out}");
    assert!(!out.contains("duplicate"), "{out}");
    // A shipper's retry: e2 again, e3 twice, a2's e1 again; only e3's first line is new.
    let second = env.file(
        "second.ndjson",
        "{\"account_id\":\"a1\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-05T10:00:01+08:00\",\"calls\":10,\"event_id\":\"e2\"}\n\
         {\"account_id\":\"a1\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-06T10:00:00+08:00\",\"calls\":20,\"event_id\":\"e3\"}\n\
         {\"account_id\":\"a1\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-06T10:00:00+08:00\",\"calls\":20,\"event_id\":\"e3\"}\n\
         {\"account_id\":\"a2\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-05T10:00:02+08:00\",\"calls\":7,\"event_id\":\"e1\"}\n",
    );
    let out = env.ok(&["--now", NOW, "usage", "import", &second]);
    assert!(out.contains("imported 1 usage rows (20 calls)"), "{out}");
    assert!(out.contains("skipped 3 duplicate rows"), "{out}");
    // A batch made only of events already imported is accepted and adds nothing, even sent
    // byte for byte again; no import is recorded for it.
    for resent in [
        gzip(b"account_id,api,event_id,timestamp,calls\na1,CropImage,e1,2026-10-05T10:00:00+08:00,1500\n"),
        std::fs::read(&second).unwrap(),
    ] {
        let out = stdout_of(&with_stdin(&env, &["--now", NOW, "usage", "import", "-"], &resent));
        assert!(
            out.contains("nothing imported from <stdin>: its") && out.contains("rows are all events imported before"),
            "{out}"
        );
    }
    let recorded: (i64, i64) = (
        env.query("SELECT COUNT(*) FROM usage_imports"),
        env.query("SELECT CAST(SUM(duplicates) AS BIGINT) FROM usage_imports"),
    );
    assert_eq!(recorded, (2, 3));
    // A known event with other calls, time or API is a conflict, never a silent drop: refused,
    // naming where it came first.
    let changed = env.file(
        "changed.csv",
        "account_id,api,timestamp,calls,event_id\n\
         a1,CropImage,2026-10-05T10:00:00+08:00,1501,e1\n",
    );
    let err = env.fails(3, &["--now", NOW, "usage", "import", &changed]);
    assert!(
        err.contains(
            "line 2: field 'event_id': event 'e1' of account 'a1' came before (import #1, line 2) with calls 1500"
        ),
        "{err}"
    );

    env.settle("2026-10", "2026-11-01T02:00:00+08:00");
    env.ok(&["verify"]);
    let bills = env.bills("2026-10");
    assert_eq!(line(&bills, "a1", CROP)["total_calls"], "1535");
    assert_eq!(line(&bills, "a2", CROP)["total_calls"], "7");

    // After the settle: a resent event is no late usage; a new one is.
    let late = env.file(
        "late.csv",
        "account_id,api,timestamp,calls,event_id
         a1,CropImage,2026-10-06T10:00:00+08:00,20,e3
         a1,CropImage,2026-10-30T10:00:00+08:00,4,e4
",
    );
    let out = env.ok(&["--now", "2026-11-02T00:00:00+08:00", "usage", "import", &late]);
    assert!(out.contains("imported 1 usage rows (4 calls)"), "{out}");
    assert!(out.contains("warning: 1 rows are late"), "{out}");
    assert!(out.contains("skipped 1 duplicate rows"), "{out}");
}

#[test]
fn bad_ndjson_and_damaged_gzip_are_refused_with_their_lines_and_nothing_is_written() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a1,A,2026-09-01T00:00:00+08:00,0"]);
    let ndjson = "{\"account_id\":\"a1\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-05T10:00:00Z\",\"calls\":3}\n\
                  {\"account_id\":\"a1\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-05T10:00:00Z\",\"calls\":-3}\n\
                  \n\
                  {\"account_id\":\"a1\",\"api\":\"CropImage\",\"calls\":3\n\
                  {\"account_id\":\"nobody\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-05T10:00:00Z\",\"calls\":1,\"event_id\":\"x\"}\n\
                  {\"api\":\"CropImage\",\"timestamp\":\"2026-10-05T10:00:00Z\",\"calls\":1}\n";
    let path = env.file("bad.ndjson", ndjson);
    let err = env.fails(3, &["--now", NOW, "usage", "import", &path]);
    for expected in [
        "line 2: field 'calls'",
        "line 4: field '(line)'",
        "line 5: field 'account_id': unknown account 'nobody'",
        "line 6: field 'account_id': the field is missing",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let good = "account_id,api,timestamp,calls\n".to_owned() + &"a1,CropImage,2026-10-05T10:00:00Z,1\n".repeat(20_000);
    let compressed = gzip(good.as_bytes());
    let cut = &compressed[..compressed.len() - 10];
    let out = with_stdin(&env, &["--now", NOW, "usage", "import", "-"], cut);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gzip data is damaged or cut short"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: i64 = env.query("SELECT COUNT(*) FROM usage_chunks");
    let imports: i64 = env.query("SELECT COUNT(*) FROM usage_imports");
    assert_eq!((rows, imports), (0, 0));
    // The whole archive imports.
    let out = stdout_of(&with_stdin(&env, &["--now", NOW, "usage", "import", "-"], &compressed));
    assert!(out.contains("imported 20000 usage rows"), "{out}");
}

#[test]
fn a_streamed_import_killed_midway_leaves_nothing_and_the_stream_can_be_sent_again() {
    let env = Env::new();
    let usage = generated(&env);
    let text = std::fs::read(&usage).unwrap();
    let mut child = env
        .command(&["--now", NOW, "usage", "import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // All but the last rows: once written, billrun has read all of them but what a pipe
    // holds, and is waiting inside its import for the rest.
    let cut = text.len() - 2000;
    stdin.write_all(&text[..cut]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "billrun must still be waiting for input"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(stdin);
    let rows: i64 = env.query("SELECT COUNT(*) FROM usage_chunks");
    let imports: i64 = env.query("SELECT COUNT(*) FROM usage_imports");
    assert_eq!((rows, imports), (0, 0), "a killed import must leave nothing");
    let out = stdout_of(&with_stdin(&env, &["--now", NOW, "usage", "import", "-"], &text));
    assert!(out.contains("imported 5000 usage rows"), "{out}");
    env.ok(&["verify"]);
}

/// A sender that dies mid-stream never has its rows billed twice when it sends the stream
/// again: a stream cut mid-row is refused whole, and a sender that says what it sends
/// (`--expect-rows`, `--expect-sha256`) has a stream cut at a line's end refused too.
#[test]
fn a_stream_cut_short_is_refused_whole_and_sending_it_again_bills_it_once() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a1,A,2026-09-01T00:00:00+08:00,0"]);
    let mut text = String::from("account_id,api,timestamp,calls\n");
    for day in 1..=20 {
        text += &format!("a1,CropImage,2026-10-{day:02}T10:00:00+08:00,100000\n");
    }
    let import = ["--now", NOW, "usage", "import", "-"];
    let nothing_written = |what: &str| {
        let counts: (i64, i64) = (
            env.query("SELECT COUNT(*) FROM usage_chunks"),
            env.query("SELECT COUNT(*) FROM usage_imports"),
        );
        assert_eq!(counts, (0, 0), "{what} must write nothing");
    };
    // The sender dies in the middle of the last row's calls (100000 cut to 10).
    let mid_field = text.len() - 5;
    assert!(text[..mid_field].ends_with(",10"));
    for input in [text.as_bytes()[..mid_field].to_vec(), {
        // NDJSON cut mid-object, and gzip without its trailer.
        let ndjson = as_ndjson(&text);
        ndjson.as_bytes()[..ndjson.len() - 7].to_vec()
    }] {
        let out = with_stdin(&env, &import, &input);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains("ends in the middle of a line"), "{err}");
        nothing_written("a stream cut mid-row");
    }
    let gz = gzip(text.as_bytes());
    let out = with_stdin(&env, &import, &gz[..gz.len() - 8]);
    assert_eq!(out.status.code(), Some(3));
    nothing_written("a gzip stream without its trailer");

    // Cut at a line's end, the bytes look whole: a sender that says how many rows it sends,
    // or their SHA-256, has it refused.
    let at_line = text[..text.len() - 1].rfind('\n').unwrap() + 1;
    let sha256 = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(gz.as_slice());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let out = with_stdin(
        &env,
        &[&import[..], &["--expect-rows", "20"]].concat(),
        &text.as_bytes()[..at_line],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("the input holds 19 usage rows, and --expect-rows says 20"),
        "{err}"
    );
    let cut_gz = gzip(&text.as_bytes()[..at_line]);
    let out = with_stdin(&env, &[&import[..], &["--expect-sha256", &sha256]].concat(), &cut_gz);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--expect-sha256 says"), "{err}");
    nothing_written("a stream cut at a line's end, with what was sent said");

    // Sent again whole, with what it is: billed once.
    let out = stdout_of(&with_stdin(
        &env,
        &[
            &import[..],
            &["--expect-rows", "20", "--expect-sha256", &sha256.to_uppercase()],
        ]
        .concat(),
        &gz,
    ));
    assert!(out.contains("imported 20 usage rows (2000000 calls)"), "{out}");
    env.settle("2026-10", "2026-11-01T02:00:00+08:00");
    assert_eq!(line(&env.bills("2026-10"), "a1", CROP)["total_calls"], "2000000");
}

#[test]
fn an_ndjson_field_given_twice_is_refused() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a1,A,2026-09-01T00:00:00+08:00,0"]);
    let path = env.file(
        "twice.ndjson",
        "{\"account_id\":\"a1\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-05T10:00:00Z\",\"calls\":3,\"calls\":300}\n",
    );
    let err = env.fails(3, &["--now", NOW, "usage", "import", &path]);
    assert!(err.contains("line 1: field 'calls': is given twice"), "{err}");
}

/// Usage of an account never opened, or dated in a month before the one it opened in, would
/// be billed with no free pack (and send an arrears notice): refused with its lines, unless
/// the import says to take it as it is. Usage earlier in the opening month is billed, as the
/// rules say. Both as plain CSV and with event ids (which PostgreSQL imports another way).
#[test]
fn usage_of_an_account_not_open_yet_is_refused_unless_accepted() {
    for with_events in [false, true] {
        let env = Env::new();
        env.import_accounts(
            "2026-10-01T00:00:00+08:00",
            &[
                "never,Never,,0",
                "later,Later,2026-11-03T00:00:00+08:00,0",
                "mid,Mid,2026-10-20T12:00:00+08:00,0",
            ],
        );
        let mut rows = vec![
            "never,CropImage,2026-10-05T10:00:00+08:00,10",
            "later,CropImage,2026-10-20T10:00:00+08:00,20",
            "later,CropImage,2026-11-01T00:10:00+08:00,30",
            "mid,CropImage,2026-10-05T10:00:00+08:00,40",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        let mut header = "account_id,api,timestamp,calls".to_owned();
        if with_events {
            header += ",event_id";
            for (i, r) in rows.iter_mut().enumerate() {
                *r += &format!(",ev-{i}");
            }
        }
        let path = env.file("usage.csv", &format!("{header}\n{}\n", rows.join("\n")));
        let err = env.fails(3, &["--now", NOW, "usage", "import", &path]);
        assert!(
            err.contains(
                "line 2: field 'account_id': account 'never' was never opened (it has no activated_at): its usage \
                 would be billed with no free pack; import with --allow-unopened to bill it as it is"
            ),
            "{err}"
        );
        assert!(
            err.contains(
                "line 3: field 'account_id': account 'later' opened at 2026-11-02T16:00:00+00:00, and this row is \
                 dated 2026-10-20T02:00:00+00:00, in a month before the one it opened in"
            ),
            "{err}"
        );
        assert!(
            err.contains("(2 problems)"),
            "lines 4 and 5 are of the opening month: {err}"
        );
        let rows_kept: i64 = env.query("SELECT COUNT(*) FROM usage_chunks");
        assert_eq!(rows_kept, 0);
        let out = env.ok(&["--now", NOW, "usage", "import", "--allow-unopened", &path]);
        assert!(out.contains("imported 4 usage rows (100 calls)"), "{out}");
        env.ok(&["verify"]);
    }
}

/// A sender that pauses mid-stream holds up nothing: standard input is read before the import
/// takes the database's write lock, so a payment's recharge goes through meanwhile.
#[test]
fn a_slow_sender_never_makes_a_recharge_wait() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a1,A,2026-09-01T00:00:00+08:00,0"]);
    let mut child = env
        .command(&["--now", NOW, "usage", "import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"account_id,api,timestamp,calls\na1,CropImage,2026-10-05T10:00:00+08:00,5\n")
        .unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "the import waits for the rest");
    let started = std::time::Instant::now();
    env.ok(&["--now", NOW, "recharge", "a1", "1.00"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the recharge waited {:?} on the paused import",
        started.elapsed()
    );
    stdin.write_all(b"a1,CropImage,2026-10-06T10:00:00+08:00,6\n").unwrap();
    drop(stdin);
    let out = stdout_of(&child.wait_with_output().unwrap());
    assert!(out.contains("imported 2 usage rows (11 calls)"), "{out}");
}

/// A nightly "month so far" export without event ids, imported on top of the night before's,
/// would bill the days it repeats twice: refused, naming the import it repeats and how many
/// rows; the new rows alone go in; `--allow-repeats` takes it deliberately.
#[test]
fn a_file_that_repeats_an_earlier_import_is_refused_unless_accepted() {
    let env = Env::new();
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &["a1,A,2026-09-01T00:00:00+08:00,0", "a2,B,2026-09-01T00:00:00+08:00,0"],
    );
    let days = |name: &str, from: u32, to: u32| {
        let mut body = String::from("account_id,api,timestamp,calls\n");
        for day in from..=to {
            for account in ["a1", "a2"] {
                body += &format!("{account},CropImage,2026-10-{day:02}T10:00:00+08:00,{}\n", 100 + day);
            }
        }
        env.file(name, &body)
    };
    let night_before = days("to-10th.csv", 1, 10);
    env.ok(&["--now", NOW, "usage", "import", &night_before]);
    let so_far = days("to-12th.csv", 1, 12);
    let err = env.fails(3, &["--now", NOW, "usage", "import", &so_far]);
    assert!(
        err.contains("to-12th.csv:line 1: field '(file)': about 20 of its 24 rows without an event_id repeat rows of earlier imports"),
        "{err}"
    );
    assert!(err.contains("about 20 of import #1 ("), "{err}");
    assert!(err.contains("to-10th.csv, imported 2026-10-31T17:00:00+00:00"), "{err}");
    let imports: i64 = env.query("SELECT COUNT(*) FROM usage_imports");
    assert_eq!(imports, 1, "nothing of the refused file is kept");
    // The new days alone are no repeat.
    let new_days = days("11th-12th.csv", 11, 12);
    let out = env.ok(&["--now", NOW, "usage", "import", &new_days]);
    assert!(out.contains("imported 4 usage rows"), "{out}");
    // Deliberately: taken as it is.
    let out = env.ok(&["--now", NOW, "usage", "import", "--allow-repeats", &so_far]);
    assert!(out.contains("imported 24 usage rows"), "{out}");
    env.ok(&["verify"]);
}

/// A MySQL or CRM export writes times without an offset: refused, saying how to read them, and
/// read in the zone `--assume-tz` names, the same instants as with the offset written out.
#[test]
fn timestamps_without_an_offset_are_read_in_the_zone_assumed() {
    let env = Env::new();
    let accounts = env.file(
        "crm.csv",
        "account_id,name,activated_at,balance\na1,A,2026-10-01 00:00:00,0\n",
    );
    let err = env.fails(3, &["--now", NOW, "accounts", "import", &accounts]);
    assert!(err.contains("--assume-tz ZONE reads timestamps without one"), "{err}");
    env.ok(&[
        "--now",
        NOW,
        "accounts",
        "import",
        "--assume-tz",
        "Asia/Shanghai",
        &accounts,
    ]);
    let usage = env.file(
        "mysql.csv",
        "account_id,api,timestamp,calls\n\
         a1,CropImage,2026-10-31 23:59:59,5\n\
         a1,CropImage,2026-11-01 00:00:00.5,7\n",
    );
    let err = env.fails(3, &["--now", NOW, "usage", "import", &usage]);
    assert!(err.contains("line 2: field 'timestamp'"), "{err}");
    env.ok(&["--now", NOW, "usage", "import", "--assume-tz", "Asia/Shanghai", &usage]);
    // The last second of October in Shanghai is October's; half a second into November is not.
    env.settle("2026-10", "2026-11-01T02:00:00+08:00");
    assert_eq!(line(&env.bills("2026-10"), "a1", CROP)["total_calls"], "5");
    let opened = &env.accounts()["a1"];
    assert_eq!(opened["status"], "active", "{opened:?}");
}

#[test]
fn usage_imports_lists_what_was_imported_newest_first() {
    use sha2::Digest;
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a1,A,2026-09-01T00:00:00+08:00,0"]);
    let october = "account_id,api,timestamp,calls\na1,CropImage,2026-10-02T00:00:00+08:00,5\n";
    let across = "account_id,api,timestamp,calls,event_id\n\
                  a1,CropImage,2026-10-31T23:00:00+08:00,7,e1\n\
                  a1,CropImage,2026-11-01T00:30:00+08:00,9,e2\n";
    let first = env.file("october.csv", october);
    let out = env.ok(&["--now", NOW, "usage", "import", &first]);
    assert!(out.contains("as import #1"), "{out}");
    let second = env.file("across.csv", across);
    env.ok(&["--now", NOW, "usage", "import", &second]);
    let listed = parse_csv(&env.ok(&["usage", "imports", "--format", "csv"]));
    assert_eq!(listed.len(), 2, "{listed:#?}");
    let (newest, oldest) = (&listed[0], &listed[1]);
    assert_eq!(
        (
            newest["import_id"].as_str(),
            newest["rows"].as_str(),
            newest["calls"].as_str()
        ),
        ("2", "2", "16")
    );
    assert_eq!(newest["months"], "2026-10..2026-11");
    assert_eq!(newest["first_usage"], "2026-10-31T23:00:00+08:00");
    assert_eq!(newest["file_name"], second);
    assert_eq!(oldest["months"], "2026-10");
    // The SHA-256 of the bytes sent, as `sha256sum` prints it.
    let digest: String = sha2::Sha256::digest(october.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(oldest["sha256"], digest);
    let only = parse_csv(&env.ok(&["usage", "imports", "--format", "csv", "--limit", "1"]));
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["import_id"], "2");
}
