//! The price catalog: which APIs exist, their monthly free calls and their tiers, versioned by
//! the month each version takes effect (docs/rules.md, rule 2).
//!
//! Prices are written in the TOML file as strings (`"0.0025"`) so that no price ever passes
//! through a binary float. A month is priced by the latest version whose `effective_from` is
//! not after it.

use super::money::{parse_decimal, Rounding};
use super::month::Month;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The catalog built into the binary: the seed's prices (`fixtures/catalog.toml`).
pub const BUILT_IN: &str = include_str!("../../fixtures/catalog.toml");

/// How the billable calls of an API are priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PricingMode {
    /// The tier reached prices every billable call (阶梯到达).
    Volume,
    /// Each slice of the billable calls is priced at its own tier (阶梯累进).
    Graduated,
}

impl PricingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PricingMode::Volume => "volume",
            PricingMode::Graduated => "graduated",
        }
    }
}

/// Which count picks the tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierBasis {
    /// All of the month's calls, pack-covered ones included (the seed's rule).
    Total,
    /// Only the calls left after free and prepaid packs.
    Billable,
}

impl TierBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            TierBasis::Total => "total",
            TierBasis::Billable => "billable",
        }
    }
}

/// One price band: calls from `from` (inclusive) up to the next tier's `from` (exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    pub from: i64,
    pub unit_price: Decimal,
}

/// Pricing of one API in one catalog version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiPricing {
    pub api: String,
    /// The name finance and customers read (the seed's 接口名称); the API id if not given.
    pub display_name: String,
    /// The product the API belongs to (the seed's 图像处理): the API's own `product`, else its
    /// version's, else empty.
    pub product: String,
    pub free_calls: i64,
    pub mode: PricingMode,
    pub tier_basis: TierBasis,
    /// Sorted by `from`, the first starting at 0.
    pub tiers: Vec<Tier>,
}

impl ApiPricing {
    /// The exclusive upper bound of tier `index` (0-based), `None` for the last one.
    pub fn tier_upper(&self, index: usize) -> Option<i64> {
        self.tiers.get(index + 1).map(|t| t.from)
    }
}

/// One version of the catalog, in force from `effective_from` until the next version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogVersion {
    pub version: String,
    pub effective_from: Month,
    pub currency: String,
    pub rounding: Rounding,
    pub apis: BTreeMap<String, ApiPricing>,
}

impl CatalogVersion {
    /// The version as a `[[versions]]` block of a catalog file, every field written out (the
    /// product and display name on each API): how the database keeps it. Parsed back, it is
    /// this version again.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut out = format!(
            "[[versions]]\nversion = {}\neffective_from = {}\ncurrency = {}\nrounding = {}\n",
            q(&self.version),
            q(&self.effective_from.to_string()),
            q(&self.currency),
            q(self.rounding.as_str())
        );
        for a in self.apis.values() {
            out += &format!(
                "\n[[versions.apis]]\napi = {}\ndisplay_name = {}\nproduct = {}\nfree_calls = {}\npricing = {}\n\
                 tier_basis = {}\ntiers = [\n",
                q(&a.api),
                q(&a.display_name),
                q(&a.product),
                a.free_calls,
                q(a.mode.as_str()),
                q(a.tier_basis.as_str())
            );
            for t in &a.tiers {
                out += &format!(
                    "  {{ from = {}, unit_price = {} }},\n",
                    t.from,
                    q(&t.unit_price.to_string())
                );
            }
            out += "]\n";
        }
        out
    }
}

/// All versions, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    versions: Vec<CatalogVersion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCatalog {
    versions: Vec<FileVersion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVersion {
    version: String,
    effective_from: String,
    #[serde(default = "default_currency")]
    currency: String,
    #[serde(default)]
    rounding: Rounding,
    /// The product every API of this version belongs to, unless an API names its own.
    #[serde(default)]
    product: Option<String>,
    apis: Vec<FileApi>,
}

