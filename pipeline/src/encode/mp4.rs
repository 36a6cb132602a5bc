//! H.264 (openh264, Constrained Baseline, yuv420p, BT.601 limited range) in MP4 (mp4 crate).
//!
//! openh264 emits Annex B NAL units; MP4 wants the parameter sets in the `avcC` box and each
//! sample as length-prefixed NAL units, so [`Mp4Encoder::push`] converts as it goes and keeps
//! the samples until [`Mp4Encoder::finish`] writes the file (the `avcC` box needs the SPS that
//! only the first encoded frame brings).

use std::io::Cursor;

use anyhow::{anyhow, ensure, Context as _, Result};
use bytes::Bytes;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode,
    VuiConfig,
};
use openh264::formats::YUVSlices;
use openh264::OpenH264API;

use super::faststart::moov_first;
use crate::post::Yuv420;

/// Media time units per frame (the track's timescale is `fps * TICKS_PER_FRAME`).
const TICKS_PER_FRAME: u32 = 512;
/// Target bits per pixel per frame: flat pictures need little, and a fixed budget per pixel
/// keeps quality the same at every delivered size.
const BITS_PER_PIXEL: f64 = 0.25;
/// A key frame every this many seconds, so that players can seek.
const KEY_FRAME_SECONDS: u32 = 2;

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// One MP4 sample: length-prefixed NAL units of one picture, shown for `frames` frames.
struct Sample {
    data: Vec<u8>,
    sync: bool,
    frames: u32,
}

/// Encodes frames of one size into one MP4, in the order they are pushed.
pub struct Mp4Encoder {
    width: u32,
    height: u32,
    fps: u32,
    encoder: Encoder,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    samples: Vec<Sample>,
}

impl Mp4Encoder {
    /// An encoder for `width` x `height` (both even, as 4:2:0 needs) at `fps` frames per second.
    pub fn new(width: u32, height: u32, fps: u32) -> Result<Self> {
        ensure!(
            width > 0 && height > 0 && width.is_multiple_of(2) && height.is_multiple_of(2),
            "H.264 4:2:0 needs even dimensions, not {width}x{height}"
        );
        ensure!(
            width.max(height) <= 3840 && width.min(height) <= 2160,
            "openh264 encodes up to 3840x2160, not {width}x{height}"
        );
        ensure!((1..=240).contains(&fps), "frame rate {fps} out of 1..=240");
        let bitrate = (width as f64 * height as f64 * fps as f64 * BITS_PER_PIXEL) as u32;
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .rate_control_mode(RateControlMode::Bufferbased)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(KEY_FRAME_SECONDS * fps))
            .vui(VuiConfig::bt601());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| anyhow!("creating the H.264 encoder: {e}"))?;
        Ok(Mp4Encoder {
            width,
            height,
            fps,
            encoder,
            sps: None,
            pps: None,
            samples: Vec::new(),
        })
    }

    /// Encodes the next frame.
    pub fn push(&mut self, frame: &Yuv420) -> Result<()> {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w / 2, h / 2);
        ensure!(
            frame.width == w
                && frame.height == h
                && frame.y.len() == w * h
                && frame.u.len() == cw * ch
                && frame.v.len() == cw * ch,
            "frame of {}x{} (planes {}/{}/{}) pushed to a {w}x{h} encoder",
            frame.width,
            frame.height,
            frame.y.len(),
            frame.u.len(),
            frame.v.len()
        );
        let source = YUVSlices::new((&frame.y, &frame.u, &frame.v), (w, h), (w, cw, cw));
        let bitstream = self
            .encoder
            .encode(&source)
            .map_err(|e| anyhow!("encoding a frame: {e}"))?;
        let mut sample = Sample {
            data: Vec::new(),
            sync: false,
            frames: 1,
        };
        let layers: Vec<_> = (0..bitstream.num_layers())
            .filter_map(|l| bitstream.layer(l))
            .collect();
        for layer in &layers {
            for unit in (0..layer.nal_count()).filter_map(|n| layer.nal_unit(n)) {
                let nal = strip_start_code(unit);
                match nal.first().map(|b| b & 0x1f) {
                    None => {}
                    Some(NAL_SPS) => self.sps = Some(nal.to_vec()),
                    Some(NAL_PPS) => self.pps = Some(nal.to_vec()),
                    Some(kind) => {
                        sample.sync |= kind == NAL_IDR;
                        sample
                            .data
                            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        sample.data.extend_from_slice(nal);
                    }
                }
            }
        }
        if sample.data.is_empty() {
            // A skipped picture: the previous one stays on screen a frame longer.
            let last = self
                .samples
                .last_mut()
                .context("the encoder skipped the first frame")?;
            last.frames += 1;
        } else {
            self.samples.push(sample);
        }
        Ok(())
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> usize {
        self.samples.iter().map(|s| s.frames as usize).sum()
    }

    /// Writes the MP4 (`ftyp`, `moov`, `mdat`).
    pub fn finish(self) -> Result<Vec<u8>> {
        let (Some(sps), Some(pps)) = (self.sps, self.pps) else {
            return Err(anyhow!("no frames were encoded"));
        };
        let brand = |b: &[u8; 4]| mp4::FourCC::from(*b);
        let config = mp4::Mp4Config {
            major_brand: brand(b"isom"),
            minor_version: 512,
            compatible_brands: vec![
                brand(b"isom"),
                brand(b"iso2"),
                brand(b"avc1"),
                brand(b"mp41"),
            ],
            // The movie's timescale equals the track's: the mp4 crate converts each sample's
            // duration separately and truncates, which would shorten the movie otherwise.
            timescale: self.fps * TICKS_PER_FRAME,
        };
        let mut writer = mp4::Mp4Writer::write_start(Cursor::new(Vec::new()), &config)?;
        writer.add_track(&mp4::TrackConfig {
            track_type: mp4::TrackType::Video,
            timescale: self.fps * TICKS_PER_FRAME,
            language: "und".into(),
            media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                width: self.width as u16,
                height: self.height as u16,
                seq_param_set: sps,
                pic_param_set: pps,
            }),
        })?;
        let mut start = 0u64;
        for s in self.samples {
            let duration = s.frames * TICKS_PER_FRAME;
            writer.write_sample(
                1,
                &mp4::Mp4Sample {
                    start_time: start,
                    duration,
                    rendering_offset: 0,
                    is_sync: s.sync,
                    bytes: Bytes::from(s.data),
                },
            )?;
            start += duration as u64;
        }
        writer.write_end()?;
        moov_first(&writer.into_writer().into_inner())
    }
}

/// A NAL unit without its Annex B start code (`00 00 01` or `00 00 00 01`).
fn strip_start_code(unit: &[u8]) -> &[u8] {
    let zeros = unit.iter().take_while(|&&b| b == 0).count();
    match unit.get(zeros) {
        Some(1) if zeros >= 2 => &unit[zeros + 1..],
        _ => unit,
    }
}
