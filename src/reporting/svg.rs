//! Bar charts as inline SVG for the month report: plain shapes and text, no script, nothing
//! fetched. Pure.
//!
//! Lengths are whole pixels computed with `rust_decimal` (value × length ÷ largest value,
//! rounded half away from zero), so no amount ever passes through a float, not even on its
//! way to the screen. A non-zero value is drawn at least one pixel long.

use super::esc;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use std::fmt::Write;

/// Fill colours of the series, in order (an accessible palette); the last one repeats.
pub const PALETTE: [&str; 6] = ["#2f6db5", "#e07b39", "#3a9d5d", "#8e5bb5", "#c4474a", "#7a7a7a"];

/// One bar of a horizontal chart: its label, its value and the text shown beside it.
pub struct Bar {
    pub label: String,
    pub value: Decimal,
    pub text: String,
}

/// One series of a column chart: a name for the legend and one value per category.
pub struct Series {
    pub name: String,
    pub values: Vec<Decimal>,
    /// Text shown above each column.
    pub texts: Vec<String>,
}

/// `value`'s share of `length` pixels when `max` takes all of them.
pub fn scale(value: Decimal, max: Decimal, length: u32) -> u32 {
    if max <= Decimal::ZERO || value <= Decimal::ZERO {
        return 0;
    }
    let px = (value * Decimal::from(length) / max)
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_u32()
        .unwrap_or(length)
        .min(length);
    px.max(1)
}

const LABEL_W: u32 = 190;
const TEXT_W: u32 = 150;
const ROW_H: u32 = 30;

/// A horizontal bar chart, one row per bar, labelled on the left, values on the right.
pub fn bars(id: &str, title: &str, bars: &[Bar], width: u32) -> String {
    let plot = width.saturating_sub(LABEL_W + TEXT_W).max(50);
    let max = bars.iter().map(|b| b.value).max().unwrap_or_default();
    let height = ROW_H * bars.len().max(1) as u32 + 10;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="{}" class="chart" role="img" aria-label="{}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#,
        esc(id),
        esc(title)
    );
    let _ = write!(s, "<title>{}</title>", esc(title));
    for (i, b) in bars.iter().enumerate() {
        let y = 5 + ROW_H * i as u32;
        let w = scale(b.value, max, plot);
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" class="label">{}</text>"#,
            LABEL_W - 8,
            y + 19,
            esc(&b.label)
        );
        let _ = write!(
            s,
            r#"<rect x="{LABEL_W}" y="{}" width="{w}" height="{}" fill="{}"><title>{}: {}</title></rect>"#,
            y + 4,
            ROW_H - 8,
            PALETTE[i.min(PALETTE.len() - 1)],
            esc(&b.label),
            esc(&b.text)
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="value">{}</text>"#,
            LABEL_W + w + 6,
            y + 19,
            esc(&b.text)
        );
    }
    s.push_str("</svg>");
    s
}

