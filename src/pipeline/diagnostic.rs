//! Spec errors that point into the pipeline file: message, file, line, column, the offending line
//! with a caret under it, and an optional hint ("did you mean `train`?").

use std::fmt;

use super::yaml::Pos;

/// One problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub file: String,
    /// Where in the file; `None` for problems of the file as a whole.
    pub pos: Option<Pos>,
    /// A lowercase sentence fragment saying what is wrong.
    pub message: String,
    /// What to do about it, when we know.
    pub help: Option<String>,
    /// The source line at `pos`, kept so the diagnostic renders without the file.
    pub line_text: Option<String>,
    /// How many characters to underline; by default the token at `pos`.
    pub width: Option<usize>,
}

impl Diagnostic {
    /// A diagnostic at `pos` in `source` (the text of `file`).
    pub fn at(file: &str, source: &str, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            pos: Some(pos),
            message: message.into(),
            help: None,
            line_text: source
                .lines()
                .nth(pos.line.saturating_sub(1))
                .map(str::to_string),
            width: None,
        }
    }

    /// A diagnostic about the file as a whole or the command line, with no position.
    pub fn general(file: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            pos: None,
            message: message.into(),
            help: None,
            line_text: None,
            width: None,
        }
    }

    /// Adds a hint, if there is one.
    pub fn with_optional_help(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        match self.pos {
            Some(pos) => {
                writeln!(f, "  --> {}:{}:{}", self.file, pos.line, pos.col)?;
                if let Some(line) = &self.line_text {
                    let number = pos.line.to_string();
                    let gutter = " ".repeat(number.len());
                    let width = self.width.unwrap_or_else(|| underline_width(line, pos.col));
                    writeln!(f, " {gutter} |")?;
                    writeln!(f, " {number} | {line}")?;
                    writeln!(
                        f,
                        " {gutter} | {}{}",
                        " ".repeat(pos.col.saturating_sub(1)),
                        "^".repeat(width)
                    )?;
                }
            }
            None => writeln!(f, "  --> {}", self.file)?,
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

/// Underlines the token that starts at `col`: up to the next `:` or the end of the line.
fn underline_width(line: &str, col: usize) -> usize {
    let rest: String = line.chars().skip(col.saturating_sub(1)).collect();
    let token = rest.split(": ").next().unwrap_or("").trim_end();
    let token = token.strip_suffix(':').unwrap_or(token);
    token.chars().count().max(1)
}

/// All the problems found in one pipeline, rendered one after another.
#[derive(Debug, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "\n{n} error{} in {}",
            if n == 1 { "" } else { "s" },
            self.0
                .first()
                .map(|d| d.file.as_str())
                .unwrap_or("the pipeline")
        )
    }
}

impl std::error::Error for Diagnostics {}

/// The closest of `candidates` to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_line_and_caret() {
        let src = "stages:\n  a:\n    cmdd: echo\n";
        let d = Diagnostic::at("p.yaml", src, Pos { line: 3, col: 5 }, "unknown key `cmdd`")
            .with_help("did you mean `cmd`?");
        let text = d.to_string();
        assert!(text.contains("--> p.yaml:3:5"), "{text}");
        assert!(text.contains(" 3 |     cmdd: echo"), "{text}");
        assert!(text.contains("   |     ^^^^\n"), "{text}");
        assert!(text.contains("= help: did you mean `cmd`?"), "{text}");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("cmdd", ["cmd", "deps"]).unwrap(),
            "did you mean `cmd`?"
        );
        assert_eq!(did_you_mean("zzzzzz", ["cmd", "deps"]), None);
    }
}
