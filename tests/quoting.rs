//! No value can run a command the pipeline's author did not write: values from `--set`, params files
//! and `foreach` items reach `sh -c` as literal text, quoted for where they land in `cmd`; `:raw` is the
//! author's explicit opt-out.

use crate::test::Ws;

#[test]
fn a_set_value_with_shell_syntax_is_one_literal_word() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "params:\n  name: plain\nstages:\n  greet:\n    cmd: printf '%s|' hello ${params.name} > out.txt\n    outs: [out.txt]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("out.txt"), "hello|plain|");
    ws.ok(&["run", "p.yaml", "--set", "name=x; touch owned.txt"]);
    assert_eq!(ws.read("out.txt"), "hello|x; touch owned.txt|");
    assert!(
        !ws.file("owned.txt").exists(),
        "the --set value ran a command"
    );
}

#[test]
fn params_file_values_stay_literal_inside_the_authors_quotes() {
    let ws = Ws::new();
    ws.write(
        "params.yaml",
        "title: $(touch owned.txt) `touch owned2.txt` \"q\" \\n\nnote: it's $HOME\n",
    )
    .write(
        "dvc.yaml",
        r#"stages:
  say:
    cmd: printf '%s|' "${title}" '${note}' ${note} > out.txt
    params: [title, note]
    outs: [out.txt]
"#,
    );
    ws.ok(&["run", "dvc.yaml"]);
    assert_eq!(
        ws.read("out.txt"),
        "$(touch owned.txt) `touch owned2.txt` \"q\" \\n|it's $HOME|it's $HOME|"
    );
    assert!(!ws.file("owned.txt").exists() && !ws.file("owned2.txt").exists());
}

#[test]
fn foreach_items_and_lists_become_separate_quoted_words() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        r#"params:
  files: ["a b", "c;d", "e"]
stages:
  list:
    cmd: printf '%s|' ${params.files} > list.txt
    outs: [list.txt]
  each:
    foreach: ["x", "y && touch owned.txt"]
    do:
      cmd: printf '%s|' ${item} >> each.txt
"#,
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("list.txt"), "a b|c;d|e|");
    let each = ws.read("each.txt");
    assert!(
        each.contains("x|") && each.contains("y && touch owned.txt|"),
        "{each}"
    );
    assert!(!ws.file("owned.txt").exists());
}

#[test]
fn raw_references_paste_shell_syntax_the_author_asked_for() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "params:\n  filter: tr o 0\nstages:\n  s:\n    cmd: echo one | ${params.filter:raw} > out.txt\n    outs: [out.txt]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("out.txt"), "0ne\n");
}

#[test]
fn values_inside_command_substitutions_stay_literal_and_backticks_are_refused() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        r#"params:
  name: "$(touch owned.txt)"
stages:
  s:
    cmd: echo "$(basename "${params.name}")" > out.txt
    outs: [out.txt]
"#,
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("out.txt"), "$(touch owned.txt)\n");
    assert!(!ws.file("owned.txt").exists());
    ws.write(
        "q.yaml",
        "params:\n  name: x\nstages:\n  s:\n    cmd: echo \"`echo ${params.name}`\"\n",
    );
    ws.fails(&["run", "q.yaml"], 2, &["is inside backticks"]);
}
