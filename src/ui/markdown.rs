//! A report's markdown as HTML, for the run page: the subset reports are written in (headings,
//! paragraphs, pipe tables, lists, fenced code, images on a line of their own, `code`, **bold** and
//! links). Every piece of text is escaped, so raw HTML in a report shows as text; an image may only
//! name a file in the report's own folder, and a link a file there or an `http(s)` address, so a
//! crafted report can neither run a script nor pull in anything from elsewhere.

use std::fmt::Write as _;

use super::html::escape;

/// How the page shows what a report points at.
pub trait Targets {
    /// The HTML for an image of the report's folder named `file`, with `alt` as its caption.
    fn figure(&self, file: &str, alt: &str) -> String;
    /// The address of `file` in the report's folder.
    fn file(&self, file: &str) -> String;
}

/// Whether `name` is a plain file name in the report's folder (no folder, no `..`, not hidden).
fn plain_file(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// The blocks being gathered: lines of a paragraph, rows of a table, items of a list.
#[derive(Default)]
struct Open {
    paragraph: Vec<String>,
    table: Vec<Vec<String>>,
    list: Vec<String>,
}

impl Open {
    fn close(&mut self, html: &mut String, targets: &dyn Targets) {
        if !self.paragraph.is_empty() {
            let _ = write!(
                html,
                "<p>{}</p>",
                inline(&self.paragraph.join(" "), targets)
            );
            self.paragraph.clear();
        }
        if !self.list.is_empty() {
            html.push_str("<ul>");
            for item in self.list.drain(..) {
                let _ = write!(html, "<li>{}</li>", inline(&item, targets));
            }
            html.push_str("</ul>");
        }
        if !self.table.is_empty() {
            html.push_str(&table(&self.table, targets));
            self.table.clear();
        }
    }
}

/// A pipe table's rows as HTML: the first is the head; a `|---|` row is the rule below it.
fn table(rows: &[Vec<String>], targets: &dyn Targets) -> String {
    let is_rule = |row: &Vec<String>| {
        row.iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| "-: ".contains(ch)))
    };
    let mut html = String::from("<table><thead><tr>");
    for cell in &rows[0] {
        let _ = write!(html, "<th scope=\"col\">{}</th>", inline(cell, targets));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows[1..].iter().filter(|r| !is_rule(r)) {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", inline(cell, targets));
        }
        html.push_str("</tr>");
    }
    html + "</tbody></table>"
}

/// `![alt](file)` alone on a line: (alt, file).
fn image(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("![")?.strip_suffix(')')?;
    rest.split_once("](")
}

