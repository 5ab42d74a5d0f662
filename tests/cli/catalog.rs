//! The price catalog is the database's: a command run without `--catalog` prices with the
//! versions the database keeps, a `--catalog` that says otherwise is refused, a stored version
//! never changes, and a database settled before the catalog was kept gets the one it was
//! settled with.

use crate::harness::*;

const NOV_1: &str = "2026-11-01T02:00:00+08:00";

/// The built-in catalog's text.
fn seed() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/catalog.toml")).unwrap()
}

/// The seed's catalog as version `name` from `from`, with CropImage's first tier at `price`.
fn priced(name: &str, from: &str, price: &str) -> String {
    seed()
        .replace("version = \"seed-2023-12\"", &format!("version = \"{name}\""))
        .replace("effective_from = \"2023-12\"", &format!("effective_from = \"{from}\""))
        .replace(
            "{ from = 0, unit_price = \"0.002\" }",
            &format!("{{ from = 0, unit_price = \"{price}\" }}"),
        )
}

/// The `version` column of `catalog list`.
fn versions(env: &Env) -> Vec<String> {
    parse_csv(&env.ok(&["catalog", "list", "--format", "csv"]))
        .iter()
        .map(|r| r["version"].clone())
        .collect()
}

#[test]
fn a_run_without_catalog_prices_with_the_databases_and_a_disagreeing_one_is_refused() {
    let env = Env::new();
    let ours = env.file("ours.toml", &priced("ours-2023-12", "2023-12", "0.004"));
    // On a new database, the imported file is its catalog.
    let out = env.ok(&["--now", "2026-10-01T00:00:00+08:00", "catalog", "import", &ours]);
    assert!(
        out.contains("stored catalog version ours-2023-12, in force from 2023-12"),
        "{out}"
    );
    assert_eq!(versions(&env), ["ours-2023-12"]);
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a,A,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&["a,CropImage,2026-10-10T00:00:00+08:00,3000"]);
    assert_eq!(versions(&env), ["ours-2023-12"], "the first writes stored nothing else");

    // The month-end run, as cron calls it: no --catalog, no BILLRUN_CATALOG.
    let out = env.ok(&["--now", NOV_1, "run"]);
    assert!(out.contains("settled 2026-10 (catalog ours-2023-12)"), "{out}");
    // 3000 − 1000 free = 2000 × 0.004 = 8.00.
    assert_eq!(line(&env.bills("2026-10"), "a", CROP)["amount"], "8.00");

    // The built-in catalog named as a file disagrees: refused, naming both versions.
    let seed_file = env.file("seed.toml", &seed());
    let err = env.fails(3, &["--catalog", &seed_file, "--now", NOV_1, "run"]);
    assert!(
        err.contains("version 'seed-2023-12' (from 2023-12) is in the file, not in the database"),
        "{err}"
    );
    // A file that says what the database keeps is accepted, by any command.
    let same = env.file("same.toml", &priced("ours-2023-12", "2023-12", "0.004"));
    env.ok(&["--catalog", &same, "accounts", "list"]);
    let err = env.fails(3, &["--catalog", &seed_file, "accounts", "list"]);
    assert!(
        err.contains("disagrees with the one this database prices with"),
        "{err}"
    );
    assert_eq!(versions(&env), ["ours-2023-12"]);
}

