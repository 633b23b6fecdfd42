//! Image handling shared by the data and model stages: decoding with checks, perceptual hashing,
//! the synthetic dataset, augmentation, model preprocessing and contact sheets.

pub mod augment;
pub mod decode;
pub mod dhash;
pub mod preprocess;
pub mod sheet;
pub mod synth;
