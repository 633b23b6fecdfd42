//! Reading image files the way a careful person would: identify the format from the bytes (not the
//! extension), read the header's size, colour mode and bit depth, refuse decompression bombs before
//! decoding, fully decode with EXIF orientation applied, and name what is wrong when something is.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// What an image file's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The format found in the bytes.
    pub format: ImageFormat,
    /// Stored width in pixels (before EXIF orientation).
    pub width: u32,
    /// Stored height in pixels (before EXIF orientation).
    pub height: u32,
    /// Colour mode in Pillow's names: `1`, `L`, `LA`, `P`, `RGB`, `RGBA`, `CMYK`.
    pub mode: &'static str,
    /// Bits per sample.
    pub bit_depth: u8,
}

impl Header {
    /// The format's lower-case name (`jpeg`, `png`, ...).
    pub fn format_name(&self) -> String {
        format!("{:?}", self.format).to_lowercase()
    }
}

/// A fully decoded image, oriented as it should be viewed.
#[derive(Debug)]
pub struct Decoded {
    /// The header as stored.
    pub header: Header,
    /// The EXIF orientation tag (1 = as stored).
    pub orientation: u8,
    /// The image in grey levels, orientation applied.
    pub grey: GrayImage,
    /// false for a JPEG whose image data is whole but whose end-of-image marker is missing.
    pub end_marker: bool,
}

/// Why a file is not a usable image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The file has no bytes.
    #[error("the file is empty")]
    Empty,
    /// The bytes are no image format pipe reads.
    #[error("not an image: the bytes match no known image format")]
    NotAnImage,
    /// The image claims more pixels than the limit (a decompression bomb, or just too big).
    #[error("{width}x{height} is {pixels} pixels, over the limit of {limit}")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// width x height.
        pixels: u64,
        /// The limit.
        limit: u64,
    },
    /// The data stops before the image does.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The decoder refused the data.
    #[error("cannot decode: {0}")]
    Undecodable(String),
}

impl Problem {
    /// A short machine-readable reason, as used in exclusion tables.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::Empty => "empty",
            Problem::NotAnImage => "not_an_image",
            Problem::TooLarge { .. } => "too_large",
            Problem::Truncated(_) => "truncated",
            Problem::Undecodable(_) => "undecodable",
        }
    }
}

/// Reads the header only: cheap, and enough to list a dataset.
pub fn probe(bytes: &[u8]) -> Result<Header, Problem> {
    if bytes.is_empty() {
        return Err(Problem::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| Problem::NotAnImage)?;
    let parsed = match format {
        ImageFormat::Png => png_header(bytes),
        ImageFormat::Jpeg => jpeg_header(bytes),
        ImageFormat::Gif => gif_header(bytes),
        ImageFormat::Bmp => bmp_header(bytes),
        _ => None,
    };
    if let Some((width, height, mode, bit_depth)) = parsed {
        return Ok(Header {
            format,
            width,
            height,
            mode,
            bit_depth,
        });
    }
    let decoder = reader(bytes, format, Limits::default())
        .into_decoder()
        .map_err(classify)?;
    let (width, height) = decoder.dimensions();
    let (mode, bit_depth) = mode_of(decoder.color_type());
    Ok(Header {
        format,
        width,
        height,
        mode,
        bit_depth,
    })
}

/// Decodes the whole image, refusing more than `max_pixels` pixels before any pixel is decoded.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Decoded, Problem> {
    let header = probe(bytes)?;
    let pixels = u64::from(header.width) * u64::from(header.height);
    if pixels > max_pixels {
        return Err(Problem::TooLarge {
            width: header.width,
            height: header.height,
            pixels,
            limit: max_pixels,
        });
    }
    // Lenient decoders fill a cut-off JPEG with grey; a file without its end marker is decoded
    // strictly, which fails only if the scan data itself stops early (Pillow's "image file is truncated").
    let complete = header.format != ImageFormat::Jpeg || has_end_marker(bytes);
    if !complete {
        let options = DecoderOptions::default().set_strict_mode(true);
        let mut strict = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
        if let Err(e) = strict.decode() {
            return Err(Problem::Truncated(format!(
                "the JPEG data stops early ({e:?})"
            )));
        }
    }
    if header.format == ImageFormat::Jpeg && matches!(header.mode, "L" | "RGB") {
        let (grey, orientation) = jpeg_grey(bytes)?;
        return Ok(Decoded {
            header,
            orientation: exif_value(orientation),
            grey: oriented(grey, orientation),
            end_marker: complete,
        });
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(16).max(64 << 20));
    let mut decoder = reader(bytes, header.format, limits)
        .into_decoder()
        .map_err(classify)?;
    let orientation = decoder.orientation().map_err(classify)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    let exif = exif_value(orientation);
    image.apply_orientation(orientation);
    Ok(Decoded {
        header,
        orientation: exif,
        grey: image.into_luma8(),
        end_marker: complete,
    })
}

