//! Encoders: delivered frames -> the files reel serves.
//!
//! [`Mp4Encoder`] takes the Y'CbCr 4:2:0 frames of [`crate::post::Processed`] and writes H.264
//! Constrained Baseline (openh264) in an MP4 (mp4 crate) whose `moov` comes before `mdat`, so
//! browsers start playing before the whole file has arrived. [`png_rgb`] encodes single RGB8
//! frames: the stored PNG frames, which watchers read as they are made.

mod faststart;
mod image;
mod mp4;

pub use self::image::png_rgb;
pub use self::mp4::Mp4Encoder;
