//! Text tables in the shape of PowerShell's `Format-Table`: a header, a
//! dashed underline, columns padded to their widest cell.

/// Renders `rows` under `headers`. The last column is not padded.
pub(crate) fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$} "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(
        headers
            .iter()
            .map(|h| "-".repeat(h.chars().count()))
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns_like_format_table() {
        let rows = vec![
            vec!["DB01".to_string(), "mail.lab.com".to_string()],
            vec!["Mailbox Database 2".to_string(), String::new()],
        ];
        assert_eq!(
            render(&["Name", "RpcClientAccessServer"], &rows),
            "Name               RpcClientAccessServer\n\
             ----               ---------------------\n\
             DB01               mail.lab.com\n\
             Mailbox Database 2\n"
        );
    }
}
