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

#[test]
fn classify_gives_the_reference_top1_with_the_imported_weights() {
    // The reference (docs/model.md, "The reference file and how it is imported"): the dequantised network labels the three photographs
    // Egyptian cat 0.73, military uniform 0.91 and chickadee 0.98.
    let Some(file) = weights() else { return };
    let dir = Path::new(&file).parent().unwrap().to_path_buf();
    let ws = Ws::new();
    let images: Vec<String> = ["cat.bmp", "grace_hopper.bmp", "bird.bmp"]
        .iter()
        .map(|f| dir.join(f).display().to_string())
        .collect();
    let mut args = vec!["weights", "inspect", &file, "--top1", "--classify"];
    args.extend(images.iter().map(String::as_str));
    let out = ws.ok(&args).stdout;
    let expected = [
        ("Egyptian cat", 0.73),
        ("military uniform", 0.91),
        ("chickadee", 0.98),
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for ((line, image), (label, p)) in lines.iter().zip(&images).zip(expected) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[..2], [image.as_str(), label], "{line}");
        let got: f64 = fields[2].parse().unwrap();
        assert!((got - p).abs() <= 0.05, "{label}: {got} vs {p}");
    }

    // Converted once into a checkpoint, the network labels the same way.
    ws.ok(&["weights", "convert", &file, "imagenet.safetensors"]);
    let labels = dir.join("imagenet_labels.txt").display().to_string();
    let converted = ws
        .ok(&[
            "weights",
            "inspect",
            "imagenet.safetensors",
            "--labels",
            &labels,
            "--top1",
            "--classify",
            &images[0],
        ])
        .stdout;
    assert!(converted.contains("\tEgyptian cat\t"), "{converted}");
}
