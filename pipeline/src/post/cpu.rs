//! The CPU backend: the four stages' CPU twins in a row, parallel (rayon) over base frames
//! for the first two and over delivered frames for the last two, which run back to back on
//! each frame while it is still in cache.

use kernels::Clip;
use rayon::prelude::*;

use super::geometry::Geometry;
use super::{analyse, resample, sides, yuv, Processed};

pub(crate) fn process(clip: &Clip, g: &Geometry) -> Processed {
    let motion = analyse::analyse(clip);
    let sides = sides::sides(clip, g);
    let (rgb, yuv) = (0..g.out_frames)
        .into_par_iter()
        .map_init(resample::Scratch::default, |scratch, j| {
            let rgb = resample::frame(clip, g, &motion, &sides, j, scratch);
            let yuv = yuv::rgb_to_yuv420(&rgb, g.out_size, g.out_size);
            (rgb, yuv)
        })
        .unzip();
    Processed { rgb, yuv, motion }
}
