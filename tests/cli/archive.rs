//! Old months' raw usage leaving the database (`billrun archive`) and coming back
//! (`billrun restore-usage`): the bills and books unchanged, `verify` still checking the month,
//! the archive's files read by zstd's own stream decoder and a CSV reader, a damaged archive
//! refused, a month not settled or with late usage waiting refused, and an archive killed at
//! any instant leaving each import whole in the database or whole in its files.

use crate::harness::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const SEP_SETTLED: &str = "2026-10-01T03:00:00+08:00";
const OCT_SETTLED: &str = "2026-11-01T03:00:00+08:00";

/// September's usage, as NDJSON with event ids; the meter sent one event twice, and the second
/// line is skipped.
fn september() -> String {
    let mut text = String::new();
    for i in 0..40u32 {
        let account = if i % 2 == 0 { "a" } else { "b" };
        text += &format!(
            "{{\"account_id\":\"{account}\",\"api\":\"{CROP}\",\"timestamp\":\"2026-09-{:02}T10:00:00+08:00\",\"calls\":{},\"event_id\":\"s{i}\"}}\n",
            1 + i % 28,
            100 + i
        );
        if i == 7 {
            text += &format!(
                "{{\"account_id\":\"{account}\",\"api\":\"{CROP}\",\"timestamp\":\"2026-09-{:02}T10:00:00+08:00\",\"calls\":{},\"event_id\":\"s{i}\"}}\n",
                1 + i % 28,
                100 + i
            );
        }
    }
    text
}

/// October's usage, as CSV: rows of both accounts and two APIs.
fn october() -> String {
    let mut text = String::from("account_id,api,timestamp,calls\n");
    for i in 0..3000u32 {
        let account = if i % 3 == 0 { "a" } else { "b" };
        let api = if i % 5 == 0 { AQ } else { CROP };
        text += &format!(
            "{account},{api},2026-10-{:02}T{:02}:{:02}:00+08:00,{}\n",
            1 + i % 30,
            i / 60 % 24,
            i % 60,
            1 + i % 9
        );
    }
    text
}

/// What `text`'s CSV rows add up to per account and API.
fn sums(text: &str) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        *out.entry((f[0].to_owned(), f[1].to_owned())).or_default() += f[3].parse::<i64>().unwrap();
    }
    out
}

/// Two accounts with September and October settled: import #1 (September, NDJSON), #2
/// (October, gzip CSV) and #3 (the last hour of October and the first of November).
fn two_months(env: &Env) -> String {
    env.import_accounts(
        "2026-09-01T00:00:00+08:00",
        &[
            "a,A,2026-09-01T00:00:00+08:00,1000",
            "b,B,2026-09-01T00:00:00+08:00,1000",
        ],
    );
    let sep = env.file("sep.ndjson", &september());
    env.ok(&["--now", "2026-10-01T01:00:00+08:00", "usage", "import", &sep]);
    env.settle("2026-09", SEP_SETTLED);
    let gz = env.dir.path().join("oct.csv.gz");
    let mut w = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    w.write_all(october().as_bytes()).unwrap();
    w.finish().unwrap();
    env.ok(&[
        "--now",
        "2026-11-01T01:00:00+08:00",
        "usage",
        "import",
        gz.to_str().unwrap(),
    ]);
    let straddle = env.file(
        "straddle.csv",
        &format!("account_id,api,timestamp,calls\na,{CROP},2026-10-31T23:00:00+08:00,5\na,{CROP},2026-11-01T00:30:00+08:00,6\n"),
    );
    env.ok(&["--now", "2026-11-01T01:30:00+08:00", "usage", "import", &straddle]);
    env.settle("2026-10", OCT_SETTLED);
    env.snapshot(&["2026-09", "2026-10"])
}

/// `billrun --now NOW archive --before BEFORE --dir DIR`.
fn archive_at<'a>(now: &'a str, before: &'a str, dir: &'a Path) -> [&'a str; 7] {
    [
        "--now",
        now,
        "archive",
        "--before",
        before,
        "--dir",
        dir.to_str().unwrap(),
    ]
}

