//! The data stages (ingest, validate, split, augment) on files the tests write, each fault the real
//! dataset has among them, and on the real sample in `../shared/data/fracture-sample`.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, ImageBuffer, ImageFormat, Luma, Rgb};
use pipe::tables::Table;
use serde_json::Value;

use crate::test::Ws;

/// The pipeline the fault tests run: ingest a folder, validate it, split it.
const FOLDER_PIPELINE: &str = r#"
params:
  mode: random
stages:
  ingest:
    uses: ingest
    with:
      source: raw
  validate:
    uses: validate
  split:
    uses: split
    with:
      mode: ${params.mode}
      val: 0.2
      test: 0.2
"#;

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A distinct, smooth test picture for `seed` (distinct enough not to be near duplicates).
fn picture(seed: u32, size: u32) -> GrayImage {
    let s = f64::from(seed);
    ImageBuffer::from_fn(size, size, |x, y| {
        let (u, v) = (
            f64::from(x) / f64::from(size),
            f64::from(y) / f64::from(size),
        );
        let value =
            128.0 + 90.0 * ((u * (2.0 + s * 0.7) + s).sin() * (v * (1.3 + s * 0.4) - s).cos());
        Luma([value.clamp(0.0, 255.0) as u8])
    })
}

fn write_bytes(ws: &Ws, rel: &str, bytes: &[u8]) {
    let path = ws.file(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A PNG whose header claims `width` x `height` (valid chunk CRCs) but carries no pixel data.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(width.to_be_bytes());
    chunk.extend(height.to_be_bytes());
    chunk.extend([8, 0, 0, 0, 0]);
    png.extend(13u32.to_be_bytes());
    png.extend(&chunk);
    png.extend(crc32fast::hash(&chunk).to_be_bytes());
    png
}

/// A JPEG with an EXIF APP1 segment saying "rotate 90 degrees clockwise" (orientation 6).
fn jpeg_with_orientation(image: &DynamicImage, orientation: u16) -> Vec<u8> {
    let jpeg = encode(image, ImageFormat::Jpeg);
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend(1u16.to_be_bytes()); // one IFD entry
    tiff.extend(0x0112u16.to_be_bytes()); // Orientation
    tiff.extend(3u16.to_be_bytes()); // SHORT
    tiff.extend(1u32.to_be_bytes());
    tiff.extend(orientation.to_be_bytes());
    tiff.extend([0, 0]);
    tiff.extend(0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

/// A folder with good images in both classes and every fault the issue lists.
fn faulty_folder() -> Ws {
    let ws = Ws::new();
    for i in 0..8 {
        for (class, offset) in [("fractured", 0), ("not fractured", 100)] {
            let image = DynamicImage::ImageLuma8(picture(i + offset, 64));
            write_bytes(
                &ws,
                &format!("raw/{class}/good{i}.png"),
                &encode(&image, ImageFormat::Png),
            );
        }
    }
    let pattern = picture(60, 80);
    let photo = DynamicImage::ImageRgb8(ImageBuffer::from_fn(80, 48, |x, y| {
        let v = pattern.get_pixel(x, y)[0];
        Rgb([v, v / 2, 255 - v / 3])
    }));
    let jpeg = encode(&photo, ImageFormat::Jpeg);
    write_bytes(
        &ws,
        "raw/fractured/truncated.jpg",
        &jpeg[..jpeg.len() * 2 / 3],
    );
    write_bytes(&ws, "raw/fractured/empty.jpg", b"");
    write_bytes(
        &ws,
        "raw/fractured/notes.png",
        b"these are my notes, not a picture\n",
    );
    write_bytes(
        &ws,
        "raw/fractured/bomb.png",
        &png_header_only(20_000, 20_000),
    );
    let pattern = picture(70, 64);
    let deep = DynamicImage::ImageLuma16(ImageBuffer::from_fn(64, 64, |x, y| {
        Luma([u16::from(pattern.get_pixel(x, y)[0]) * 257])
    }));
    write_bytes(
        &ws,
        "raw/not fractured/sixteen.png",
        &encode(&deep, ImageFormat::Png),
    );
    let cmyk =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/cmyk.jpg"))
            .unwrap();
    write_bytes(&ws, "raw/not fractured/cmyk.jpg", &cmyk);
    write_bytes(
        &ws,
        "raw/not fractured/rotated.jpg",
        &jpeg_with_orientation(&photo, 6),
    );
    let other = DynamicImage::ImageLuma8(picture(40, 64)).to_rgb8();
    let gif = encode(&DynamicImage::ImageRgb8(other), ImageFormat::Gif);
    write_bytes(&ws, "raw/not fractured/animated.jpg", &gif);
    write_bytes(
        &ws,
        "raw/not fractured/flat.png",
        &encode(
            &DynamicImage::ImageLuma8(GrayImage::from_pixel(64, 64, Luma([77]))),
            ImageFormat::Png,
        ),
    );
    write_bytes(
        &ws,
        "raw/not fractured/tiny.png",
        &encode(&DynamicImage::ImageLuma8(picture(3, 12)), ImageFormat::Png),
    );
    ws.write("raw/README.txt", "not an image extension: ignored\n");
    ws.write("pipe.yaml", FOLDER_PIPELINE);
    ws
}

/// Rows of a CSV table as (column -> value) maps.
fn csv_rows(ws: &Ws, rel: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let table = Table::csv(&ws.file(rel)).unwrap();
    let mut rows = vec![std::collections::BTreeMap::new(); table.len()];
    let text = std::fs::read_to_string(ws.file(rel)).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    for name in header {
        for (row, value) in rows.iter_mut().zip(table.optional_text(name).unwrap()) {
            row.insert(name.to_string(), value.unwrap_or_default());
        }
    }
    rows
}

fn find<'a>(
    rows: &'a [std::collections::BTreeMap<String, String>],
    path: &str,
) -> &'a std::collections::BTreeMap<String, String> {
    rows.iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("no row for {path}"))
}

