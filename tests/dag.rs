//! `pipe dag` in its three formats.

use crate::test::chain;

#[test]
fn dag_prints_text_dot_and_mermaid() {
    let ws = chain();
    let text = ws.ok(&["dag", "p.yaml"]).stdout;
    assert_eq!(
        text,
        "prepare (cmd)\ntrain (cmd)\n  <- prepare (reads clean.txt)\nevaluate (cmd)\n  <- train (reads model.txt)\nother (cmd)\n"
    );
    let dot = ws.ok(&["dag", "p.yaml", "--format", "dot"]).stdout;
    assert!(
        dot.starts_with("digraph pipeline {")
            && dot.contains("\"prepare\" -> \"train\" [label=\"clean.txt\"];"),
        "{dot}"
    );
    let mermaid = ws.ok(&["dag", "p.yaml", "--format", "mermaid"]).stdout;
    assert!(
        mermaid.contains("s0[\"prepare\"]") && mermaid.contains("s1 --> s2"),
        "{mermaid}"
    );
}
