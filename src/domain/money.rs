//! Money: exact decimals in CNY, balances in fen (integer minor units), and the named
//! rounding strategies a bill total may use.
//!
//! Bill lines keep their exact amount (`calls × unit price`, as many decimals as the price
//! has). Only a bill's total is rounded, to 0.01 CNY, and always with a strategy named here:
//! `rust_decimal`'s bare `round()` is banker's rounding, which is not what finance expects by
//! default (docs/rules.md, rule 5).

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a bill's exact total is brought to 0.01 CNY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Rounding {
    /// 5.205 → 5.21 and −5.205 → −5.21 (half away from zero). The default.
    #[default]
    HalfUp,
    /// 5.205 → 5.20, 5.215 → 5.22 (banker's rounding).
    HalfEven,
    /// 5.209 → 5.20 (towards zero).
    Truncate,
}

impl Rounding {
    /// Rounds `amount` to whole fen (two decimals) with this strategy.
    pub fn to_fen_precision(self, amount: Decimal) -> Decimal {
        let strategy = match self {
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::Truncate => RoundingStrategy::ToZero,
        };
        let mut rounded = amount.round_dp_with_strategy(2, strategy);
        rounded.rescale(2);
        rounded
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rounding::HalfUp => "half-up",
            Rounding::HalfEven => "half-even",
            Rounding::Truncate => "truncate",
        }
    }
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Rounding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "half-up" => Ok(Rounding::HalfUp),
            "half-even" => Ok(Rounding::HalfEven),
            "truncate" => Ok(Rounding::Truncate),
            other => Err(format!(
                "unknown rounding '{other}' (expected half-up, half-even or truncate)"
            )),
        }
    }
}

/// Parses a plain decimal string (`123`, `-4.5`, `0.003`): digits, an optional sign and an
/// optional fraction. Exponents, thousands separators, spaces inside and empty strings are
/// refused, so what finance typed is exactly what is stored.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
        return Err(format!("'{text}' is not a plain decimal number (like 12.34)"));
    }
    Decimal::from_str_exact(t).map_err(|e| format!("'{text}' is not a usable decimal: {e}"))
}

/// Parses an amount of money in CNY with at most two decimals (whole fen), as balances and
/// recharges are kept in fen.
pub fn parse_cny(text: &str) -> Result<Decimal, String> {
    let d = parse_decimal(text)?;
    if d.normalize().scale() > 2 {
        return Err(format!(
            "'{text}' has more than two decimals; amounts of money are in whole fen (0.01 CNY)"
        ));
    }
    Ok(d)
}

/// Whole fen in a CNY amount, if it has at most two decimals and fits in an i64.
pub fn to_fen(amount: Decimal) -> Option<i64> {
    let fen = amount.checked_mul(Decimal::ONE_HUNDRED)?;
    if fen.fract() != Decimal::ZERO {
        return None;
    }
    i64::try_from(fen).ok()
}

/// The CNY amount of a number of fen, with two decimals.
pub fn from_fen(fen: i64) -> Decimal {
    Decimal::new(fen, 2)
}

/// Formats money as a plain decimal string with at least two decimals and no trailing zeros
/// beyond them: `4997.5` → `4997.50`, `0.003` → `0.003`, `-0` → `0.00`.
pub fn format_money(amount: Decimal) -> String {
    let mut n = amount.normalize();
    if n.is_zero() {
        n = Decimal::ZERO;
    }
    if n.scale() < 2 {
        n.rescale(2);
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn half_up_rounds_midpoint_away_from_zero() {
        assert_eq!(Rounding::HalfUp.to_fen_precision(d("5.205")), d("5.21"));
        assert_eq!(Rounding::HalfUp.to_fen_precision(d("5.2049")), d("5.20"));
        assert_eq!(Rounding::HalfUp.to_fen_precision(d("-5.205")), d("-5.21"));
    }

    #[test]
    fn half_even_and_truncate_differ_from_half_up() {
        assert_eq!(Rounding::HalfEven.to_fen_precision(d("5.205")), d("5.20"));
        assert_eq!(Rounding::HalfEven.to_fen_precision(d("5.215")), d("5.22"));
        assert_eq!(Rounding::Truncate.to_fen_precision(d("5.209")), d("5.20"));
        assert_eq!(Rounding::Truncate.to_fen_precision(d("-5.209")), d("-5.20"));
    }

    #[test]
    fn rounded_values_always_carry_two_decimals() {
        assert_eq!(Rounding::HalfUp.to_fen_precision(d("998")).to_string(), "998.00");
    }

    #[test]
    fn parse_decimal_accepts_plain_numbers_only() {
        assert_eq!(parse_decimal("12.34").unwrap(), d("12.34"));
        assert_eq!(parse_decimal("-0.003").unwrap(), d("-0.003"));
        assert_eq!(parse_decimal("+7").unwrap(), d("7"));
        for bad in ["", "abc", "1e5", "1,000", "1.", ".5", "--1", "1 000", "NaN", "0x10"] {
            assert!(parse_decimal(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn parse_cny_refuses_fractions_of_a_fen() {
        assert_eq!(parse_cny("100.50").unwrap(), d("100.50"));
        assert_eq!(parse_cny("100.500").unwrap(), d("100.500"));
        assert!(parse_cny("0.001").is_err());
    }

    #[test]
    fn fen_round_trip() {
        assert_eq!(to_fen(d("-12.34")), Some(-1234));
        assert_eq!(to_fen(d("0.001")), None);
        assert_eq!(from_fen(-1234), d("-12.34"));
        assert_eq!(from_fen(5).to_string(), "0.05");
    }

    #[test]
    fn money_formatting() {
        assert_eq!(format_money(d("4997.5000")), "4997.50");
        assert_eq!(format_money(d("0.0030")), "0.003");
        assert_eq!(format_money(d("998")), "998.00");
        assert_eq!(format_money(d("-0.000")), "0.00");
        assert_eq!(format_money(d("-1.5")), "-1.50");
    }
}
