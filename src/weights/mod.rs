//! Pretrained weights files: reading them, describing what they hold (`pipe weights inspect`),
//! converting them into this crate's network, and checking them on photographs (`--classify`).

pub mod classify;
pub mod convert;
pub mod tflite;
