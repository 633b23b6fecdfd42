//! Does a trained fracture model look at the breaks? Renders fresh synthetic scenes three ways (a
//! fracture; the same film with the break mended, swelling kept; no fracture) and counts how many of
//! each the model calls fractured. A model that reads the breaks calls the first fractured and the
//! other two not; one that reads something else (swelling, framing) calls the mended ones fractured.
//!
//!   cargo run --release --example break_check -- models/fracture [count] [seed] [difficulty]
//!
//! The scenes are rendered at the model's input size; the default count is 300, seed 999 (not the
//! pipeline's), difficulty 0.

use std::path::PathBuf;

use pipe::builtin::train::CHECKPOINT;
use pipe::images::synth::{self, SynthParams};
use pipe::model::dataset::ModelInfo;
use pipe::model::{checkpoint, logits};
use pipe::util::rng::Rng;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model_dir) = args.first().map(PathBuf::from) else {
        anyhow::bail!("usage: break_check MODEL_DIR [count] [seed] [difficulty]");
    };
    let count: u64 = args.get(1).map_or(Ok(300), |s| s.parse())?;
    let seed: u64 = args.get(2).map_or(Ok(999), |s| s.parse())?;
    let difficulty: f64 = args.get(3).map_or(Ok(0.0), |s| s.parse())?;
    let info = ModelInfo::read(&model_dir)?;
    let mut net = checkpoint::load(&model_dir.join(CHECKPOINT))?;
    let params = SynthParams {
        size: info.preprocess.size,
        difficulty,
    };
    let (mut broken, mut mended, mut clean) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..count {
        let (b, m) = synth::render_mended_pair(params, &mut Rng::derive(seed, "check", 1, i));
        let c = synth::render(params, false, &mut Rng::derive(seed, "check", 0, i));
        for (image, into) in [(b, &mut broken), (m, &mut mended), (c, &mut clean)] {
            into.push(info.preprocess.tensor(&info.preprocess.resize(&image)));
        }
    }
    let called = |inputs: &[Vec<f32>], net: &mut _| -> usize {
        logits(net, inputs, 32)
            .iter()
            .filter(|z| z[0] > 0.0)
            .count()
    };
    println!(
        "called fractured, of {count} each: fractured {}, the same with the break mended {}, no fracture {}",
        called(&broken, &mut net),
        called(&mended, &mut net),
        called(&clean, &mut net),
    );
    Ok(())
}