/// A column chart: one group of columns per category, one column per series, a legend when
/// there is more than one series. `highlight` marks one category (say, this month).
pub fn columns(
    id: &str,
    title: &str,
    categories: &[String],
    series: &[Series],
    highlight: Option<usize>,
    width: u32,
    plot_h: u32,
) -> String {
    const TOP: u32 = 24;
    let plot_h = plot_h.max(40);
    let legend_h = if series.len() > 1 { 26 } else { 0 };
    let height = TOP + plot_h + 40 + legend_h;
    let n = categories.len().max(1) as u32;
    let group_w = width.saturating_sub(20) / n;
    let col_w = (group_w.saturating_sub(12) / series.len().max(1) as u32).clamp(4, 80);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or_default();
    let base = TOP + plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="{}" class="chart" role="img" aria-label="{}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#,
        esc(id),
        esc(title)
    );
    let _ = write!(s, "<title>{}</title>", esc(title));
    let _ = write!(
        s,
        r##"<line x1="10" y1="{base}" x2="{}" y2="{base}" stroke="#999"/>"##,
        width.saturating_sub(10)
    );
    for (c, category) in categories.iter().enumerate() {
        let gx = 10 + group_w * c as u32;
        let used = col_w * series.len() as u32;
        let x0 = gx + group_w.saturating_sub(used) / 2;
        if highlight == Some(c) {
            let _ = write!(
                s,
                r#"<rect x="{gx}" y="{TOP}" width="{group_w}" height="{plot_h}" class="highlight"/>"#
            );
        }
        for (k, ser) in series.iter().enumerate() {
            let v = ser.values.get(c).copied().unwrap_or_default();
            let h = scale(v, max, plot_h - 20);
            let x = x0 + col_w * k as u32;
            let text = ser.texts.get(c).map(String::as_str).unwrap_or("");
            let _ = write!(
                s,
                r#"<rect x="{x}" y="{}" width="{}" height="{h}" fill="{}"><title>{} · {}: {}</title></rect>"#,
                base - h,
                col_w.saturating_sub(2).max(2),
                PALETTE[k.min(PALETTE.len() - 1)],
                esc(&ser.name),
                esc(category),
                esc(text)
            );
            if series.len() == 1 && !text.is_empty() {
                let _ = write!(
                    s,
                    r#"<text x="{}" y="{}" text-anchor="middle" class="value">{}</text>"#,
                    x + col_w / 2,
                    base - h - 5,
                    esc(text)
                );
            }
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" class="label">{}</text>"#,
            gx + group_w / 2,
            base + 18,
            esc(category)
        );
    }
    if series.len() > 1 {
        let y = base + 40;
        for (k, ser) in series.iter().enumerate() {
            let x = 10 + 200 * k as u32;
            let _ = write!(
                s,
                r#"<rect x="{x}" y="{}" width="14" height="14" fill="{}"/><text x="{}" y="{}" class="label">{}</text>"#,
                y - 11,
                PALETTE[k.min(PALETTE.len() - 1)],
                x + 20,
                y,
                esc(&ser.name)
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_exact_proportions_in_whole_pixels() {
        let d = Decimal::from;
        assert_eq!(scale(d(50), d(100), 300), 150);
        assert_eq!(scale(d(1), d(3), 100), 33);
        assert_eq!(scale(d(2), d(3), 100), 67);
        assert_eq!(scale(Decimal::new(1, 3), d(24493), 300), 1, "visible when non-zero");
        assert_eq!(scale(Decimal::ZERO, d(5), 300), 0);
        assert_eq!(scale(d(5), Decimal::ZERO, 300), 0);
    }

    #[test]
    fn labels_are_escaped_and_every_bar_is_drawn() {
        let svg = bars(
            "r",
            "Revenue",
            &[
                Bar {
                    label: "<b>A</b>".into(),
                    value: Decimal::from(2),
                    text: "2.00".into(),
                },
                Bar {
                    label: "B".into(),
                    value: Decimal::from(1),
                    text: "1.00".into(),
                },
            ],
            800,
        );
        assert!(svg.contains("&lt;b&gt;A&lt;/b&gt;") && !svg.contains("<b>"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(
            svg.contains(r#"width="460""#) && svg.contains(r#"width="230""#),
            "{svg}"
        );
    }

    #[test]
    fn columns_have_a_legend_for_several_series() {
        let cats = vec!["tier 1".to_string(), "tier 2".to_string()];
        let series = |name: &str| Series {
            name: name.into(),
            values: vec![Decimal::from(3), Decimal::from(1)],
            texts: vec!["3".into(), "1".into()],
        };
        let svg = columns("t", "Tiers", &cats, &[series("A"), series("B")], None, 600, 200);
        assert_eq!(svg.matches("<rect").count(), 4 + 2, "4 columns and 2 legend keys");
        let one = columns("h", "History", &cats, &[series("billed")], Some(1), 600, 100);
        assert!(one.contains(r#"class="highlight""#));
    }
}
