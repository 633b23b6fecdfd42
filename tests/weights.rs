//! `pipe weights inspect` on the real MobileNetV2 TFLite file in `../shared/data/weights/` (skipped with
//! a printed reason when absent) and on damaged copies of it.

use std::path::Path;

use crate::test::Ws;

fn weights() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/weights/mobilenet_v2_1.0_224_quant.tflite");
    if path.is_file() {
        Some(path.display().to_string())
    } else {
        eprintln!("skipped: {} is absent", path.display());
        None
    }
}

#[test]
fn inspect_lists_the_tensors_of_the_imagenet_model() {
    let Some(file) = weights() else { return };
    let ws = Ws::new();
    let out = ws.ok(&["weights", "inspect", &file]).stdout;
    assert!(
        out.contains("TensorFlow Lite schema v3, 174 tensors"),
        "{out}"
    );
    assert!(out.contains("input: input [1, 224, 224, 3] uint8"), "{out}");
    assert!(
        out.contains("output: MobilenetV2/Predictions/Softmax [1, 1001] uint8"),
        "{out}"
    );
    // The input quantisation is x/128 - 1, as the weights' README says.
    let input = out
        .lines()
        .find(|l| l.trim_end().ends_with(" input"))
        .unwrap();
    assert!(input.contains("0.007812 @ 128"), "{input}");
}

#[test]
fn damaged_weights_are_an_error_naming_the_file() {
    let Some(file) = weights() else { return };
    let ws = Ws::new();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(ws.file("cut.tflite"), &bytes[..2000]).unwrap();
    ws.fails(
        &["weights", "inspect", "cut.tflite"],
        2,
        &["`cut.tflite`", "past the end of the file"],
    );
    ws.write("notes.tflite", "not a model at all");
    ws.fails(
        &["weights", "inspect", "notes.tflite"],
        2,
        &["not a TensorFlow Lite model"],
    );
}