#[test]
fn validate_excludes_the_unusable_and_flags_the_odd_without_failing() {
    let ws = faulty_folder();
    ws.ok(&["run", "pipe.yaml"]);
    let excluded = csv_rows(&ws, "tables/validate/exclusions.csv");
    let reason = |path: &str| find(&excluded, path)["reason"].clone();
    assert_eq!(reason("fractured/truncated.jpg"), "truncated");
    assert_eq!(reason("fractured/empty.jpg"), "empty");
    assert_eq!(reason("fractured/notes.png"), "not_an_image");
    assert_eq!(reason("fractured/bomb.png"), "too_large");
    assert!(find(&excluded, "fractured/bomb.png")["detail"].contains("20000x20000"));
    assert_eq!(reason("not fractured/flat.png"), "constant");
    assert_eq!(reason("not fractured/tiny.png"), "too_small");
    assert_eq!(excluded.len(), 6, "{excluded:?}");

    let kept = csv_rows(&ws, "tables/validate/clean.csv");
    assert_eq!(kept.len(), 16 + 4);
    let sixteen = find(&kept, "not fractured/sixteen.png");
    assert_eq!(
        (sixteen["bit_depth"].as_str(), sixteen["flags"].as_str()),
        ("16", "unusual_mode")
    );
    let cmyk = find(&kept, "not fractured/cmyk.jpg");
    assert_eq!(
        (cmyk["mode"].as_str(), cmyk["flags"].as_str()),
        ("CMYK", "unusual_mode")
    );
    let rotated = find(&kept, "not fractured/rotated.jpg");
    assert_eq!(rotated["flags"], "exif_orientation");
    assert_eq!(
        (rotated["width"].as_str(), rotated["height"].as_str()),
        ("48", "80"),
        "orientation applied"
    );
    let gif = find(&kept, "not fractured/animated.jpg");
    assert_eq!(gif["format"], "gif");
    assert!(gif["flags"].contains("extension_mismatch") && gif["flags"].contains("unusual_mode"));

    let metrics = &ws.latest()["metrics"]["validate"];
    assert_eq!(metrics["images"], 26, "README.txt is not an image");
    assert_eq!(
        (metrics["kept"].as_u64(), metrics["excluded"].as_u64()),
        (Some(20), Some(6))
    );
    assert_eq!(metrics["excluded_by_reason"]["truncated"], 1);
    assert_eq!(metrics["flagged_by_reason"]["extension_mismatch"], 1);
    assert_eq!(
        metrics["duplicate_groups"],
        0,
        "{}",
        ws.read("tables/validate/duplicates.csv")
    );
    let log = ws.read(&format!(
        "runs/{}/logs/validate.stdout",
        ws.latest()["id"].as_str().unwrap()
    ));
    assert!(log.contains("26 images: 20 kept, 6 excluded"), "{log}");
}

