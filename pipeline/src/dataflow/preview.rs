//! Previews of scenes mid-run: when `denoise` makes one ([`Cadence`]) and what it is
//! ([`render`]): the model's current estimate of the scene's clean frames (x0 of the last
//! step, `kernels::VideoModel::preview`), its middle frame, upscaled by nearest
//! neighbour to a whole multiple of the model's size no larger than [`MAX_SIDE`] (or the
//! task's size; a free-form model's larger frames are shrunk to fit), as a PNG of a few kilobytes to a few tens (repeated pixels and rows compress
//! to nothing; what is left is the model-sized picture, noisy early in the run).
//!
//! Previews are made only while someone watches the task (`TaskService::watched`) and the
//! server runs with `--previews` (the default); they go to watchers as `TaskEvent::Preview`.

use std::time::Duration;

use anyhow::Result;
use kernels::Clip;

/// The largest preview side in pixels.
pub const MAX_SIDE: usize = 256;

/// How often a scene is previewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadence {
    /// About the most previews per scene: one after the first step, then one every
    /// `steps / per_scene` steps (rounded up).
    pub per_scene: usize,
    /// The least time between two previews of one scene (fast steps are not each previewed).
    pub min_gap: Duration,
}

/// The server's cadence: at most about 4 previews per scene, at most 10 a second.
pub const CADENCE: Cadence = Cadence {
    per_scene: 4,
    min_gap: Duration::from_millis(100),
};

impl Cadence {
    /// Steps between two previews of a scene of `steps` steps.
    pub fn every(&self, steps: usize) -> usize {
        steps.div_ceil(self.per_scene.max(1)).max(1)
    }

    /// Whether to preview a scene that has just done `step` of `steps`, its last preview
    /// having been after step `last.0`, `last.1` ago (`None`: none yet). Never before the
    /// first step (no estimate yet), nor in the last half-interval of steps, nor after the
    /// last step: the final frames are about to come.
    pub fn due(&self, step: usize, steps: usize, last: Option<(usize, Duration)>) -> bool {
        let every = self.every(steps);
        if step == 0 || step >= steps || steps - step < every.div_ceil(2) {
            return false;
        }
        match last {
            None => true,
            Some((at, ago)) => step >= at + every && ago >= self.min_gap,
        }
    }
}

/// Pixels per model pixel of a preview of a `base`-pixel clip for a task of `size` pixels.
pub fn scale(base: usize, size: usize) -> usize {
    (size.min(MAX_SIDE) / base.max(1)).max(1)
}

/// The PNG of `clip`'s first frame (values in [0, 1]) upscaled by nearest neighbour to
/// [`scale`] for a task of `size` pixels, or, for a frame larger than [`MAX_SIDE`] (a
/// free-form model's), shrunk by taking every `n`-th pixel until it fits.
pub fn render(clip: &Clip, size: usize) -> Result<Vec<u8>> {
    let (w, h) = (clip.width, clip.height);
    let k = scale(w.max(h), size);
    let stride = w.max(h).div_ceil(MAX_SIDE).max(1);
    let frame = &clip.data[..w * h * 3];
    let (ow, oh) = (w.div_ceil(stride) * k, h.div_ceil(stride) * k);
    let mut rgb = Vec::with_capacity(ow * oh * 3);
    for y in (0..h).step_by(stride) {
        let start = rgb.len();
        for px in frame[y * w * 3..(y + 1) * w * 3]
            .chunks_exact(3)
            .step_by(stride)
        {
            let px: [u8; 3] =
                std::array::from_fn(|c| (px[c].clamp(0.0, 1.0) * 255.0).round() as u8);
            for _ in 0..k {
                rgb.extend_from_slice(&px);
            }
        }
        for _ in 1..k {
            rgb.extend_from_within(start..start + ow * 3);
        }
    }
    png_small(ow as u32, oh as u32, &rgb)
}

/// RGB8 as a PNG made small rather than fast: each row filtered the best of five ways
/// (repeated rows and pixels filter to zeros) and deflated at the default level, so an
/// upscaled preview costs about what its model-sized picture would.
fn png_small(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Default);
    encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Option<(usize, Duration)> = None;
    const LATER: Duration = Duration::from_secs(1);

    /// The steps previewed over one run whose steps each take `step_time`.
    fn previewed(c: &Cadence, steps: usize, step_time: Duration) -> Vec<usize> {
        let mut last: Option<(usize, Duration)> = None;
        let mut out = Vec::new();
        for step in 1..=steps {
            let since = last.map(|(at, _)| (at, step_time * (step - at) as u32));
            if c.due(step, steps, since) {
                out.push(step);
                last = Some((step, Duration::ZERO));
            }
        }
        out
    }

    #[test]
    fn a_few_previews_per_scene_none_at_the_end() {
        let slow = Duration::from_millis(150);
        assert_eq!(CADENCE.every(20), 5);
        assert_eq!(previewed(&CADENCE, 20, slow), [1, 6, 11, 16]);
        assert_eq!(previewed(&CADENCE, 50, slow), [1, 14, 27, 40]);
        assert_eq!(previewed(&CADENCE, 4, slow), [1, 2, 3]);
        assert_eq!(previewed(&CADENCE, 2, slow), [1]);
        assert!(
            previewed(&CADENCE, 1, slow).is_empty(),
            "the final frames come at once"
        );
        assert!(!CADENCE.due(0, 20, NONE) && !CADENCE.due(20, 20, NONE));
        assert!(!CADENCE.due(18, 20, NONE), "too close to the end");
    }

    #[test]
    fn fast_steps_are_previewed_at_most_every_gap() {
        // 5 ms steps: every 5 steps is 25 ms, under the 100 ms gap: every 20 steps instead.
        let fast = Duration::from_millis(5);
        assert_eq!(previewed(&CADENCE, 20, fast), [1]);
        assert_eq!(previewed(&CADENCE, 100, fast), [1, 26, 51, 76]);
        assert!(!CADENCE.due(6, 20, Some((1, Duration::from_millis(99)))));
        assert!(CADENCE.due(6, 20, Some((1, LATER))));
        assert!(!CADENCE.due(5, 20, Some((1, LATER))), "every 5 steps");
    }

    #[test]
    fn the_preview_is_a_small_nearest_neighbour_png() {
        assert_eq!((scale(48, 256), scale(48, 64), scale(48, 32)), (5, 1, 1));
        assert_eq!((scale(48, 512), scale(32, 128)), (5, 4));
        // A 2x2 frame (red, green / blue, white), and a second frame that is not shown.
        let clip = Clip {
            frames: 2,
            width: 2,
            height: 2,
            data: [
                [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
                [0.5; 12],
            ]
            .concat(),
        };
        let png = render(&clip, 6).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (6, 6));
        let px = |x: usize, y: usize| &buf[(y * 6 + x) * 3..(y * 6 + x) * 3 + 3];
        assert_eq!(px(0, 0), [255, 0, 0]);
        assert_eq!(px(2, 2), [255, 0, 0]);
        assert_eq!(px(3, 0), [0, 255, 0]);
        assert_eq!(px(0, 3), [0, 0, 255]);
        assert_eq!(px(5, 5), [255, 255, 255]);

        // A free-form model's 832 x 480 frame shrinks to 208 x 120 (every 4th pixel).
        let (w, h) = (832, 480);
        let data = (0..w * h)
            .flat_map(|i| [(i % w) as f32 / w as f32, 0.0, 0.0])
            .collect();
        let clip = Clip {
            frames: 1,
            width: w,
            height: h,
            data,
        };
        let png = render(&clip, 256).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (208, 120));
    }
}