fn chunks_of(env: &Env, import_id: i64) -> i64 {
    env.query(&format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_chunks WHERE import_id = {import_id}"
    ))
}

fn manifest(dir: &Path, import_id: i64) -> serde_json::Value {
    let path = dir.join(format!("usage-{import_id:06}.manifest.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn settled_months_leave_the_database_and_come_back_byte_for_byte_with_the_books_unchanged() {
    let env = Env::new();
    let before = two_months(&env);
    let summary = env.ok(&["export", "summary", "--month", "2026-10"]);
    let arch = env.dir.path().join("arch");
    let out = env.ok(&archive_at("2026-11-02T00:00:00+08:00", "2026-11", &arch));
    assert!(
        out.contains("archived import #1 (") && out.contains("archived import #2 ("),
        "{out}"
    );
    assert!(
        out.contains("kept     import #3 (") && out.contains("it has rows in 2026-11"),
        "{out}"
    );
    assert_eq!((chunks_of(&env, 1), chunks_of(&env, 2)), (0, 0));
    assert!(chunks_of(&env, 3) > 0);

    // The files, read by others than billrun: zstd's stream decoder gives the content back as
    // the meter sent it (after gzip decoding), and the totals are what the rows add up to.
    for (id, content, ext) in [(1, september(), "ndjson"), (2, october(), "csv")] {
        let data = arch.join(format!("usage-{id:06}.{ext}.zst"));
        let whole = zstd::stream::decode_all(std::fs::File::open(&data).unwrap()).unwrap();
        assert_eq!(String::from_utf8(whole).unwrap(), content, "import #{id}");
        let m = manifest(&arch, id);
        assert_eq!(m["content_sha256"], sha256_of(content.as_bytes()));
        assert_eq!(m["data"]["sha256"], sha256_of(&std::fs::read(&data).unwrap()));
        let recorded: String = env.query(&format!(
            "SELECT archive_sha256 FROM usage_imports WHERE import_id = {id}"
        ));
        assert_eq!(m["data"]["sha256"], recorded.as_str());
    }
    let m = manifest(&arch, 1);
    assert_eq!(m["rows"].as_i64(), Some(40));
    assert!(m["skipped_lines"].is_string(), "the repeated event's line: {m}");
    assert_eq!(m["calls_by_month"]["2026-09"], (100..140).sum::<i64>());
    let totals = parse_csv(&std::fs::read_to_string(arch.join("usage-000002.totals.csv")).unwrap());
    let read: BTreeMap<(String, String), i64> = totals
        .iter()
        .map(|r| {
            assert_eq!(r["month"], "2026-10");
            ((r["account_id"].clone(), r["api"].clone()), r["calls"].parse().unwrap())
        })
        .collect();
    assert_eq!(read, sums(&october()));

    // Nothing a user sees changed; verify checks the months against what was recorded, or
    // reads them back from the files.
    assert_same(&env.snapshot(&["2026-09", "2026-10"]), &before, "after archiving");
    assert_eq!(env.ok(&["export", "summary", "--month", "2026-10"]), summary);
    let verified = env.ok(&["verify"]);
    assert!(
        verified.contains("archived 2026-09: the usage of 1 import (") && verified.contains("checked against"),
        "{verified}"
    );
    assert!(
        verified.contains("archived 2026-10: the usage of 1 import ("),
        "{verified}"
    );
    let october_only = env.ok(&["verify", "--month", "2026-10"]);
    assert!(
        october_only.contains("archived 2026-10") && !october_only.contains("archived 2026-09"),
        "{october_only}"
    );
    let read_back = env.ok(&["verify", "--archive", arch.to_str().unwrap()]);
    assert!(
        read_back.contains("archived 2026-10") && read_back.contains("read back from the archive"),
        "{read_back}"
    );

    // A month's totals changed by hand: found without the files, as a whole month.
    env.exec(&format!(
        "UPDATE usage_totals SET calls = calls + 1 WHERE month = '2026-09' AND account_id = 'a' AND api = '{CROP}'"
    ));
    let out = env.run(&["verify", "--month", "2026-09"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(
        text.contains("2026-09: ") && text.contains("recorded of its archived imports"),
        "{text}"
    );
    env.exec(&format!(
        "UPDATE usage_totals SET calls = calls - 1 WHERE month = '2026-09' AND account_id = 'a' AND api = '{CROP}'"
    ));

    // A damaged copy of the archive (a byte changed in one file, another cut short): verify
    // names both, restore refuses both and writes nothing of them.
    let damaged = env.dir.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    for f in std::fs::read_dir(&arch).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, damaged.join(f.file_name().unwrap())).unwrap();
    }
    let data = damaged.join("usage-000001.ndjson.zst");
    let mut bytes = std::fs::read(&data).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&data, bytes).unwrap();
    let cut = damaged.join("usage-000002.csv.zst");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let out = env.run(&["verify", "--archive", damaged.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(
        text.contains("BREACH  each usage import's stored content")
            && text.contains("import #1 (")
            && text.contains("import #2 ("),
        "{text}"
    );
    let err = env.fails(3, &["restore-usage", "--dir", damaged.to_str().unwrap()]);
    assert!(
        err.contains("2 archived imports were not restored")
            && err.contains("usage import #1 (")
            && err.contains("usage import #2 (")
            && err.contains("cannot be read"),
        "{err}"
    );
    assert_eq!((chunks_of(&env, 1), chunks_of(&env, 2)), (0, 0));

    // What needs the archived usage says so.
    let err = env.fails(
        3,
        &[
            "--now",
            "2026-11-03T00:00:00+08:00",
            "usage",
            "retract",
            "2",
            "--reason",
            "x",
        ],
    );
    assert!(
        err.contains("usage import #2 (") && err.contains("is archived") && err.contains("restore-usage"),
        "{err}"
    );

    // Rebuilding the totals for another billing zone needs every import's usage.
    let other = env.file(
        "other.csv",
        &format!("account_id,api,timestamp,calls\nb,{CROP},2026-11-02T10:00:00+08:00,1\n"),
    );
    let err = env.fails(
        3,
        &[
            "--tz",
            "UTC",
            "--now",
            "2026-11-03T00:00:00+08:00",
            "usage",
            "import",
            &other,
        ],
    );
    assert!(
        err.contains("is archived") && err.contains("another billing time zone") && err.contains("nothing was written"),
        "{err}"
    );

    // Late usage for an archived month: archive waits until the next run bills it.
    let late = env.file(
        "late.csv",
        &format!("account_id,api,timestamp,calls\nb,{ENH},2026-10-20T10:00:00+08:00,7\n"),
    );
    env.ok(&["--now", "2026-11-05T00:00:00+08:00", "usage", "import", &late]);
    let err = env.fails(3, &archive_at("2026-11-05T00:10:00+08:00", "2026-11", &arch));
    assert!(
        err.contains("month 2026-10 cannot be archived") && err.contains("billrun run"),
        "{err}"
    );
    assert!(chunks_of(&env, 4) > 0);
    assert!(!arch.join("usage-000004.manifest.json").exists());
    env.ok(&["--now", "2026-11-05T01:00:00+08:00", "run"]);
    let billed = env.snapshot(&["2026-09", "2026-10"]);
    let out = env.ok(&archive_at("2026-11-05T02:00:00+08:00", "2026-11", &arch));
    assert!(
        out.contains("archived import #4 (") && out.contains("1 import archived now, 2 before"),
        "{out}"
    );
    env.ok(&["verify"]);

    // Back, byte for byte: archived again, the files are the same bytes.
    let out = env.ok(&["restore-usage", "--dir", arch.to_str().unwrap()]);
    assert!(out.contains("3 imports restored"), "{out}");
    assert!(chunks_of(&env, 1) > 0 && chunks_of(&env, 2) > 0 && chunks_of(&env, 4) > 0);
    let verified = env.ok(&["verify"]);
    assert!(!verified.contains("archived"), "{verified}");
    assert_same(&env.snapshot(&["2026-09", "2026-10"]), &billed, "after restoring");
    let again = env.dir.path().join("again");
    env.ok(&archive_at("2026-11-06T00:00:00+08:00", "2026-11", &again));
    for (id, ext) in [(1, "ndjson"), (2, "csv"), (4, "csv")] {
        let name = format!("usage-{id:06}.{ext}.zst");
        assert_eq!(
            std::fs::read(arch.join(&name)).unwrap(),
            std::fs::read(again.join(&name)).unwrap(),
            "{name}"
        );
        assert_eq!(manifest(&arch, id)["chunks"], manifest(&again, id)["chunks"]);
    }
    env.ok(&["restore-usage", "--dir", again.to_str().unwrap(), "--import", "2"]);
    assert_eq!((chunks_of(&env, 1), chunks_of(&env, 4)), (0, 0));
    assert!(chunks_of(&env, 2) > 0);
    // An archive that holds some of the imports: those come back, the others are named.
    let some = env.dir.path().join("some");
    std::fs::create_dir(&some).unwrap();
    for f in std::fs::read_dir(&again).unwrap() {
        let f = f.unwrap().path();
        if f.file_name().unwrap().to_string_lossy().starts_with("usage-000001.") {
            std::fs::copy(&f, some.join(f.file_name().unwrap())).unwrap();
        }
    }
    let err = env.fails(3, &["restore-usage", "--dir", some.to_str().unwrap()]);
    assert!(
        err.contains("1 archived import was not restored")
            && err.contains("usage import #4 (")
            && err.contains("holds no archive of it"),
        "{err}"
    );
    assert!(chunks_of(&env, 1) > 0);
    assert_eq!(chunks_of(&env, 4), 0);
    let err = env.fails(
        3,
        &[
            "restore-usage",
            "--dir",
            env.dir.path().join("sep.ndjson").to_str().unwrap(),
        ],
    );
    assert!(err.contains("is not a directory"), "{err}");
}

#[test]
fn a_month_not_settled_is_refused_and_nothing_is_written() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a,A,2026-10-01T00:00:00+08:00,100"]);
    env.import_usage(&[&format!("a,{CROP},2026-10-05T10:00:00+08:00,3")]);
    let arch = env.dir.path().join("arch");
    let err = env.fails(3, &archive_at("2026-11-02T00:00:00+08:00", "2026-11", &arch));
    assert!(
        err.contains("month 2026-10 cannot be archived: it is not settled"),
        "{err}"
    );
    assert!(!arch.exists());
    assert_eq!(chunks_of(&env, 1), 1);
    // Before a month with no usage imported, nothing is to archive.
    let out = env.ok(&archive_at("2026-11-02T00:00:00+08:00", "2026-10", &arch));
    assert!(out.contains("0 imports archived now, 0 before, 1 kept"), "{out}");

    // A month settled before its zone was recorded: `verify` reads its rows back, so they stay.
    env.settle("2026-10", OCT_SETTLED);
    env.exec("UPDATE settled_months SET tz = NULL");
    let err = env.fails(3, &archive_at("2026-11-02T00:00:00+08:00", "2026-11", &arch));
    assert!(
        err.contains("month 2026-10 cannot be archived: it was settled in a zone not recorded"),
        "{err}"
    );
    env.exec("UPDATE settled_months SET tz = 'Asia/Shanghai'");
    let out = env.ok(&archive_at("2026-11-02T00:00:00+08:00", "2026-11", &arch));
    assert!(out.contains("1 import archived now"), "{out}");
    env.ok(&["verify"]);
}

/// The state of import `id`: whole in the database, or archived with its files whole.
fn whole_somewhere(env: &Env, arch: &Path, id: i64) -> bool {
    let chunks: i64 = env.query(&format!(
        "SELECT content_chunks FROM usage_imports WHERE import_id = {id}"
    ));
    let archived: i64 = env.query(&format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_imports WHERE import_id = {id} AND archived_at IS NOT NULL"
    ));
    match (archived, chunks_of(env, id)) {
        (0, n) => {
            assert_eq!(
                n, chunks,
                "import #{id} is not archived and has {n} of its {chunks} chunks"
            );
            false
        }
        (_, 0) => {
            let m = manifest(arch, id);
            let data = std::fs::read(arch.join(m["data"]["name"].as_str().unwrap())).unwrap();
            let recorded: String = env.query(&format!(
                "SELECT archive_sha256 FROM usage_imports WHERE import_id = {id}"
            ));
            assert_eq!(sha256_of(&data), recorded, "import #{id}'s archived file");
            true
        }
        (_, n) => panic!("import #{id} is archived and still has {n} chunks"),
    }
}

#[test]
fn an_archive_killed_at_any_instant_leaves_each_import_whole_and_runs_again_to_the_end() {
    const IMPORTS: i64 = 6;
    let load = |env: &Env| {
        env.import_accounts("2026-10-01T00:00:00+08:00", &["a,A,2026-10-01T00:00:00+08:00,100000"]);
        for i in 0..IMPORTS {
            let rows: String = (0..4000)
                .map(|r| {
                    format!(
                        "a,{CROP},2026-10-{:02}T{:02}:{:02}:{:02}+08:00,{}\n",
                        1 + i,
                        r / 3600,
                        r / 60 % 60,
                        r % 60,
                        1 + r % 5
                    )
                })
                .collect();
            let f = env.file(&format!("u{i}.csv"), &format!("account_id,api,timestamp,calls\n{rows}"));
            env.ok(&["--now", "2026-11-01T00:00:00+08:00", "usage", "import", &f]);
        }
        env.settle("2026-10", OCT_SETTLED);
    };
    let archive = |env: &Env, arch: &Path| env.command(&archive_at("2026-11-02T00:00:00+08:00", "2026-11", arch));
    let timed = Env::new();
    load(&timed);
    let arch = timed.dir.path().join("arch");
    let started = Instant::now();
    assert!(archive(&timed, &arch).status().unwrap().success());
    let clean_time = started.elapsed();
    let expected = timed.snapshot(&["2026-10"]);

    let mut rng = 20261102u64;
    let (mut part, rounds) = (0, 5);
    for round in 0..rounds {
        let env = Env::new();
        load(&env);
        let arch = env.dir.path().join("arch");
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut child = archive(&env, &arch)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if round % 2 == 0 {
            // At a random instant within the last four fifths of a clean run (the first part is
            // the process starting).
            let span = clean_time.as_micros() as u64;
            std::thread::sleep(Duration::from_micros(span / 5 + (rng >> 33) % (span * 4 / 5 + 1)));
        } else {
            // As soon as the manifest of the second or third import is written: the one before
            // is archived, and the import is between writing its files and recording them,
            // whatever the machine's load.
            let manifest = arch.join(format!("usage-{:06}.manifest.json", 2 + round / 2 % 2));
            let until = Instant::now() + Duration::from_secs(120);
            while !manifest.exists() && child.try_wait().unwrap().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        child.kill().ok();
        child.wait().unwrap();
        let done = (1..=IMPORTS).filter(|&id| whole_somewhere(&env, &arch, id)).count();
        if done > 0 && done < IMPORTS as usize {
            part += 1;
        }
        assert!(archive(&env, &arch).status().unwrap().success(), "round {round}");
        assert_eq!(
            (1..=IMPORTS).filter(|&id| whole_somewhere(&env, &arch, id)).count(),
            IMPORTS as usize
        );
        env.ok(&["verify", "--archive", arch.to_str().unwrap()]);
        env.ok(&["restore-usage", "--dir", arch.to_str().unwrap()]);
        env.ok(&["verify"]);
        assert_same(&env.snapshot(&["2026-10"]), &expected, &format!("round {round}"));
    }
    eprintln!("{part} kills in {rounds} rounds left the archive part-done");
    assert!(
        part >= 1,
        "no kill in {rounds} rounds left the archive part-done; the test proves little"
    );
}

fn sha256_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}