fn default_currency() -> String {
    "CNY".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApi {
    api: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    product: Option<String>,
    free_calls: i64,
    pricing: PricingMode,
    tier_basis: TierBasis,
    tiers: Vec<FileTier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTier {
    from: i64,
    unit_price: String,
}

impl Catalog {
    /// Parses and checks a catalog. `source` names the file in error messages.
    pub fn parse(text: &str, source: &str) -> Result<Catalog, String> {
        let file: FileCatalog = toml::from_str(text).map_err(|e| format!("catalog {source}: {e}"))?;
        let err = |what: String| format!("catalog {source}: {what}");
        if file.versions.is_empty() {
            return Err(err("has no [[versions]]".into()));
        }
        let mut versions = Vec::new();
        let mut ids = BTreeSet::new();
        for v in file.versions {
            if !ids.insert(v.version.clone()) {
                return Err(err(format!("version '{}' appears twice", v.version)));
            }
            let effective_from: Month = v
                .effective_from
                .parse()
                .map_err(|e| err(format!("version '{}': effective_from: {e}", v.version)))?;
            let mut apis = BTreeMap::new();
            for a in v.apis {
                let at = |what: String| err(format!("version '{}', api '{}': {what}", v.version, a.api));
                if a.api.trim().is_empty() {
                    return Err(err(format!("version '{}': an api has an empty name", v.version)));
                }
                if a.free_calls < 0 {
                    return Err(at("free_calls must not be negative".into()));
                }
                if a.tiers.is_empty() {
                    return Err(at("has no tiers".into()));
                }
                let mut tiers: Vec<Tier> = Vec::new();
                for (i, t) in a.tiers.iter().enumerate() {
                    let unit_price =
                        parse_decimal(&t.unit_price).map_err(|e| at(format!("tier {}: unit_price: {e}", i + 1)))?;
                    if unit_price.is_sign_negative() && !unit_price.is_zero() {
                        return Err(at(format!("tier {}: unit_price must not be negative", i + 1)));
                    }
                    match tiers.last() {
                        None if t.from != 0 => return Err(at("the first tier must start at from = 0".into())),
                        Some(prev) if t.from <= prev.from => {
                            return Err(at(format!(
                                "tier {}: from = {} must be greater than the previous tier's {}",
                                i + 1,
                                t.from,
                                prev.from
                            )))
                        }
                        _ => {}
                    }
                    tiers.push(Tier {
                        from: t.from,
                        unit_price,
                    });
                }
                let pricing = ApiPricing {
                    display_name: a.display_name.clone().unwrap_or_else(|| a.api.clone()),
                    product: a.product.clone().or_else(|| v.product.clone()).unwrap_or_default(),
                    api: a.api.clone(),
                    free_calls: a.free_calls,
                    mode: a.pricing,
                    tier_basis: a.tier_basis,
                    tiers,
                };
                if apis.insert(a.api.clone(), pricing).is_some() {
                    return Err(at("appears twice in this version".into()));
                }
            }
            versions.push(CatalogVersion {
                version: v.version,
                effective_from,
                currency: v.currency,
                rounding: v.rounding,
                apis,
            });
        }
        // Balances are kept in one currency; a catalog that priced some months in another
        // would debit amounts in one currency from balances in the other.
        for v in &versions {
            if v.currency.len() != 3 || !v.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(err(format!(
                    "version '{}': currency '{}' is not an ISO 4217 code (three capital letters, like CNY)",
                    v.version, v.currency
                )));
            }
            if v.currency != versions[0].currency {
                return Err(err(format!(
                    "version '{}' prices in {} and version '{}' in {}: a catalog has one currency, that of the balances",
                    versions[0].version, versions[0].currency, v.version, v.currency
                )));
            }
        }
        versions.sort_by_key(|v| v.effective_from);
        if let Some(w) = versions.windows(2).find(|w| w[0].effective_from == w[1].effective_from) {
            return Err(err(format!(
                "versions '{}' and '{}' both take effect in {}",
                w[0].version, w[1].version, w[0].effective_from
            )));
        }
        Ok(Catalog { versions })
    }

    /// The catalog compiled into the binary.
    pub fn built_in() -> Catalog {
        Catalog::parse(BUILT_IN, "fixtures/catalog.toml (built in)").expect("built-in catalog is valid")
    }

    /// The version in force for `month`, if any version had taken effect by then.
    pub fn for_month(&self, month: Month) -> Option<&CatalogVersion> {
        self.versions.iter().rev().find(|v| v.effective_from <= month)
    }

    /// The first month any version prices.
    pub fn first_month(&self) -> Option<Month> {
        self.versions.first().map(|v| v.effective_from)
    }

    /// The currency every version prices in (a catalog has one).
    pub fn currency(&self) -> &str {
        self.versions.first().map(|v| v.currency.as_str()).unwrap_or("CNY")
    }

    /// The version named `version`, as bill lines record it.
    pub fn version(&self, version: &str) -> Option<&CatalogVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> &[CatalogVersion] {
        &self.versions
    }

    /// Every API named by any version: what a usage or pack file may mention.
    pub fn known_apis(&self) -> BTreeSet<String> {
        self.versions.iter().flat_map(|v| v.apis.keys().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_written_as_toml_reads_back_the_same() {
        let built_in = Catalog::built_in();
        let text: String = built_in.versions().iter().map(CatalogVersion::to_toml).collect();
        assert_eq!(Catalog::parse(&text, "written").unwrap(), built_in);
        // Quotes, backslashes and non-ASCII names survive.
        let mut odd = built_in.versions()[0].clone();
        let name = "a \"quoted\" \\ name 图\t";
        odd.apis.get_mut("AssessQuality").unwrap().display_name = name.into();
        let again = Catalog::parse(&odd.to_toml(), "odd").unwrap();
        assert_eq!(again.versions(), [odd]);
    }

    #[test]
    fn the_built_in_catalog_has_the_seed_prices() {
        let c = Catalog::built_in();
        let v = c.for_month("2026-10".parse().unwrap()).unwrap();
        let aq = &v.apis["AssessQuality"];
        assert_eq!(aq.free_calls, 1000);
        assert_eq!(aq.mode, PricingMode::Volume);
        assert_eq!(aq.tier_basis, TierBasis::Total);
        let prices: Vec<String> = aq.tiers.iter().map(|t| t.unit_price.to_string()).collect();
        assert_eq!(prices, ["0.003", "0.0025", "0.002", "0.0015"]);
        let bounds: Vec<i64> = aq.tiers.iter().map(|t| t.from).collect();
        assert_eq!(bounds, [0, 1_000_000, 3_000_000, 15_000_000]);
        assert_eq!(v.apis["CropImage"].tiers[3].unit_price.to_string(), "0.001");
        assert_eq!(v.apis["EnhanceImage"].tiers[2].unit_price.to_string(), "0.007");
        assert_eq!(v.rounding, Rounding::HalfUp);
        assert_eq!(
            (aq.display_name.as_str(), aq.product.as_str()),
            ("图像质量评估", "图像处理")
        );
        assert_eq!(
            c.version("seed-2023-12").map(|v| v.effective_from),
            Some(v.effective_from)
        );
        assert!(c.version("nope").is_none());
    }

    #[test]
    fn display_names_and_products_default_sensibly() {
        let with_product = TWO_VERSIONS.replacen(
            "rounding = \"truncate\"",
            "rounding = \"truncate\"\nproduct = \"Images\"",
            1,
        );
        let c = Catalog::parse(&with_product, "t").unwrap();
        let v1 = &c.version("v1").unwrap().apis["A"];
        assert_eq!((v1.display_name.as_str(), v1.product.as_str()), ("A", "Images"));
        let v2 = &c.version("v2").unwrap().apis["A"];
        assert_eq!(v2.product, "");
    }

    const TWO_VERSIONS: &str = r#"
[[versions]]
version = "v2"
effective_from = "2027-01"
[[versions.apis]]
api = "A"
free_calls = 500
pricing = "graduated"
tier_basis = "billable"
tiers = [{ from = 0, unit_price = "0.01" }]

[[versions]]
version = "v1"
effective_from = "2026-01"
rounding = "truncate"
[[versions.apis]]
api = "A"
free_calls = 1000
pricing = "volume"
tier_basis = "total"
tiers = [{ from = 0, unit_price = "0.02" }, { from = 10, unit_price = "0.01" }]
"#;

    #[test]
    fn a_month_is_priced_by_the_version_in_force() {
        let c = Catalog::parse(TWO_VERSIONS, "t").unwrap();
        assert!(c.for_month("2025-12".parse().unwrap()).is_none());
        assert_eq!(c.for_month("2026-01".parse().unwrap()).unwrap().version, "v1");
        assert_eq!(c.for_month("2026-12".parse().unwrap()).unwrap().version, "v1");
        assert_eq!(c.for_month("2027-01".parse().unwrap()).unwrap().version, "v2");
        assert_eq!(
            c.for_month("2027-01".parse().unwrap()).unwrap().rounding,
            Rounding::HalfUp
        );
    }

    #[test]
    fn bad_catalogs_are_refused_with_a_reason() {
        let cases = [
            (
                TWO_VERSIONS.replace("from = 0, unit_price = \"0.02\"", "from = 5, unit_price = \"0.02\""),
                "must start at from = 0",
            ),
            (TWO_VERSIONS.replace("from = 10", "from = 0"), "must be greater"),
            (
                TWO_VERSIONS.replace("\"0.01\" }]\n\n", "\"1e-2\" }]\n\n"),
                "not a plain decimal",
            ),
            (TWO_VERSIONS.replace("\"v2\"", "\"v1\""), "appears twice"),
            (TWO_VERSIONS.replace("2027-01", "2026-01"), "both take effect"),
            (
                TWO_VERSIONS.replace("unit_price = \"0.02\"", "unit_price = 0.02"),
                "invalid type",
            ),
            (
                TWO_VERSIONS.replace("free_calls = 500", "free_calls = -1"),
                "must not be negative",
            ),
            (
                TWO_VERSIONS.replace("tier_basis = \"billable\"", "tier_basis = \"most\""),
                "unknown variant",
            ),
        ];
        for (text, expected) in cases {
            let e = Catalog::parse(&text, "t").unwrap_err();
            assert!(e.contains(expected), "expected {expected:?} in {e:?}");
        }
    }
}
