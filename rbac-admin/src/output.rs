//! Printing helpers: aligned text tables, JSON, and colour that respects `NO_COLOR`.

use std::io::Write;

/// Writes rows as a left-aligned table with a header; columns are separated by two spaces and
/// trailing spaces are trimmed. An empty table prints `(none)` under the header.
pub fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    // One row a line, whatever a cell holds: a line break in a description or a comment is
    // written `\n`, so that line-based tools read one row a line.
    let escaped: Vec<Vec<String>>;
    let rows = if rows.iter().flatten().any(|c| c.contains(['\n', '\r'])) {
        escaped = rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|c| c.replace('\r', "\\r").replace('\n', "\\n"))
                    .collect()
            })
            .collect();
        &escaped[..]
    } else {
        rows
    };
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        text.trim_end().to_owned()
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    if rows.is_empty() {
        writeln!(out, "(none)")?;
    }
    for row in rows {
        writeln!(out, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

/// Writes a value as pretty JSON and a newline.
pub fn json(out: &mut dyn Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")
}

/// `allow` in green or `deny` in red when `color`, plain otherwise.
pub fn verdict(allowed: bool, color: bool) -> String {
    paint(
        if allowed { "allow" } else { "deny" },
        if allowed { "32" } else { "31" },
        color,
    )
}

/// Wraps `text` in an ANSI colour when `color`.
pub fn paint(text: &str, ansi: &str, color: bool) -> String {
    if color {
        format!("\x1b[{ansi}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Joins a list for a table cell; `-` when empty.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_break_in_a_cell_stays_on_its_row() {
        let mut out = Vec::new();
        let rows = vec![vec!["a.b.c".to_owned(), "two\nlines\r".to_owned()]];
        table(&mut out, &["NAME", "DESCRIPTION"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "NAME   DESCRIPTION\na.b.c  two\\nlines\\r\n");
    }

    #[test]
    fn tables_align_and_trim() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["NAME", "DESCRIPTION"],
            &[
                vec!["a".into(), "first".into()],
                vec!["longer".into(), String::new()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME    DESCRIPTION\na       first\nlonger\n"
        );
    }
}