/// Decodes a grey or YCbCr JPEG straight to grey levels: only the luma channel is converted, with no
/// chroma upsampling or colour conversion, which is most of a colour JPEG's decoding time.
fn jpeg_grey(bytes: &[u8]) -> Result<(GrayImage, Orientation), Problem> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX));
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels = decoder
        .decode()
        .map_err(|e| Problem::Undecodable(format!("{e:?}")))?;
    let (width, height) = decoder.dimensions().expect("headers are decoded");
    let orientation = decoder
        .exif()
        .and_then(|exif| Orientation::from_exif_chunk(exif))
        .unwrap_or(Orientation::NoTransforms);
    let grey = GrayImage::from_raw(width as u32, height as u32, pixels).ok_or_else(|| {
        Problem::Undecodable("the decoder returned fewer pixels than the header promised".into())
    })?;
    Ok((grey, orientation))
}

/// The image turned as its EXIF orientation says.
fn oriented(grey: GrayImage, orientation: Orientation) -> GrayImage {
    if orientation == Orientation::NoTransforms {
        return grey;
    }
    let mut image = DynamicImage::ImageLuma8(grey);
    image.apply_orientation(orientation);
    image.into_luma8()
}

fn reader(bytes: &[u8], format: ImageFormat, limits: Limits) -> ImageReader<Cursor<&[u8]>> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    reader
}

/// Sorts a decoder error into truncation or another decoding failure.
fn classify(error: image::ImageError) -> Problem {
    let text = error.to_string();
    let lower = text.to_lowercase();
    let eof = matches!(&error, image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof);
    if eof || lower.contains("eof") || lower.contains("end of file") || lower.contains("truncat") {
        Problem::Truncated(text)
    } else {
        Problem::Undecodable(text)
    }
}

/// Whether a JPEG's last bytes hold its end-of-image marker (FF D9), allowing a little trailing padding.
fn has_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn exif_value(orientation: Orientation) -> u8 {
    use Orientation::*;
    match orientation {
        NoTransforms => 1,
        FlipHorizontal => 2,
        Rotate180 => 3,
        FlipVertical => 4,
        Rotate90FlipH => 5,
        Rotate90 => 6,
        Rotate270FlipH => 7,
        Rotate270 => 8,
    }
}

fn mode_of(color: image::ColorType) -> (&'static str, u8) {
    use image::ColorType::*;
    match color {
        L8 => ("L", 8),
        La8 => ("LA", 8),
        Rgb8 => ("RGB", 8),
        Rgba8 => ("RGBA", 8),
        L16 => ("L", 16),
        La16 => ("LA", 16),
        Rgb16 => ("RGB", 16),
        Rgba16 => ("RGBA", 16),
        Rgb32F => ("RGB", 32),
        Rgba32F => ("RGBA", 32),
        _ => ("other", 8),
    }
}

