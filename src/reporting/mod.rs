//! What finance and support read: the month summed up, the month report as one HTML page with
//! inline SVG charts, and one bill explained line by line; and what operations alert on, the
//! metrics in Prometheus' text format.
//!
//! Everything here is pure: it is handed bill lines and totals the jobs read from the store,
//! and returns values or text. Nothing here reads a database, a file or the clock, so each
//! piece is tested on its own.

pub mod bill_text;
pub mod estimate;
pub mod html;
pub mod metrics;
pub mod summary;
pub mod svg;

/// Escapes text for HTML and SVG, in element content and in quoted attributes alike.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Groups the digits of a plain decimal's integer part in threes: `3499000` → `3,499,000`,
/// `-24493.00` → `-24,493.00`. Only for reading; files keep plain decimals.
pub fn group_digits(plain: &str) -> String {
    let (sign, rest) = match plain.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", plain),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(esc("示例一"), "示例一");
    }

    #[test]
    fn digits_are_grouped_in_threes() {
        assert_eq!(group_digits("3499000"), "3,499,000");
        assert_eq!(group_digits("-24493.00"), "-24,493.00");
        assert_eq!(group_digits("999.999"), "999.999");
        assert_eq!(group_digits("1000"), "1,000");
        assert_eq!(group_digits("0.003"), "0.003");
    }
}
