//! Pretrained weights files: reading them and describing what they hold (`pipe weights inspect`).

pub mod tflite;