#[test]
fn a_stored_version_never_changes_and_a_new_one_prices_its_months() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a,A,2026-01-01T00:00:00Z,100"]);
    // The first command that writes stored the catalog it ran with: the built-in one.
    assert_eq!(versions(&env), ["seed-2023-12"]);
    let listed = parse_csv(&env.ok(&["catalog", "list", "--format", "csv"]));
    assert_eq!(listed[0]["source"], "built in");

    // The same name with other prices: refused whole.
    let changed = env.file("changed.toml", &priced("seed-2023-12", "2023-12", "0.0021"));
    let err = env.fails(3, &["catalog", "import", &changed]);
    assert!(
        err.contains("version 'seed-2023-12' is stored with other prices (stored from the built-in catalog"),
        "{err}"
    );
    // New prices from November: a new version.
    let next = env.file(
        "next.toml",
        &format!("{}\n{}", seed(), priced("next-2026-11", "2026-11", "0.004")),
    );
    let out = env.ok(&["--now", "2026-10-20T00:00:00+08:00", "catalog", "import", &next]);
    assert!(
        out.contains("stored catalog version next-2026-11, in force from 2026-11"),
        "{out}"
    );
    assert!(out.contains("already stored, unchanged: seed-2023-12"), "{out}");
    let again = env.ok(&["catalog", "import", &next]);
    assert!(again.contains("nothing new"), "{again}");
    assert_eq!(versions(&env), ["seed-2023-12", "next-2026-11"]);
    // Another version from the same month cannot join them.
    let clash = env.file("clash.toml", &priced("other-2026-11", "2026-11", "0.005"));
    let err = env.fails(3, &["catalog", "import", &clash]);
    assert!(err.contains("both take effect in 2026-11"), "{err}");
    assert_eq!(versions(&env), ["seed-2023-12", "next-2026-11"]);

    // `catalog show` prints a version as a catalog file says it: importing it again changes
    // nothing.
    let shown = env.ok(&["catalog", "show", "next-2026-11"]);
    assert!(shown.contains("unit_price = \"0.004\""), "{shown}");
    let file = env.file("shown.toml", &shown);
    assert!(env.ok(&["catalog", "import", &file]).contains("nothing new"));
    assert!(env
        .fails(3, &["catalog", "show", "nope"])
        .contains("keeps no catalog version 'nope'"));

    // Each month is priced by its version, with no --catalog.
    env.import_usage(&[
        "a,CropImage,2026-10-10T00:00:00+08:00,3000",
        "a,CropImage,2026-11-10T00:00:00+08:00,3000",
    ]);
    env.ok(&["--now", "2026-12-02T00:00:00+08:00", "settle", "--month", "2026-10"]);
    env.ok(&["--now", "2026-12-02T00:00:00+08:00", "settle", "--month", "2026-11"]);
    let oct = env.bills("2026-10");
    let nov = env.bills("2026-11");
    assert_eq!(
        (
            line(&oct, "a", CROP)["catalog_version"].as_str(),
            line(&oct, "a", CROP)["amount"].as_str()
        ),
        ("seed-2023-12", "4.00")
    );
    assert_eq!(
        (
            line(&nov, "a", CROP)["catalog_version"].as_str(),
            line(&nov, "a", CROP)["amount"].as_str()
        ),
        ("next-2026-11", "8.00")
    );
}

#[test]
fn a_database_settled_before_the_catalog_was_kept_gets_the_one_it_was_settled_with() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a,A,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&["a,CropImage,2026-10-10T00:00:00+08:00,3000"]);
    env.settle("2026-10", NOV_1);
    // What a database from before the catalog was kept holds: bills, and no catalog.
    env.exec("DELETE FROM catalog_versions");
    let other = env.file("other.toml", &priced("other-2023-12", "2023-12", "0.002"));
    let err = env.fails(3, &["--catalog", &other, "migrate"]);
    assert!(
        err.contains("bills were priced with catalog version seed-2023-12, which the catalog"),
        "{err}"
    );
    let kept: i64 = env.query("SELECT COUNT(*) FROM catalog_versions");
    assert_eq!(kept, 0, "nothing stored from a catalog the bills were not priced with");
    env.ok(&["migrate"]);
    assert_eq!(versions(&env), ["seed-2023-12"]);
    env.ok(&["verify"]);
}

/// A month's free packs keep the size they were granted with: a catalog version imported later
/// for the month, with no free calls at all, changes no pack a bill took from, and late usage
/// re-settles the month against the packs as granted.
#[test]
fn a_version_imported_for_a_granted_month_keeps_its_free_packs() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a,A,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&["a,CropImage,2026-10-10T00:00:00+08:00,1500"]);
    env.settle("2026-10", "2026-11-01T02:00:00+08:00");
    let none_free = priced("later-2026-10", "2026-10", "0.002").replace("free_calls = 1000", "free_calls = 0");
    assert!(!none_free.contains("free_calls = 1000"));
    let file = env.file("later.toml", &none_free);
    env.ok(&["--now", "2026-11-05T00:00:00+08:00", "catalog", "import", &file]);
    let out = env.ok(&["--now", "2026-11-05T00:00:00+08:00", "grant", "--month", "2026-10"]);
    assert!(out.contains("granted 0 free packs"), "{out}");
    env.import_usage(&["a,CropImage,2026-10-30T00:00:00+08:00,10"]);
    env.settle("2026-10", "2026-11-05T01:00:00+08:00");
    let oct = env.bills("2026-10");
    let crop = oct
        .iter()
        .find(|r| r["api"] == CROP && r["revision"] == "2")
        .unwrap_or_else(|| panic!("no revision 2: {oct:#?}"));
    assert_eq!(crop["catalog_version"], "later-2026-10");
    assert_eq!(
        (crop["free_calls"].as_str(), crop["billable_calls"].as_str()),
        ("1000", "510")
    );
    let packs = env.packs();
    let pack = packs
        .iter()
        .find(|p| p["pack_id"] == "free:2026-10:CropImage:a")
        .unwrap();
    assert_eq!((pack["calls"].as_str(), pack["remaining"].as_str()), ("1000", "0"));
    env.ok(&["verify"]);
    // Nor does the grant move the window of a month billed in another time zone.
    let err = env.fails(
        3,
        &[
            "--tz",
            "UTC",
            "--now",
            "2026-11-06T00:00:00Z",
            "grant",
            "--month",
            "2026-10",
        ],
    );
    assert!(
        err.contains("billing time zone of a month that has bills cannot change"),
        "{err}"
    );
    assert_eq!(env.packs(), packs);
}