#[test]
fn copies_and_rotated_copies_are_grouped_and_leaks_reported() {
    let ws = Ws::new();
    for i in 0..6 {
        for (class, offset) in [("fractured", 0), ("not fractured", 50)] {
            let image = DynamicImage::ImageLuma8(picture(i + offset, 72));
            write_bytes(
                &ws,
                &format!("raw/train/{class}/{i}.png"),
                &encode(&image, ImageFormat::Png),
            );
        }
    }
    let original = picture(2, 72);
    // A byte copy in test, a rotated and re-encoded copy in val, and the same image under the other label.
    std::fs::copy(
        ws.file("raw/train/fractured/2.png"),
        ws.file("raw/train/fractured/2 - Copy.png"),
    )
    .unwrap();
    write_bytes(
        &ws,
        "raw/test/fractured/2.png",
        &std::fs::read(ws.file("raw/train/fractured/2.png")).unwrap(),
    );
    let rotated = DynamicImage::ImageLuma8(image::imageops::rotate90(&original));
    write_bytes(
        &ws,
        "raw/val/fractured/2-rotated1.jpg",
        &encode(&rotated, ImageFormat::Jpeg),
    );
    write_bytes(
        &ws,
        "raw/test/not fractured/2-mislabelled.png",
        &encode(&DynamicImage::ImageLuma8(original), ImageFormat::Png),
    );
    for i in 10..12 {
        for class in ["fractured", "not fractured"] {
            let image = DynamicImage::ImageLuma8(picture(
                i + if class == "fractured" { 0 } else { 50 },
                72,
            ));
            write_bytes(
                &ws,
                &format!("raw/val/{class}/{i}.png"),
                &encode(&image, ImageFormat::Png),
            );
            let image = DynamicImage::ImageLuma8(picture(
                i + 20 + if class == "fractured" { 0 } else { 50 },
                72,
            ));
            write_bytes(
                &ws,
                &format!("raw/test/{class}/{i}.png"),
                &encode(&image, ImageFormat::Png),
            );
        }
    }
    ws.write(
        "pipe.yaml",
        &FOLDER_PIPELINE.replace("mode: random", "mode: given"),
    );
    ws.ok(&["run", "pipe.yaml"]);
    let metrics = ws.latest()["metrics"].clone();
    let validate = &metrics["validate"];
    assert_eq!(validate["duplicate_groups"], 1, "{validate}");
    assert_eq!(validate["images_in_duplicate_groups"], 5);
    assert_eq!(
        validate["exact_copies"], 3,
        "four files with the same bytes"
    );
    assert_eq!(
        validate["cross_split_duplicates"], 3,
        "val rotated copy, test byte copy, test mislabelled copy"
    );
    assert_eq!(validate["cross_class_duplicates"], 5);
    let duplicates = csv_rows(&ws, "tables/validate/duplicates.csv");
    assert_eq!(
        find(&duplicates, "val/fractured/2-rotated1.jpg")["match"],
        "near"
    );
    assert_eq!(find(&duplicates, "test/fractured/2.png")["match"], "exact");
    let leakage = csv_rows(&ws, "tables/validate/leakage.csv");
    assert_eq!(leakage.len(), 1);
    assert_eq!(
        (
            leakage[0]["cross_split"].as_str(),
            leakage[0]["cross_class"].as_str()
        ),
        ("true", "true")
    );
    // `given` keeps the leak and says so; `group` removes it.
    assert_eq!(metrics["split"]["leaked_test_images"], 2);
    assert_eq!(metrics["split"]["leaked_val_images"], 1);
    let id = ws.latest()["id"].as_str().unwrap().to_string();
    assert!(
        ws.read(&format!("runs/{id}/logs/split.stdout"))
            .contains("2 of 6 test images have a copy or near copy in train")
    );
    ws.ok(&["run", "pipe.yaml", "--set", "mode=group"]);
    let split = ws.latest()["metrics"]["split"].clone();
    assert_eq!(
        (
            split["leaked_test_images"].as_u64(),
            split["leaked_val_images"].as_u64()
        ),
        (Some(0), Some(0))
    );
    let rows = csv_rows(&ws, "tables/split/split.csv");
    let family: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r["duplicate_group"] == "dup-0001")
        .map(|r| r["split"].as_str())
        .collect();
    assert_eq!(family.len(), 1, "a duplicate group stays in one split");
}

