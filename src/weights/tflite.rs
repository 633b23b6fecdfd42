//! Reading TensorFlow Lite model files (a FlatBuffer with the `TFL3` identifier) far enough to list
//! their tensors: name, shape, element type, per-tensor quantisation and where the data lies. The
//! FlatBuffer reading is done by hand over the bytes, with every offset bounds-checked, so a damaged
//! file gives an error naming what is wrong instead of a panic.

use anyhow::{Context as _, bail};

/// One tensor of the model's main graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Its name in the graph.
    pub name: String,
    /// Its dimensions.
    pub shape: Vec<i32>,
    /// Element type (`float32`, `uint8`, `int32`, ...).
    pub dtype: &'static str,
    /// Per-tensor (or first per-channel) quantisation: scale and zero point.
    pub quantization: Option<(f32, i64)>,
    /// The bytes of its constant data (empty for activations).
    pub data: Vec<u8>,
}

/// What a model file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Schema version.
    pub version: u32,
    /// Tensors of the first subgraph, in file order.
    pub tensors: Vec<Tensor>,
    /// Indices of the graph's inputs.
    pub inputs: Vec<i32>,
    /// Indices of the graph's outputs.
    pub outputs: Vec<i32>,
}

/// A view of a FlatBuffer table: the buffer and the table's position.
#[derive(Clone, Copy)]
struct Table<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn read<const N: usize>(bytes: &[u8], at: usize) -> anyhow::Result<[u8; N]> {
    bytes
        .get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .with_context(|| {
            format!(
                "offset {at} is past the end of the file ({} bytes)",
                bytes.len()
            )
        })
}

fn u32_at(bytes: &[u8], at: usize) -> anyhow::Result<u32> {
    Ok(u32::from_le_bytes(read(bytes, at)?))
}

impl<'a> Table<'a> {
    /// The table a 32-bit offset at `at` points to.
    fn follow(bytes: &'a [u8], at: usize) -> anyhow::Result<Table<'a>> {
        Ok(Table {
            bytes,
            at: at + u32_at(bytes, at)? as usize,
        })
    }

    /// Where field `index` is, or `None` when the table leaves it out.
    fn field(&self, index: usize) -> anyhow::Result<Option<usize>> {
        let vtable = self.at as i64 - i64::from(i32::from_le_bytes(read(self.bytes, self.at)?));
        let vtable =
            usize::try_from(vtable).context("a table's vtable offset points before the file")?;
        let vtable_size = usize::from(u16::from_le_bytes(read(self.bytes, vtable)?));
        let slot = 4 + 2 * index;
        if slot + 2 > vtable_size {
            return Ok(None);
        }
        let offset = u16::from_le_bytes(read(self.bytes, vtable + slot)?);
        Ok((offset != 0).then(|| self.at + usize::from(offset)))
    }

    fn scalar<const N: usize>(&self, index: usize) -> anyhow::Result<Option<[u8; N]>> {
        self.field(index)?
            .map(|at| read(self.bytes, at))
            .transpose()
    }

    /// A vector field: its element count and where the elements start.
    fn vector(&self, index: usize) -> anyhow::Result<Option<(usize, usize)>> {
        let Some(at) = self.field(index)? else {
            return Ok(None);
        };
        let start = at + u32_at(self.bytes, at)? as usize;
        let len = u32_at(self.bytes, start)? as usize;
        Ok(Some((len, start + 4)))
    }

    fn string(&self, index: usize) -> anyhow::Result<String> {
        match self.vector(index)? {
            Some((len, start)) => {
                let raw = self
                    .bytes
                    .get(start..start + len)
                    .context("a string runs past the end of the file")?;
                Ok(String::from_utf8_lossy(raw).into_owned())
            }
            None => Ok(String::new()),
        }
    }

    fn bytes_of(&self, index: usize, width: usize) -> anyhow::Result<&'a [u8]> {
        match self.vector(index)? {
            Some((len, start)) => self
                .bytes
                .get(start..start + len * width)
                .context("a vector runs past the end of the file"),
            None => Ok(&[]),
        }
    }

    fn ints(&self, index: usize) -> anyhow::Result<Vec<i32>> {
        Ok(self
            .bytes_of(index, 4)?
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }

    fn tables(&self, index: usize) -> anyhow::Result<Vec<Table<'a>>> {
        match self.vector(index)? {
            Some((len, start)) => (0..len)
                .map(|i| Table::follow(self.bytes, start + 4 * i))
                .collect(),
            None => Ok(Vec::new()),
        }
    }
}

fn dtype(code: u8) -> &'static str {
    match code {
        0 => "float32",
        1 => "float16",
        2 => "int32",
        3 => "uint8",
        4 => "int64",
        5 => "string",
        6 => "bool",
        7 => "int16",
        9 => "int8",
        10 => "float64",
        _ => "other",
    }
}

/// Parses a `.tflite` file's bytes.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Model> {
    if bytes.get(4..8) != Some(b"TFL3") {
        bail!("not a TensorFlow Lite model: the FlatBuffer identifier is not `TFL3`");
    }
    let model = Table::follow(bytes, 0)?;
    let version = model.scalar::<4>(0)?.map_or(0, u32::from_le_bytes);
    let buffers = model.tables(4)?;
    let graph = *model
        .tables(2)?
        .first()
        .context("the model has no subgraph")?;
    let tensors = graph
        .tables(0)?
        .iter()
        .map(|t| {
            let buffer = t.scalar::<4>(2)?.map_or(0, u32::from_le_bytes) as usize;
            let data = match buffers.get(buffer) {
                Some(b) => b.bytes_of(0, 1)?.to_vec(),
                None => Vec::new(),
            };
            let quantization = match t.field(4)? {
                Some(at) => {
                    let q = Table::follow(bytes, at)?;
                    let scale = q.bytes_of(2, 4)?;
                    let zero = q.bytes_of(3, 8)?;
                    match (scale.get(..4), zero.get(..8)) {
                        (Some(s), Some(z)) => Some((
                            f32::from_le_bytes(s.try_into().expect("4 bytes")),
                            i64::from_le_bytes(z.try_into().expect("8 bytes")),
                        )),
                        _ => None,
                    }
                }
                None => None,
            };
            Ok(Tensor {
                name: t.string(3)?,
                shape: t.ints(0)?,
                dtype: dtype(t.scalar::<1>(1)?.map_or(0, |b| b[0])),
                quantization,
                data,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Model {
        version,
        tensors,
        inputs: graph.ints(1)?,
        outputs: graph.ints(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_files_are_errors_not_panics() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\x20\0\0\0TFL3").is_err());
        let mut bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/data/weights/mobilenet_v2_1.0_224_quant.tflite"),
        )
        .unwrap_or_else(|_| b"\x20\0\0\0TFL3\0\0\0\0".to_vec());
        for cut in [10, 100, 1000, bytes.len() / 2] {
            let _ = parse(&bytes[..cut.min(bytes.len())]);
        }
        bytes.truncate(bytes.len().min(64));
        let _ = parse(&bytes);
    }
}