type Parsed = Option<(u32, u32, &'static str, u8)>;

/// PNG: IHDR holds width, height, bit depth and colour type.
fn png_header(b: &[u8]) -> Parsed {
    let ihdr = b.get(16..26)?;
    let width = u32::from_be_bytes(ihdr[0..4].try_into().ok()?);
    let height = u32::from_be_bytes(ihdr[4..8].try_into().ok()?);
    let mode = match ihdr[9] {
        0 if ihdr[8] == 1 => "1",
        0 => "L",
        2 => "RGB",
        3 => "P",
        4 => "LA",
        6 => "RGBA",
        _ => return None,
    };
    Some((width, height, mode, ihdr[8]))
}

/// JPEG: walks the marker segments to the frame header (SOFn), which holds precision, size and the
/// number of components (1 grey, 3 colour, 4 CMYK).
fn jpeg_header(b: &[u8]) -> Parsed {
    let mut at = 2;
    while at + 4 <= b.len() {
        if b[at] != 0xFF {
            return None;
        }
        let marker = b[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        let length = usize::from(u16::from_be_bytes([b[at + 2], b[at + 3]]));
        let is_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_frame {
            let frame = b.get(at + 4..at + 10)?;
            let height = u32::from(u16::from_be_bytes([frame[1], frame[2]]));
            let width = u32::from(u16::from_be_bytes([frame[3], frame[4]]));
            let mode = match frame[5] {
                1 => "L",
                3 => "RGB",
                4 => "CMYK",
                _ => "other",
            };
            return Some((width, height, mode, frame[0]));
        }
        at += 2 + length;
    }
    None
}

/// GIF: the logical screen size; GIF is always palette-based.
fn gif_header(b: &[u8]) -> Parsed {
    let s = b.get(6..10)?;
    Some((
        u32::from(u16::from_le_bytes([s[0], s[1]])),
        u32::from(u16::from_le_bytes([s[2], s[3]])),
        "P",
        8,
    ))
}

/// BMP: BITMAPINFOHEADER width, height (negative for top-down) and bits per pixel.
fn bmp_header(b: &[u8]) -> Parsed {
    let s = b.get(18..30)?;
    let width = i32::from_le_bytes(s[0..4].try_into().ok()?).unsigned_abs();
    let height = i32::from_le_bytes(s[4..8].try_into().ok()?).unsigned_abs();
    let bits = u16::from_le_bytes([s[10], s[11]]);
    let mode = match bits {
        1 => "1",
        2..=8 => "P",
        24 => "RGB",
        32 => "RGBA",
        _ => "other",
    };
    Some((width, height, mode, if bits <= 8 { bits as u8 } else { 8 }))
}

/// The format a file name's extension claims, if it names one.
pub fn format_from_extension(path: &str) -> Option<ImageFormat> {
    ImageFormat::from_extension(std::path::Path::new(path).extension()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma};

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn gradient(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageLuma8(ImageBuffer::from_fn(w, h, |x, y| {
            Luma([(x * 7 + y * 3) as u8])
        }))
    }

    #[test]
    fn headers_name_format_size_and_mode() {
        let png = encode(&gradient(40, 30), ImageFormat::Png);
        let h = probe(&png).unwrap();
        assert_eq!(
            (
                h.format_name().as_str(),
                h.width,
                h.height,
                h.mode,
                h.bit_depth
            ),
            ("png", 40, 30, "L", 8)
        );
        let rgb = DynamicImage::ImageRgb8(gradient(20, 10).to_rgb8());
        let jpg = encode(&rgb, ImageFormat::Jpeg);
        let h = probe(&jpg).unwrap();
        assert_eq!(
            (h.format_name().as_str(), h.width, h.height, h.mode),
            ("jpeg", 20, 10, "RGB")
        );
        let gif = encode(&rgb, ImageFormat::Gif);
        assert_eq!(probe(&gif).unwrap().mode, "P");
        let wide =
            DynamicImage::ImageLuma16(ImageBuffer::from_fn(8, 8, |x, _| Luma([x as u16 * 4000])));
        let h = probe(&encode(&wide, ImageFormat::Png)).unwrap();
        assert_eq!((h.mode, h.bit_depth), ("L", 16));
    }

    #[test]
    fn problems_are_named() {
        assert_eq!(decode(b"", 1000).unwrap_err(), Problem::Empty);
        assert_eq!(
            decode(b"hello, not an image", 1000).unwrap_err(),
            Problem::NotAnImage
        );
        let jpg = encode(&gradient(64, 64), ImageFormat::Jpeg);
        let cut = &jpg[..jpg.len() / 2];
        assert_eq!(decode(cut, 1 << 20).unwrap_err().reason(), "truncated");
        let png = encode(&gradient(64, 64), ImageFormat::Png);
        assert_eq!(decode(&png, 100).unwrap_err().reason(), "too_large");
        let d = decode(&png, 1 << 20).unwrap();
        assert_eq!((d.grey.width(), d.orientation), (64, 1));
    }
}
