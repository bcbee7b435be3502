//! Reading photos safely and writing results atomically.
//!
//! Decoding is bounded (pixel and allocation limits) so a decompression bomb fails
//! with a message instead of exhausting memory; EXIF orientation is applied so the
//! result is upright as the user sees the photo elsewhere.

use crate::{alloc, fsutil, Error, Result};
use image::{ImageDecoder, ImageReader, RgbImage};
use std::io::{Read, Seek};
use std::path::Path;

/// Longest side we accept (decoders and GPUs cope; 100-megapixel photos are ~12k).
pub const MAX_SIDE: u32 = 32_768;
/// Largest image in pixels (≈ 268 megapixels).
pub const MAX_PIXELS: u64 = 1 << 28;

/// Loads an image as 8-bit RGB, upright.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let mut file =
        fsutil::open_regular(path).map_err(|e| Error::image(path, format!("cannot open: {e}")))?;
    if file.metadata().map(|m| m.len() == 0).unwrap_or(false) {
        return Err(Error::image(path, "file is empty (0 bytes)"));
    }
    // The format comes from the content, not the extension: a renamed text file is
    // "not an image", not a "corrupt PNG".
    let reader = ImageReader::new(std::io::BufReader::new(&mut file))
        .with_guessed_format()
        .map_err(|e| Error::image(path, format!("cannot read: {e}")))?;
    match reader.format() {
        None => Err(Error::image(
            path,
            "not an image (unrecognised or unsupported format)",
        )),
        Some(image::ImageFormat::Jpeg) => {
            drop(reader);
            check_jpeg_complete(&mut file, path)?;
            file.seek(std::io::SeekFrom::Start(0))
                .map_err(|e| Error::image(path, format!("cannot read: {e}")))?;
            let reader = ImageReader::with_format(
                std::io::BufReader::new(&mut file),
                image::ImageFormat::Jpeg,
            );
            decode(reader, path)
        }
        Some(_) => decode(reader, path),
    }
}

/// The JPEG decoder fills a file that ends early with grey rows and says nothing, so
/// the end-of-image marker must follow the last scan. Within a scan a 0xFF byte is
/// always followed by 0x00 or a restart marker, so 0xFF 0xD9 there is the real end.
fn check_jpeg_complete(file: &mut std::fs::File, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::image(path, format!("cannot read: {e}")))?;
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let ended = last_scan.is_some_and(|s| bytes[s..].windows(2).any(|w| w == [0xFF, 0xD9]));
    if ended {
        Ok(())
    } else {
        Err(Error::image(
            path,
            "corrupt or truncated image: the JPEG ends before its last scan is complete (an interrupted copy or download?)",
        ))
    }
}

/// Decodes an image held in memory (clipboard, embedded assets).
pub fn decode_rgb(bytes: &[u8], what: &Path) -> Result<RgbImage> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::image(what, format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::image(
            what,
            "not an image (unrecognised or unsupported format)",
        ));
    }
    decode(reader, what)
}

fn decode<R: std::io::BufRead + std::io::Seek>(
    mut reader: ImageReader<R>,
    path: &Path,
) -> Result<RgbImage> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| Error::image(path, describe_decode_error(e)))?;
    let (w, h) = decoder.dimensions();
    check_size(path, w, h)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // Decoded into buffers of our own, allocated fallibly: the image crate's own
    // allocations abort the process when memory runs out (e.g. under `ulimit -v`).
    let img = decode_rgb8(decoder, path)?;
    orient(img, orientation, path)
}

