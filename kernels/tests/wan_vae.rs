//! The Wan VAE decoder (`kernels::wan::WanVaeDecoder`) against diffusers 0.42.1's
//! `AutoencoderKLWan.decode` and `WanPipeline`'s de-normalisation and postprocess, on the tiny
//! random-weight checkpoint in `model/wan/tiny/`; the goldens in
//! `model/wan/tiny-goldens.safetensors` were computed in f32 on the CPU by
//! `model/wan/make_tiny.py`.

mod common;

use std::path::PathBuf;

use common::golden_tensors::{golden_f32, wan_goldens};
use kernels::wan::{postprocess_video, WanCheckpoint, WanVaeDecoder};

fn decoder() -> WanVaeDecoder {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../model/wan/tiny"));
    let ckpt = WanCheckpoint::open(&dir).unwrap_or_else(|e| panic!("model/wan/tiny: {e}"));
    WanVaeDecoder::from_checkpoint(&ckpt).expect("VAE decoder")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `[C, F, H, W]` to the decoder's `[F, H, W, C]`.
fn channels_last(x: &[f32], c: usize, f: usize, hw: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for ci in 0..c {
        for fi in 0..f {
            for p in 0..hw {
                out[(fi * hw + p) * c + ci] = x[(ci * f + fi) * hw + p];
            }
        }
    }
    out
}

#[test]
fn decode_matches_diffusers() {
    let vae = decoder();
    assert_eq!((vae.spatial_scale(), vae.temporal_scale()), (8, 4));
    assert_eq!(vae.video_frames(2), 5);
    let bytes = wan_goldens();
    let latent = golden_f32(&bytes, "vae.latent", &[1, 5, 2, 4, 6]);
    let want = golden_f32(&bytes, "vae.video", &[1, 3, 5, 32, 48]);
    let want = channels_last(&want, 3, 5, 32 * 48);
    let video = vae.decode(&latent, 2, 4, 6);
    let err = max_abs_diff(&video, &want);
    eprintln!("vae.video: max abs error {err:e}");
    assert!(err <= 1e-5, "vae.video off by {err}");
    // Not a clamped constant: the comparison has something to compare.
    assert!(want.iter().any(|v| v.abs() < 0.9) && want.iter().any(|v| v.abs() > 0.1));
}

#[test]
fn frame_by_frame_streams_the_same_video() {
    let vae = decoder();
    let bytes = wan_goldens();
    let latent = golden_f32(&bytes, "vae.latent", &[1, 5, 2, 4, 6]);
    let whole = vae.decode(&latent, 2, 4, 6);
    // Latent frame f as [C, H, W].
    let frame = |f: usize| -> Vec<f32> {
        (0..5)
            .flat_map(|c| latent[(c * 2 + f) * 24..][..24].to_vec())
            .collect()
    };
    let mut state = vae.start(4, 6);
    let mut streamed = Vec::new();
    for f in 0..2 {
        let frames = vae.decode_frame(&mut state, &frame(f));
        // The first latent frame gives one video frame, each later one four.
        assert_eq!(frames.len(), [1, 4][f] * 32 * 48 * 3, "latent frame {f}");
        streamed.extend(frames);
    }
    assert_eq!(state.frames_decoded(), 2);
    assert_eq!(streamed, whole);
    // A state starts afresh: the first frame again decodes as a first frame.
    let again = vae.decode(&frame(0), 1, 4, 6);
    assert_eq!(again, whole[..32 * 48 * 3]);
}

#[test]
fn pipeline_latents_decode_to_the_pipelines_frames() {
    let vae = decoder();
    let bytes = wan_goldens();
    let latent = golden_f32(&bytes, "pipeline.final_latents", &[1, 5, 2, 4, 6]);
    let want = golden_f32(&bytes, "pipeline.video", &[1, 5, 32, 48, 3]);
    let mut video = vae.decode(&latent, 2, 4, 6);
    postprocess_video(&mut video);
    let err = max_abs_diff(&video, &want);
    eprintln!("pipeline.video: max abs error {err:e}");
    assert!(err <= 1e-4, "pipeline.video off by {err}");
}
