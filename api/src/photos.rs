//! The participants' photos: an upload is decoded (so a file that only claims to be an image
//! is refused), shrunk to at most `MAX_SIDE` pixels a side and re-encoded as JPEG, so the bytes
//! nginx serves at `/fotos/` are ours, never the uploader's. The file is named for a hash of
//! its content: a new photo gets a new URL, and the old one can be cached forever.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};
use thiserror::Error;
use voting::paredao::{ParedaoId, ParticipantId};

/// The longest side of a stored photo, in pixels.
pub const MAX_SIDE: u32 = 600;
/// The largest picture decoded, a side: beyond it the upload is refused before it is decoded.
pub const MAX_DECODED_SIDE: u32 = 8_000;
const JPEG_QUALITY: u8 = 85;

#[derive(Debug, Error)]
pub enum PhotoError {
    #[error("send the photo as image/jpeg, image/png or image/webp, not '{0}'")]
    UnsupportedType(String),
    #[error("the body is not a readable {0} image")]
    Invalid(&'static str),
    #[error("the picture is larger than {MAX_DECODED_SIDE}×{MAX_DECODED_SIDE} pixels")]
    TooManyPixels,
    #[error("the photo could not be stored: {0}")]
    Io(#[from] std::io::Error),
}

/// The format a `Content-Type` names, among those taken.
pub fn format_of(content_type: &str) -> Result<ImageFormat, PhotoError> {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "image/jpeg" | "image/jpg" => Ok(ImageFormat::Jpeg),
        "image/png" => Ok(ImageFormat::Png),
        "image/webp" => Ok(ImageFormat::WebP),
        _ => Err(PhotoError::UnsupportedType(content_type.to_string())),
    }
}

/// Decodes `bytes` as `format`, shrinks the picture to fit `MAX_SIDE` and encodes it as JPEG.
/// CPU work: run it off the async threads.
pub fn reencode(bytes: &[u8], format: ImageFormat) -> Result<Vec<u8>, PhotoError> {
    let name = format.to_mime_type();
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let picture = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => PhotoError::TooManyPixels,
        _ => PhotoError::Invalid(name),
    })?;
    let picture = if picture.width() > MAX_SIDE || picture.height() > MAX_SIDE {
        picture.thumbnail(MAX_SIDE, MAX_SIDE)
    } else {
        picture
    };
    // JPEG has no transparency: transparent pixels come out as their colour channels say.
    let rgb = DynamicImage::ImageRgb8(picture.to_rgb8());
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
    rgb.write_with_encoder(encoder).map_err(|_| PhotoError::Invalid(name))?;
    Ok(out)
}

/// Writes `jpeg` as `<dir>/<paredao>/<participant>-<hash>.jpg` (through a temporary file and a
/// rename, so nginx never serves half a photo) and returns its URL, `/fotos/<paredao>/<file>`.
pub async fn store(
    dir: &Path,
    paredao: &ParedaoId,
    participant: &ParticipantId,
    jpeg: &[u8],
) -> Result<(PathBuf, String), PhotoError> {
    let hash = hex::encode(&Sha256::digest(jpeg)[..6]);
    let file = format!("{participant}-{hash}.jpg");
    let folder = dir.join(paredao.as_str());
    tokio::fs::create_dir_all(&folder).await?;
    let path = folder.join(&file);
    let temporary = folder.join(format!(".{file}.{}.tmp", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&temporary, jpeg).await?;
    if let Err(e) = tokio::fs::rename(&temporary, &path).await {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(e.into());
    }
    Ok((path, format!("/fotos/{paredao}/{file}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Cursor::new(Vec::new());
        picture.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_large_picture_is_shrunk_and_becomes_a_jpeg() {
        let jpeg = reencode(&png(1200, 800), ImageFormat::Png).unwrap();
        let back = image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (600, 400));
    }

    #[test]
    fn a_small_picture_keeps_its_size() {
        let jpeg = reencode(&png(40, 30), ImageFormat::Png).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (40, 30));
    }

    #[test]
    fn text_calling_itself_png_is_refused() {
        assert!(matches!(reencode(b"not a picture at all", ImageFormat::Png), Err(PhotoError::Invalid(_))));
    }

    #[test]
    fn only_jpeg_png_and_webp_are_taken() {
        assert_eq!(format_of("image/png; charset=binary").unwrap(), ImageFormat::Png);
        assert_eq!(format_of("IMAGE/JPEG").unwrap(), ImageFormat::Jpeg);
        assert!(matches!(format_of("image/gif"), Err(PhotoError::UnsupportedType(_))));
        assert!(matches!(format_of("text/plain"), Err(PhotoError::UnsupportedType(_))));
    }
}