#[test]
fn csv_manifests_keep_patients_together_and_refuse_escapes() {
    let ws = Ws::new();
    let mut csv = String::from("path,label,patient\n");
    for i in 0..12u32 {
        let class = if i % 2 == 0 {
            "fractured"
        } else {
            "not fractured"
        };
        let image = DynamicImage::ImageLuma8(picture(i, 64));
        write_bytes(
            &ws,
            &format!("scans/img{i}.png"),
            &encode(&image, ImageFormat::Png),
        );
        csv.push_str(&format!("img{i}.png,{class},p{}\n", i / 4 * 2 + i % 2));
    }
    ws.write("scans/labels.csv", &csv);
    ws.write(
        "pipe.yaml",
        &FOLDER_PIPELINE
            .replace("source: raw", "source: scans/labels.csv")
            .replace("mode: random", "mode: group")
            .replace("val: 0.2", "val: 0.3")
            .replace("test: 0.2", "test: 0.3"),
    );
    ws.ok(&["run", "pipe.yaml"]);
    let rows = csv_rows(&ws, "tables/split/split.csv");
    assert_eq!(rows.len(), 12);
    for patient in ["p0", "p1", "p2", "p3", "p4", "p5"] {
        let splits: std::collections::BTreeSet<&str> = rows
            .iter()
            .filter(|r| r["patient"] == patient)
            .map(|r| r["split"].as_str())
            .collect();
        assert_eq!(splits.len(), 1, "patient {patient} is in {splits:?}");
    }

    // Editing an image the manifest lists reruns ingest: the manifest's folder is the dependency.
    let image = DynamicImage::ImageLuma8(picture(99, 64));
    write_bytes(&ws, "scans/img0.png", &encode(&image, ImageFormat::Png));
    ws.ok(&["run", "pipe.yaml"]);
    assert_eq!(ws.with_status("ran")[0], "ingest");

    ws.write(
        "scans/labels.csv",
        "path,label\nimg0.png,fractured\n../pipe.yaml,fractured\n",
    );
    ws.fails(
        &["run", "pipe.yaml"],
        1,
        &["labels.csv` line 3: `../pipe.yaml` is outside the data folder"],
    );
}

#[test]
fn a_split_that_cannot_be_made_is_refused_clearly() {
    let ws = Ws::new();
    for i in 0..2 {
        for class in ["fractured", "not fractured"] {
            let image =
                DynamicImage::ImageLuma8(picture(i + if class == "fractured" { 0 } else { 9 }, 64));
            write_bytes(
                &ws,
                &format!("raw/{class}/{i}.png"),
                &encode(&image, ImageFormat::Png),
            );
        }
    }
    ws.write(
        "pipe.yaml",
        &FOLDER_PIPELINE.replace("mode: random", "mode: group"),
    );
    ws.fails(
        &["run", "pipe.yaml"],
        1,
        &[
            "class `fractured` has 2 independent groups of images",
            "needs at least 3",
        ],
    );
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_loop_is_refused() {
    let ws = Ws::new();
    write_bytes(
        &ws,
        "raw/fractured/a.png",
        &encode(&DynamicImage::ImageLuma8(picture(1, 64)), ImageFormat::Png),
    );
    std::os::unix::fs::symlink(ws.file("raw"), ws.file("raw/fractured/again")).unwrap();
    ws.write("pipe.yaml", FOLDER_PIPELINE);
    ws.fails(
        &["run", "pipe.yaml"],
        1,
        &["symbolic link loop", "fractured/again"],
    );
}

#[test]
fn an_image_outside_class_folders_is_an_error_naming_it() {
    let ws = Ws::new();
    write_bytes(
        &ws,
        "raw/loose.png",
        &encode(&DynamicImage::ImageLuma8(picture(1, 64)), ImageFormat::Png),
    );
    ws.write("pipe.yaml", FOLDER_PIPELINE);
    ws.fails(
        &["run", "pipe.yaml"],
        1,
        &["`loose.png` is not in a class folder"],
    );
}

/// The real sample, when `../shared` is there.
fn sample() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fracture-sample");
    if path.is_dir() {
        Some(path.canonicalize().unwrap())
    } else {
        eprintln!("skipped: {} is absent", path.display());
        None
    }
}

