//! The price catalog kept in the database: which prices a command runs with, and `billrun
//! catalog import`.
//!
//! A month priced with the wrong prices cannot be taken back by running it again (its bills
//! equal what the same prices give), so the catalog is not left to each command's
//! `--catalog`: the database keeps its versions, each as billrun writes it, never changed once
//! stored. The first command that writes to a database without a catalog stores the one it
//! runs with (its `--catalog`, or the built-in one), after checking that every version the
//! database's bills name is in it: a database settled before the catalog was kept gets the
//! catalog it was settled with. From then on every command prices from the stored versions; a
//! `--catalog` that says anything else is refused, naming both, and new prices come in by
//! `billrun catalog import` as a new version.

use crate::domain::catalog::{Catalog, CatalogVersion};
use crate::error::input_error;
use crate::store::{Store, StoredVersion};
use anyhow::Context;
use chrono::{DateTime, Utc};

/// The source recorded for the built-in catalog.
pub const BUILT_IN: &str = "built in";

/// Where a stored version came from, in a sentence.
fn origin(v: &StoredVersion) -> String {
    let from = if v.source == BUILT_IN {
        "the built-in catalog".to_owned()
    } else {
        v.source.clone()
    };
    format!("stored from {from} at {}", v.imported_at.to_rfc3339())
}

/// The catalog a command was given: the file it named (`None`: the built-in one) and what it
/// holds.
pub struct Given<'a> {
    pub file: Option<&'a str>,
    pub catalog: &'a Catalog,
}

impl Given<'_> {
    fn source(&self) -> &str {
        self.file.unwrap_or(BUILT_IN)
    }
}

