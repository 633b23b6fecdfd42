//! What `sh` makes of a command's text, as far as splicing a value into it safely needs: where a
//! `${...}` reference lands (bare, inside the author's `"..."` or `'...'`, inside `$(...)` at any
//! depth, each with its own quotes) and the places where no quoting is safe (inside backticks, in a
//! comment, after a here-document), which are refused rather than guessed at.

/// The quotes in force at a point.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Quote {
    Bare,
    Single,
    Double,
}

/// Where the shell stands at a point of a command's text.
#[derive(Clone, Debug)]
pub struct Context {
    quote: Quote,
    /// Open `$(`: the quotes around each, and the plain parentheses open inside it.
    substitutions: Vec<(Quote, usize)>,
    backticks: bool,
    comment: bool,
    heredoc: bool,
    /// The last character read (to tell a `#` that starts a comment).
    last: Option<char>,
}

impl Default for Context {
    fn default() -> Context {
        Context {
            quote: Quote::Bare,
            substitutions: Vec::new(),
            backticks: false,
            comment: false,
            heredoc: false,
            last: None,
        }
    }
}

impl Context {
    /// The context after the shell reads `text` from here.
    pub fn read(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if self.comment {
                self.comment = c != '\n';
                self.last = Some(c);
                continue;
            }
            match (self.quote, c) {
                (Quote::Bare | Quote::Double, '\\') => {
                    self.last = chars.next();
                    continue;
                }
                (Quote::Bare, '\'') => self.quote = Quote::Single,
                (Quote::Single, '\'') => self.quote = Quote::Bare,
                (Quote::Bare, '"') => self.quote = Quote::Double,
                (Quote::Double, '"') => self.quote = Quote::Bare,
                (Quote::Bare | Quote::Double, '`') => self.backticks = !self.backticks,
                (Quote::Bare | Quote::Double, '$') if chars.peek() == Some(&'(') => {
                    chars.next();
                    self.substitutions.push((self.quote, 0));
                    self.quote = Quote::Bare;
                }
                (Quote::Bare, '(') => {
                    if let Some((_, depth)) = self.substitutions.last_mut() {
                        *depth += 1;
                    }
                }
                (Quote::Bare, ')') => match self.substitutions.last_mut() {
                    Some((_, depth)) if *depth > 0 => *depth -= 1,
                    Some(_) => {
                        let (outer, _) = self.substitutions.pop().expect("checked above");
                        self.quote = outer;
                    }
                    None => {}
                },
                (Quote::Bare, '#') if self.last.is_none_or(|p| " \t\n;&|(".contains(p)) => {
                    self.comment = true;
                }
                (Quote::Bare, '<') if chars.peek() == Some(&'<') => {
                    chars.next();
                    // `<<<` is a here-string, a word like any other; `<<` starts a here-document.
                    if chars.peek() == Some(&'<') {
                        chars.next();
                    } else {
                        self.heredoc = true;
                    }
                }
                _ => {}
            }
            self.last = Some(c);
        }
    }

    /// `words` as literal shell text here: each word quoted when bare, escaped for the author's
    /// quotes otherwise; refused where the shell would read it again or not at all as written.
    pub fn splice(&self, words: &[String]) -> Result<String, &'static str> {
        if self.backticks {
            return Err("inside backticks, where the shell reads a value twice");
        }
        if self.comment {
            return Err("in a comment, which a line break in the value would end");
        }
        if self.heredoc {
            return Err("after a here-document (`<<`), whose body takes no quotes");
        }
        Ok(match self.quote {
            Quote::Bare => words
                .iter()
                .map(|w| quote_word(w))
                .collect::<Vec<_>>()
                .join(" "),
            Quote::Double => words
                .join(" ")
                .chars()
                .flat_map(|c| match c {
                    '\\' | '$' | '`' | '"' => vec!['\\', c],
                    _ => vec![c],
                })
                .collect(),
            Quote::Single => words.join(" ").replace('\'', r"'\''"),
        })
    }
}

/// One shell word that means exactly `text`: unchanged when it has only characters the shell takes
/// literally (so DVC-style words, numbers and paths read as written), single-quoted otherwise.
pub fn quote_word(text: &str) -> String {
    let literal = |c: char| c.is_ascii_alphanumeric() || "_-.,/:=@%+".contains(c);
    if !text.is_empty() && text.chars().all(literal) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `value` becomes when spliced at the end of `before`.
    fn at_end(before: &str, value: &str) -> Result<String, &'static str> {
        let mut context = Context::default();
        context.read(before);
        context.splice(&[value.to_string()])
    }

    #[test]
    fn values_are_quoted_for_the_quotes_around_them() {
        assert_eq!(at_end("echo ", "a b").unwrap(), "'a b'");
        assert_eq!(at_end("echo \"", "$(id)").unwrap(), "\\$(id)");
        assert_eq!(at_end("echo '", "it's").unwrap(), r"it'\''s");
        assert_eq!(at_end("echo \\' ", "x;y").unwrap(), "'x;y'");
        // Inside `$(...)` the quotes start afresh, at any depth.
        assert_eq!(at_end("echo \"$(basename \"", "$(id)").unwrap(), "\\$(id)");
        assert_eq!(
            at_end("echo \"$(cat '", "'; id; '").unwrap(),
            r"'\''; id; '\''"
        );
        assert_eq!(at_end("echo \"$(f (x)) ", "$(id)").unwrap(), "\\$(id)");
        // `#` inside a word is not a comment, and a comment ends at its line.
        assert_eq!(at_end("echo a#b ", "x y").unwrap(), "'x y'");
        assert_eq!(at_end("# don't\necho ", "a; id").unwrap(), "'a; id'");
        assert_eq!(at_end("cat <<< ", "a b").unwrap(), "'a b'");
    }

    #[test]
    fn places_no_quoting_can_make_safe_are_refused() {
        assert!(at_end("echo \"`echo ", "$(id)").is_err());
        assert!(at_end("echo `echo ", "x").is_err());
        assert!(at_end("# note ", "x\nid").is_err());
        assert!(at_end("cat <<EOF\n", "$(id)").is_err());
        assert!(at_end("echo `a` ", "x").is_ok());
    }
}