/// `text` as HTML, headings one level down (the page has its own `h1`), without the sections whose
/// heading is one of `left_out` (the page shows those itself).
pub fn render(text: &str, targets: &dyn Targets, left_out: &[&str]) -> String {
    let mut html = String::new();
    let mut open = Open::default();
    let mut code: Option<String> = None;
    // The level of the heading whose section is being left out.
    let mut leaving: Option<usize> = None;
    for line in text.lines() {
        let level = line.chars().take_while(|&c| c == '#').count();
        if level > 0 && line[level..].starts_with(' ') && code.is_none() {
            if leaving.is_some_and(|at| level <= at) {
                leaving = None;
            }
            if left_out.contains(&line[level..].trim()) {
                open.close(&mut html, targets);
                leaving = Some(level);
            }
        }
        if leaving.is_some() {
            continue;
        }
        if let Some(block) = &mut code {
            if line.trim_start().starts_with("```") {
                let _ = write!(html, "<pre><code>{}</code></pre>", escape(block));
                code = None;
            } else {
                block.push_str(line);
                block.push('\n');
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.starts_with('|') {
            if open.table.is_empty() {
                open.close(&mut html, targets);
            }
            let inner = trimmed.trim_start_matches('|').trim_end_matches('|');
            open.table
                .push(inner.split('|').map(|c| c.trim().to_string()).collect());
            continue;
        }
        if let Some(item) = trimmed.strip_prefix("- ").or(trimmed.strip_prefix("* ")) {
            if open.list.is_empty() {
                open.close(&mut html, targets);
            }
            open.list.push(item.to_string());
            continue;
        }
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        let is_heading = (1..=5).contains(&hashes) && trimmed[hashes..].starts_with(' ');
        let continues_paragraph = !trimmed.is_empty()
            && !is_heading
            && !trimmed.starts_with("```")
            && image(trimmed).is_none()
            && open.table.is_empty()
            && open.list.is_empty();
        if !continues_paragraph {
            open.close(&mut html, targets);
        }
        if trimmed.starts_with("```") {
            code = Some(String::new());
        } else if is_heading {
            let level = hashes + 1;
            let _ = write!(
                html,
                "<h{level}>{}</h{level}>",
                inline(trimmed[hashes..].trim(), targets)
            );
        } else if let Some((alt, file)) = image(trimmed).filter(|(_, f)| plain_file(f)) {
            html.push_str(&targets.figure(file, alt));
        } else if !trimmed.is_empty() {
            open.paragraph.push(trimmed.to_string());
        }
    }
    open.close(&mut html, targets);
    if let Some(block) = code {
        let _ = write!(html, "<pre><code>{}</code></pre>", escape(&block));
    }
    html
}

/// A line's `code`, **bold** and [links](target), the rest escaped.
fn inline(text: &str, targets: &dyn Targets) -> String {
    let mut html = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['`', '*', '[']) {
        html.push_str(&escape(&rest[..at]));
        let tail = &rest[at..];
        let (piece, used) = if let Some(inner) = tail.strip_prefix('`') {
            match inner.find('`') {
                Some(end) => (format!("<code>{}</code>", escape(&inner[..end])), end + 2),
                None => (escape("`"), 1),
            }
        } else if let Some(inner) = tail.strip_prefix("**") {
            match inner.find("**") {
                Some(end) => (
                    format!("<strong>{}</strong>", inline(&inner[..end], targets)),
                    end + 4,
                ),
                None => ("**".into(), 2),
            }
        } else if tail.starts_with('[') {
            link(tail, targets).unwrap_or_else(|| ("[".into(), 1))
        } else {
            (escape(&tail[..1]), 1)
        };
        html.push_str(&piece);
        rest = &tail[used..];
    }
    html + &escape(rest)
}

/// `[text](target)` at the start of `tail`: its HTML and length; `None` when it is not a link we
/// follow (the text then shows as written).
fn link(tail: &str, targets: &dyn Targets) -> Option<(String, usize)> {
    let close = tail.find("](")?;
    let end = close + 2 + tail[close + 2..].find(')')?;
    let (text, target) = (&tail[1..close], &tail[close + 2..end]);
    let href = if target.starts_with("https://") || target.starts_with("http://") {
        target.to_string()
    } else if plain_file(target) {
        targets.file(target)
    } else {
        return None;
    };
    Some((
        format!(
            "<a href=\"{}\" rel=\"noopener noreferrer\">{}</a>",
            escape(&href),
            inline(text, targets)
        ),
        end + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Folder;

    impl Targets for Folder {
        fn figure(&self, file: &str, alt: &str) -> String {
            format!("<img src=\"r/{file}\" alt=\"{}\">", escape(alt))
        }
        fn file(&self, file: &str) -> String {
            format!("r/{file}")
        }
    }

    #[test]
    fn a_report_renders_as_headings_paragraphs_tables_and_figures() {
        let md = "# Title\n\nRun `x` of **the** pipeline,\nwrapped.\n\n| metric | value |\n|---|---|\n| accuracy | 0.9 |\n\n![Curves](training_curves.png)\n\n- one\n- two\n";
        let html = render(md, &Folder, &[]);
        assert_eq!(
            html,
            "<h2>Title</h2><p>Run <code>x</code> of <strong>the</strong> pipeline, wrapped.</p>\
             <table><thead><tr><th scope=\"col\">metric</th><th scope=\"col\">value</th></tr></thead>\
             <tbody><tr><td>accuracy</td><td>0.9</td></tr></tbody></table>\
             <img src=\"r/training_curves.png\" alt=\"Curves\"><ul><li>one</li><li>two</li></ul>"
        );
    }

    #[test]
    fn sections_the_page_shows_itself_are_left_out() {
        let md = "# R\n\n## Results\n\nkept\n\n## Params\n\n| a | b |\n\n### sub\n\ngone\n\n## Stages\n\ngone too\n\n## After\n\nkept too\n";
        let html = render(md, &Folder, &["Params", "Stages"]);
        assert_eq!(
            html,
            "<h2>R</h2><h3>Results</h3><p>kept</p><h3>After</h3><p>kept too</p>"
        );
    }

    #[test]
    fn a_crafted_report_runs_nothing_and_reaches_nothing_outside_its_folder() {
        let md = "<script>alert(1)</script>\n\n![x](../../secret.png)\n\n![y](/etc/passwd)\n\n\
                  [a](javascript:alert(1)) [b](https://example.org/\"onmouseover=x) [c](notes.txt)\n\n```\n<b>\n```";
        let html = render(md, &Folder, &[]);
        assert!(
            !html.contains("<script") && html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(
            html.contains("href=\"https://example.org/&quot;onmouseover=x\""),
            "{html}"
        );
        assert!(html.contains("href=\"r/notes.txt\""), "{html}");
        assert!(
            html.contains("<pre><code>&lt;b&gt;\n</code></pre>"),
            "{html}"
        );
    }
}