/// The catalog a command runs with. With versions stored, those (and a `--catalog` that
/// disagrees with them is refused); without, the one given, which a command that `writes`
/// stores first.
pub async fn resolve<S: Store>(
    store: &S,
    given: &Given<'_>,
    writes: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<Catalog> {
    let kept = match catalog_of(&store.catalog_versions().await?)? {
        Some(kept) => kept,
        None if !writes => return Ok(given.catalog.clone()),
        None => {
            adopt(store, given, now).await?;
            catalog_of(&store.catalog_versions().await?)?.context("the catalog just stored cannot be read back")?
        }
    };
    if given.file.is_some() {
        if let Some(difference) = differences(given.catalog, &kept).first() {
            return Err(input_error(format!(
                "the catalog {} disagrees with the one this database prices with: {difference}. The database's \
                 versions never change; `billrun catalog list` shows them, and `billrun catalog import FILE` adds \
                 new ones (leave --catalog and BILLRUN_CATALOG out, or name a file that says the same)",
                given.source()
            )));
        }
    }
    Ok(kept)
}

/// The catalog the database keeps now, or `current` if it keeps none: what a long-running
/// command prices with after a `catalog import` made while it ran.
pub async fn kept<S: Store>(store: &S, current: &Catalog) -> anyhow::Result<Catalog> {
    Ok(catalog_of(&store.catalog_versions().await?)?.unwrap_or_else(|| current.clone()))
}

/// Stores the catalog given as the database's first, once every version its bills name is in
/// it.
async fn adopt<S: Store>(store: &S, given: &Given<'_>, now: DateTime<Utc>) -> anyhow::Result<()> {
    let wanted = given.catalog.currency();
    if let Some(kept) = store.currency().await?.filter(|kept| kept != wanted) {
        return Err(input_error(format!(
            "this database keeps its balances in {kept}, but the catalog {} prices in {wanted}: billrun does not \
             debit {wanted} amounts from {kept} balances; use a catalog that prices in {kept}",
            given.source()
        )));
    }
    let missing: Vec<String> = store
        .billed_catalog_versions()
        .await?
        .into_iter()
        .filter(|v| given.catalog.version(v).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(input_error(format!(
            "this database's bills were priced with catalog version {}, which the catalog {} does not hold; give \
             the catalog they were priced with (--catalog FILE): billrun stores it as the database's",
            missing.join(", "),
            given.source()
        )));
    }
    let versions: Vec<StoredVersion> = given
        .catalog
        .versions()
        .iter()
        .map(|v| to_stored(v, given.source(), now))
        .collect();
    store.add_catalog_versions(&versions).await?;
    tracing::info!(
        source = given.source(),
        versions = versions.len(),
        "stored the catalog as the database's"
    );
    Ok(())
}

/// A version as the database keeps it.
fn to_stored(v: &CatalogVersion, source: &str, now: DateTime<Utc>) -> StoredVersion {
    StoredVersion {
        version: v.version.clone(),
        effective_from: v.effective_from.to_string(),
        currency: v.currency.clone(),
        definition: v.to_toml(),
        source: source.to_owned(),
        imported_at: now,
    }
}

/// The stored versions as a catalog file's text.
fn text_of(stored: &[StoredVersion]) -> String {
    stored.iter().map(|v| format!("{}\n", v.definition)).collect()
}

/// The stored versions as a catalog (`None`: the database keeps none yet).
fn catalog_of(stored: &[StoredVersion]) -> anyhow::Result<Option<Catalog>> {
    if stored.is_empty() {
        return Ok(None);
    }
    Catalog::parse(&text_of(stored), "kept in the database")
        .map(Some)
        .map_err(|e| anyhow::anyhow!("the database's catalog cannot be read: {e}"))
}

/// How `given` differs from `kept`, one sentence per difference: a version of either that the
/// other lacks, or holds with other content.
fn differences(given: &Catalog, kept: &Catalog) -> Vec<String> {
    let mut found = Vec::new();
    for g in given.versions() {
        match kept.version(&g.version) {
            None => found.push(format!(
                "version '{}' (from {}) is in the file, not in the database",
                g.version, g.effective_from
            )),
            Some(k) if k != g => found.push(format!(
                "version '{}' says other prices in the file than in the database",
                g.version
            )),
            Some(_) => {}
        }
    }
    for k in kept.versions() {
        if given.version(&k.version).is_none() {
            found.push(format!(
                "version '{}' (from {}) is in the database, not in the file",
                k.version, k.effective_from
            ));
        }
    }
    found
}

/// What `catalog import` did.
#[derive(Debug)]
pub struct Imported {
    pub added: Vec<(String, String)>,
    pub unchanged: Vec<String>,
}

/// `billrun catalog import FILE`: stores the file's versions that are new; a version stored
/// under the same name with other content refuses the whole file, as does a file that would
/// leave the catalog unreadable (two versions from one month, another currency).
pub async fn import<S: Store>(
    store: &S,
    file: &str,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> anyhow::Result<Imported> {
    let stored = store.catalog_versions().await?;
    let kept = catalog_of(&stored)?;
    let mut added = Vec::new();
    let mut unchanged = Vec::new();
    for v in catalog.versions() {
        match kept.as_ref().and_then(|k| k.version(&v.version)) {
            Some(k) if k == v => unchanged.push(v.version.clone()),
            Some(_) => {
                let was = stored.iter().find(|s| s.version == v.version).expect("stored");
                return Err(input_error(format!(
                    "{file}: version '{}' is stored with other prices ({}); a stored version never changes, since \
                     bills name it: give the new prices a new version name. Nothing was stored",
                    v.version,
                    origin(was)
                )));
            }
            None => added.push(v),
        }
    }
    // The stored versions and the new ones must make a catalog.
    let mut text = text_of(&stored);
    for v in &added {
        text += &format!("{}\n", v.to_toml());
    }
    Catalog::parse(&text, file).map_err(|e| {
        input_error(format!(
            "{e}, once added to the versions the database keeps; nothing was stored"
        ))
    })?;
    let rows: Vec<StoredVersion> = added.iter().map(|v| to_stored(v, file, now)).collect();
    store.add_catalog_versions(&rows).await?;
    // Another import may have stored a version of the same name meanwhile: what is kept now
    // must be what this file says.
    let now_kept = catalog_of(&store.catalog_versions().await?)?;
    for v in &added {
        if now_kept.as_ref().and_then(|k| k.version(&v.version)) != Some(*v) {
            return Err(input_error(format!(
                "{file}: version '{}' was stored with other prices by another command meanwhile",
                v.version
            )));
        }
    }
    Ok(Imported {
        added: added
            .iter()
            .map(|v| (v.version.clone(), v.effective_from.to_string()))
            .collect(),
        unchanged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(text: &str) -> Catalog {
        Catalog::parse(text, "test").unwrap()
    }

    #[test]
    fn differences_name_each_version_missing_or_changed_on_either_side() {
        let seed = Catalog::built_in();
        assert!(differences(&seed, &seed).is_empty());
        let v = &seed.versions()[0];
        let later = v.to_toml().replace(&v.version, "next").replace("2023-12", "2026-12");
        let both = catalog(&format!("{}\n{later}", v.to_toml()));
        assert_eq!(
            differences(&both, &seed),
            ["version 'next' (from 2026-12) is in the file, not in the database"]
        );
        assert_eq!(
            differences(&seed, &both),
            ["version 'next' (from 2026-12) is in the database, not in the file"]
        );
        let dearer = catalog(&v.to_toml().replace("\"0.003\"", "\"0.004\""));
        assert_eq!(
            differences(&dearer, &seed),
            [format!(
                "version '{}' says other prices in the file than in the database",
                v.version
            )]
        );
    }
}