/// The shipped pipelines, with the weights folder beside them.
fn pipelines(ws: &Ws) {
    crate::pipelines::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines"),
        &ws.file("pipelines"),
    );
}

#[test]
fn the_real_sample_shows_its_faults_and_its_leak() {
    let Some(sample) = sample() else { return };
    let ws = Ws::new();
    pipelines(&ws);
    let data = format!("data={}", sample.display());
    // The data stages only (up to augment): training at 224 px belongs to the benchmarks.
    ws.ok(&[
        "run",
        "pipelines/fracture-folder.yaml",
        "augment",
        "--set",
        &data,
        "--set",
        "split.mode=given",
    ]);
    let metrics = ws.latest()["metrics"].clone();
    let validate = &metrics["validate"];
    assert_eq!(validate["images"], 1067);
    assert_eq!(
        validate["excluded_by_reason"]["truncated"], 12,
        "{validate}"
    );
    let excluded = csv_rows(&ws, "tables/folder/validate/exclusions.csv");
    for name in [
        "IMG0004134",
        "IMG0004143",
        "IMG0004148",
        "IMG0004149",
        "IMG0004308",
        "IMG0004347",
    ] {
        for split in ["train", "test"] {
            find(&excluded, &format!("{split}/not fractured/{name}.jpg"));
        }
    }
    let mismatched = validate["flagged_by_reason"]["extension_mismatch"]
        .as_u64()
        .unwrap();
    assert!(mismatched >= 20, "{validate}");
    let kept = csv_rows(&ws, "tables/folder/validate/clean.csv");
    assert!(kept.iter().any(|r| r["path"].ends_with(".jpg")
        && r["format"] == "png"
        && r["flags"].contains("extension_mismatch")));
    assert!(
        kept.iter()
            .any(|r| r["path"].ends_with(".jpg") && r["format"] == "gif")
    );
    assert!(
        validate["cross_split_duplicates"].as_u64().unwrap() > 50,
        "the given split leaks: {validate}"
    );
    assert!(validate["duplicate_groups"].as_u64().unwrap() > 50);
    let warnings = validate["warnings"].to_string();
    assert!(
        warnings.contains("image size differs by class"),
        "{warnings}"
    );
    let leaked = metrics["split"]["leaked_test_images"].as_u64().unwrap();
    assert!(leaked > 0, "given split: test images with copies in train");

    ws.ok(&[
        "run",
        "pipelines/fracture-folder.yaml",
        "augment",
        "--set",
        &data,
    ]);
    assert_eq!(ws.with_status("ran"), ["split", "augment"]);
    let split = &ws.latest()["metrics"]["split"];
    assert_eq!(split["mode"], "group");
    assert_eq!(split["leaked_test_images"], 0);
    assert_eq!(split["leaked_val_images"], 0);
    let images: u64 = ["train", "val", "test"]
        .iter()
        .map(|s| split["images"][s].as_u64().unwrap())
        .sum();
    assert_eq!(Value::from(images), validate["kept"]);
}