/// Decodes into a fallibly allocated buffer and converts to 8-bit RGB without a second
/// full-size copy when the photo already is RGB.
fn decode_rgb8(decoder: impl ImageDecoder, path: &Path) -> Result<RgbImage> {
    use image::ColorType;
    let (w, h) = decoder.dimensions();
    let what = format!("decoding {} ({w}×{h})", path.display());
    let color = decoder.color_type();
    let total = usize::try_from(decoder.total_bytes()).map_err(|_| Error::OutOfMemory {
        what: what.clone(),
        bytes: decoder.total_bytes(),
    })?;
    let read = |decoder: Box<dyn image::ImageDecoder + '_>, buf: &mut [u8]| {
        decoder
            .read_image(buf)
            .map_err(|e| Error::image(path, describe_decode_error(e)))
    };
    let decoder: Box<dyn image::ImageDecoder + '_> = Box::new(decoder);
    let bytes_per_sample = color.bytes_per_pixel() / color.channel_count();
    let channels = usize::from(color.channel_count());
    let pixels = (w as usize) * (h as usize);
    // Samples widened to f32 in 0..1 per pixel, for every layout but 8-bit.
    let to_rgb8 = |samples: &dyn Fn(usize) -> f32| -> Result<RgbImage> {
        let mut out = alloc::rgb_image(w, h, &what)?;
        for (i, px) in out.as_mut().chunks_exact_mut(3).enumerate() {
            for (c, out) in px.iter_mut().enumerate() {
                let ch = if channels < 3 { 0 } else { c };
                let v = samples(i * channels + ch);
                *out = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        Ok(out)
    };
    match (color, bytes_per_sample) {
        (ColorType::Rgb8, _) => {
            let mut buf = alloc::zeroed::<u8>(total, &what)?;
            read(decoder, &mut buf)?;
            RgbImage::from_raw(w, h, buf).ok_or_else(|| Error::image(path, "bad decoded size"))
        }
        (_, 1) => {
            let mut buf = alloc::zeroed::<u8>(total, &what)?;
            read(decoder, &mut buf)?;
            let mut out = alloc::rgb_image(w, h, &what)?;
            for (px, src) in out
                .as_mut()
                .chunks_exact_mut(3)
                .zip(buf.chunks_exact(channels))
            {
                if channels < 3 {
                    px.fill(src[0]);
                } else {
                    px.copy_from_slice(&src[..3]);
                }
            }
            Ok(out)
        }
        (_, 2) => {
            let mut buf = alloc::zeroed::<u16>(total / 2, &what)?;
            read(decoder, bytemuck::cast_slice_mut(&mut buf))?;
            to_rgb8(&|i| f32::from(buf[i]) / 65535.0)
        }
        (_, 4) => {
            let mut buf = alloc::zeroed::<f32>(total / 4, &what)?;
            read(decoder, bytemuck::cast_slice_mut(&mut buf))?;
            to_rgb8(&|i| buf[i])
        }
        _ => Err(Error::image(
            path,
            format!("unsupported pixel layout {color:?} ({pixels} pixels)"),
        )),
    }
}

/// Applies EXIF orientation; the rotated copy is allocated fallibly too.
fn orient(
    mut img: RgbImage,
    orientation: image::metadata::Orientation,
    path: &Path,
) -> Result<RgbImage> {
    use image::imageops::{flip_horizontal_in_place, flip_vertical_in_place, rotate180_in_place};
    use image::metadata::Orientation as O;
    let (w, h) = img.dimensions();
    let rotated = |img: &RgbImage, clockwise: bool| -> Result<RgbImage> {
        let mut out = alloc::rgb_image(h, w, &format!("rotating {}", path.display()))?;
        let done = if clockwise {
            image::imageops::rotate90_in(img, &mut out)
        } else {
            image::imageops::rotate270_in(img, &mut out)
        };
        done.map_err(|e| Error::image(path, e))?;
        Ok(out)
    };
    Ok(match orientation {
        O::NoTransforms => img,
        O::Rotate90 => rotated(&img, true)?,
        O::Rotate180 => {
            rotate180_in_place(&mut img);
            img
        }
        O::Rotate270 => rotated(&img, false)?,
        O::FlipHorizontal => {
            flip_horizontal_in_place(&mut img);
            img
        }
        O::FlipVertical => {
            flip_vertical_in_place(&mut img);
            img
        }
        O::Rotate90FlipH => {
            let mut out = rotated(&img, true)?;
            flip_horizontal_in_place(&mut out);
            out
        }
        O::Rotate270FlipH => {
            let mut out = rotated(&img, false)?;
            flip_horizontal_in_place(&mut out);
            out
        }
    })
}

fn check_size(path: &Path, w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::image(
            path,
            format!("image is empty ({w}×{h} pixels)"),
        ));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Error::image(
            path,
            format!(
                "image is {w}×{h}, more than the {} megapixel limit",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    Ok(())
}

fn describe_decode_error(e: image::ImageError) -> String {
    use image::error::{ImageError, LimitErrorKind};
    match e {
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError => {
                format!("image is larger than {MAX_SIDE} pixels on a side")
            }
            LimitErrorKind::InsufficientMemory => {
                "image would need more memory than allowed to decode".into()
            }
            _ => format!("image exceeds decoder limits: {l}"),
        },
        ImageError::Unsupported(u) => format!("unsupported image: {u}"),
        ImageError::Decoding(d) => format!("corrupt or truncated image: {d}"),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "corrupt or truncated image: the file ends early".into()
        }
        ImageError::IoError(io) => format!("read error: {io}"),
        other => other.to_string(),
    }
}

/// Output formats we write, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    Jpeg { quality: u8 },
    WebP,
}

impl OutputFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match ext.as_str() {
            "png" => Ok(Self::Png),
            "jpg" | "jpeg" => Ok(Self::Jpeg { quality: 92 }),
            "webp" => Ok(Self::WebP),
            _ => Err(Error::image(
                path,
                "unsupported output type: use .png, .jpg or .webp",
            )),
        }
    }
}

/// Encodes and writes atomically; never replaces an existing file unless `overwrite`.
pub fn save_rgb(img: &RgbImage, path: &Path, format: OutputFormat, overwrite: bool) -> Result<()> {
    fsutil::write_atomic_with(path, overwrite, |w| {
        let res = match format {
            OutputFormat::Png => img.write_with_encoder(image::codecs::png::PngEncoder::new(w)),
            OutputFormat::Jpeg { quality } => img.write_with_encoder(
                image::codecs::jpeg::JpegEncoder::new_with_quality(w, quality),
            ),
            OutputFormat::WebP => {
                img.write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(w))
            }
        };
        res.map_err(|e| match e {
            image::ImageError::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    })
}

/// Encodes an image as PNG in memory (thumbnails).
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .map_err(|e| Error::image(Path::new("<thumbnail>"), e))?;
    Ok(out)
}
