//! The CPU backend: the three stages' CPU twins in a row, each parallel (rayon).

use kernels::Clip;

use super::geometry::Geometry;
use super::{analyse, resample, yuv, Processed};

pub(crate) fn process(clip: &Clip, g: &Geometry) -> Processed {
    let motion = analyse::analyse(clip);
    let rgb = resample::resample(clip, g, &motion);
    let yuv = yuv::convert(&rgb, g.out_size);
    Processed { rgb, yuv, motion }
}