#[test]
fn the_embedding_detector_finds_copies_and_says_what_its_threshold_catches() {
    use pipe::images::augment::Draw;
    use pipe::images::synth::{self, SynthParams};
    use pipe::util::rng::Rng;
    let ws = Ws::new();
    let params = SynthParams {
        size: 96,
        difficulty: 0.0,
    };
    let png =
        |image: &GrayImage| encode(&DynamicImage::ImageLuma8(image.clone()), ImageFormat::Png);
    let mut train = Vec::new();
    for (split, stream, count) in [("train", 0, 20), ("val", 1, 3), ("test", 2, 3)] {
        for i in 0..count {
            for (class, fractured) in [("fractured", true), ("not fractured", false)] {
                let mut rng = Rng::derive(5, split, stream, i * 2 + u64::from(fractured));
                let scene = synth::render(params, fractured, &mut rng);
                write_bytes(&ws, &format!("raw/{split}/{class}/{i}.png"), &png(&scene));
                if split == "train" {
                    train.push(scene);
                }
            }
        }
    }
    // Copies in test of three training images: the same bytes, re-exposed and saved as JPEG, turned
    // 2 degrees (at 4 degrees neither detector links this scene to its original). Every other scene is distinct, however alike two may look.
    let plain = Draw::IDENTITY;
    let exposed = Draw {
        brightness: 0.05,
        contrast: 1.1,
        ..plain
    };
    let turned = Draw {
        rotation: 2.0,
        ..plain
    };
    write_bytes(&ws, "raw/test/fractured/same.png", &png(&train[2]));
    write_bytes(
        &ws,
        "raw/test/fractured/exposed.jpg",
        &encode(
            &DynamicImage::ImageLuma8(exposed.apply(&train[10])),
            ImageFormat::Jpeg,
        ),
    );
    write_bytes(
        &ws,
        "raw/test/fractured/turned.png",
        &png(&turned.apply(&train[20])),
    );
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pipelines/weights/mobilenet_v2_1.0_224_quant.tflite"),
        ws.file("weights.tflite"),
    )
    .unwrap();
    let given = FOLDER_PIPELINE.replace("mode: random", "mode: given");
    let with_weights = given.replace(
        "    uses: validate\n",
        "    uses: validate\n    with:\n      weights: weights.tflite\n",
    );
    ws.write("pipe.yaml", &with_weights);
    ws.ok(&["run", "pipe.yaml"]);
    let validate = ws.latest()["metrics"]["validate"].clone();
    let found = &validate["copy_detectors"];
    let embedding = &found["embedding"];
    // The three copies, and nothing else: look-alike scenes are not linked by either detector.
    let copies = csv_rows(&ws, "tables/validate/copies.csv");
    let pair = |row: &std::collections::BTreeMap<String, String>| {
        (row["path_a"].clone(), row["path_b"].clone())
    };
    let pairs: std::collections::BTreeSet<(String, String)> = copies.iter().map(pair).collect();
    let expected: std::collections::BTreeSet<(String, String)> = [
        ("test/fractured/exposed.jpg", "train/fractured/5.png"),
        ("test/fractured/same.png", "train/fractured/1.png"),
        ("test/fractured/turned.png", "train/fractured/10.png"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(pairs, expected, "{found:#}");
    assert_eq!(validate["cross_split_duplicates"], 3, "{validate}");
    // The byte copy is found by both, at similarity 1; what each found is counted and listed.
    let same = copies
        .iter()
        .find(|r| r["path_a"] == "test/fractured/same.png")
        .unwrap();
    assert_eq!(same["found_by"], "both");
    assert!(same["similarity"].parse::<f64>().unwrap() > 0.999);
    assert_eq!(found["hash_pairs"], 3, "{found:#}");
    let by_embedding = copies.iter().filter(|r| r["found_by"] != "hash").count();
    assert_eq!(found["embedding_pairs"], by_embedding);
    assert_eq!(embedding["weights"], "weights.tflite");
    assert_eq!(embedding["known_copies"], 3);
    // 55 kept images: one copy made of each, the edits in turn, and what the threshold caught of each.
    assert_eq!(embedding["copies_made"], 55, "{embedding:#}");
    let by_edit = embedding["by_edit"].as_array().unwrap();
    assert_eq!(by_edit.len(), 6);
    let made: u64 = by_edit.iter().map(|e| e["made"].as_u64().unwrap()).sum();
    let caught: u64 = by_edit.iter().map(|e| e["caught"].as_u64().unwrap()).sum();
    assert_eq!(
        (made, caught),
        (55, embedding["copies_caught"].as_u64().unwrap())
    );
    let nearest: u64 = embedding["histogram"]["nearest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(nearest, 55);

    // Without weights only the difference hash looks, and the summary says the embedding did not run.
    ws.write("pipe.yaml", &given);
    ws.ok(&["run", "pipe.yaml"]);
    let found = ws.latest()["metrics"]["validate"]["copy_detectors"].clone();
    assert_eq!(found["hash_pairs"], 3);
    assert!(found["embedding"].is_null() && found["embedding_pairs"].is_null());
}
