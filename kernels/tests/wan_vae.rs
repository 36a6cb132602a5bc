//! The Wan VAE decoder (`kernels::wan::WanVaeDecoder`) against diffusers 0.42.1's
//! `AutoencoderKLWan.decode` and `WanPipeline`'s de-normalisation and postprocess, on the tiny
//! random-weight checkpoint in `model/wan/tiny/`; the goldens in
//! `model/wan/tiny-goldens.safetensors` were computed in f32 on the CPU by
//! `model/wan/make_tiny.py`.

mod common;

use common::wan::{max_abs_diff, open_tiny, Goldens};
use kernels::wan::{postprocess_video, WanVaeDecoder};

fn decoder() -> WanVaeDecoder {
    WanVaeDecoder::from_checkpoint(&open_tiny()).expect("VAE decoder")
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
    let goldens = Goldens::load();
    let latent = goldens.f32_shaped("vae.latent", &[1, 5, 2, 4, 6]);
    let want = goldens.f32_shaped("vae.video", &[1, 3, 5, 32, 48]);
    let want = channels_last(&want, 3, 5, 32 * 48);
    let video = vae.decode(&latent, 2, 4, 6);
    let err = max_abs_diff(&video, &want);
    eprintln!("vae.video: max abs error {err:e}");
    assert!(err <= 1e-5, "vae.video off by {err}");
    // Not a clamped constant: the comparison has something to compare.
    assert!(want.iter().any(|v| v.abs() < 0.9) && want.iter().any(|v| v.abs() > 0.1));
}

#[test]
fn three_latent_frames_reach_the_temporal_caches() {
    // From the third latent frame on, each temporal upsampler's cache holds real frames rather
    // than zeros or its 'Rep' marker.
    let vae = decoder();
    assert_eq!(vae.video_frames(3), 9);
    let goldens = Goldens::load();
    let latent = goldens.f32_shaped("vae3.latent", &[1, 5, 3, 4, 6]);
    let want = goldens.f32_shaped("vae3.video", &[1, 3, 9, 32, 48]);
    let want = channels_last(&want, 3, 9, 32 * 48);
    let video = vae.decode(&latent, 3, 4, 6);
    let err = max_abs_diff(&video, &want);
    eprintln!("vae3.video: max abs error {err:e}");
    assert!(err <= 3e-5, "vae3.video off by {err}");
    // The last four frames are where the caches matter; they are not the first ones again.
    let frame = 32 * 48 * 3;
    assert!(max_abs_diff(&want[5 * frame..], &want[frame..5 * frame]) > 1e-2);
}

#[test]
fn frame_by_frame_streams_the_same_video() {
    let vae = decoder();
    let goldens = Goldens::load();
    let latent = goldens.f32_shaped("vae.latent", &[1, 5, 2, 4, 6]);
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
    let goldens = Goldens::load();
    let latent = goldens.f32_shaped("pipeline.final_latents", &[1, 5, 2, 4, 6]);
    let want = goldens.f32_shaped("pipeline.video", &[1, 5, 32, 48, 3]);
    let mut video = vae.decode(&latent, 2, 4, 6);
    postprocess_video(&mut video);
    let err = max_abs_diff(&video, &want);
    eprintln!("pipeline.video: max abs error {err:e}");
    assert!(err <= 1e-4, "pipeline.video off by {err}");
}

/// Decode time at Wan2.1's real VAE size (base 96, z 16, widths 384 to 96: the 1.3B
/// checkpoint's decoder, 73 M parameters) with random weights, at a small latent: run with
/// `cargo test --release -p kernels --test wan_vae -- --ignored --nocapture`;
/// `REEL_VAE_BENCH=frames,height,width` sets the latent size (default 3,8,8: 9 frames of
/// 64 x 64). Prints the time per latent frame and the process's peak RSS.
#[test]
#[ignore = "a measurement, not a check"]
fn decode_time_at_wan21_size() {
    use std::collections::HashMap;
    use std::time::Instant;

    use kernels::wan::{WanDtype, WanTensor, WanVaeConfig};

    let config: WanVaeConfig = serde_json::from_value(serde_json::json!({
        "_class_name": "AutoencoderKLWan", "base_dim": 96, "z_dim": 16,
        "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
        "temperal_downsample": [false, true, true],
        "latents_mean": vec![0.0; 16], "latents_std": vec![1.0; 16]
    }))
    .expect("config");
    // The decoder's tensors, as diffusers names them (see `expected.rs` for the rules).
    let (base, z, res) = (96, 16, 2);
    let dims = [4 * base, 4 * base, 4 * base, 2 * base, base];
    let mut l = Shapes(Vec::new());
    l.conv("post_quant_conv", z, z, &[1, 1, 1]);
    l.conv("decoder.conv_in", z, dims[0], &[3, 3, 3]);
    let m = "decoder.mid_block";
    l.residual(&format!("{m}.resnets.0"), dims[0], dims[0]);
    l.residual(&format!("{m}.resnets.1"), dims[0], dims[0]);
    l.0.push((format!("{m}.attentions.0.norm.gamma"), vec![dims[0], 1, 1]));
    l.conv(
        &format!("{m}.attentions.0.to_qkv"),
        dims[0],
        3 * dims[0],
        &[1, 1],
    );
    l.conv(&format!("{m}.attentions.0.proj"), dims[0], dims[0], &[1, 1]);
    for i in 0..4 {
        let out = dims[i + 1];
        let mut width = if i == 0 { dims[0] } else { dims[i] / 2 };
        for j in 0..=res {
            l.residual(&format!("decoder.up_blocks.{i}.resnets.{j}"), width, out);
            width = out;
        }
        if i < 3 {
            let up = format!("decoder.up_blocks.{i}.upsamplers.0");
            l.conv(&format!("{up}.resample.1"), out, out / 2, &[3, 3]);
            if i < 2 {
                l.conv(&format!("{up}.time_conv"), out, 2 * out, &[3, 1, 1]);
            }
        }
    }
    l.0.push(("decoder.norm_out.gamma".into(), vec![base, 1, 1, 1]));
    l.conv("decoder.conv_out", base, 3, &[3, 3, 3]);

    // Uniform in +-1/sqrt(fan_in) (PyTorch's default scale), gammas 1.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut tensors: HashMap<String, (Vec<usize>, Vec<u8>)> = HashMap::new();
    for (name, shape) in l.0 {
        let n: usize = shape.iter().product();
        if name.ends_with(".gamma") {
            tensors.insert(name, (shape, 1.0f32.to_le_bytes().repeat(n)));
            continue;
        }
        let bound = 1.0 / ((n / shape[0]).max(1) as f32).sqrt();
        let bytes = (0..n)
            .flat_map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let u = (seed >> 40) as f32 / (1u64 << 24) as f32;
                ((2.0 * u - 1.0) * bound).to_le_bytes()
            })
            .collect();
        tensors.insert(name, (shape, bytes));
    }
    let started = Instant::now();
    let vae = WanVaeDecoder::from_tensors(&config, std::path::Path::new("random"), |name| {
        tensors.get(name).map(|(shape, data)| WanTensor {
            dtype: WanDtype::F32,
            shape,
            data,
        })
    })
    .expect("decoder");
    eprintln!("load + pack: {:.2} s", started.elapsed().as_secs_f64());

    let dims: Vec<usize> = std::env::var("REEL_VAE_BENCH")
        .unwrap_or_else(|_| "3,8,8".into())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .expect("REEL_VAE_BENCH=frames,height,width")
        })
        .collect();
    let (frames, h, w) = (dims[0], dims[1], dims[2]);
    let threads = rayon::current_num_threads();
    let mut state = vae.start(h, w);
    let mut seed = 1u64;
    for f in 0..frames {
        let latent: Vec<f32> = (0..z * h * w)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        let t = Instant::now();
        let video = vae.decode_frame(&mut state, &latent);
        let n = video.len() / (64 * h * w * 3);
        assert!(video.iter().all(|v| v.is_finite()));
        eprintln!(
            "latent frame {f} ({h} x {w}) -> {n} frames of {} x {}: {:.2} s on {threads} threads",
            8 * h,
            8 * w,
            t.elapsed().as_secs_f64()
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("");
    eprintln!("peak RSS: {hwm}");
}

/// Tensor names and shapes, for [`decode_time_at_wan21_size`].
struct Shapes(Vec<(String, Vec<usize>)>);

impl Shapes {
    /// A convolution's weight `[o, i, kernel...]` and bias.
    fn conv(&mut self, name: &str, i: usize, o: usize, kernel: &[usize]) {
        let mut shape = vec![o, i];
        shape.extend_from_slice(kernel);
        self.0.push((format!("{name}.weight"), shape));
        self.0.push((format!("{name}.bias"), vec![o]));
    }

    /// A `WanResidualBlock(i, o)`.
    fn residual(&mut self, p: &str, i: usize, o: usize) {
        self.0.push((format!("{p}.norm1.gamma"), vec![i, 1, 1, 1]));
        self.0.push((format!("{p}.norm2.gamma"), vec![o, 1, 1, 1]));
        self.conv(&format!("{p}.conv1"), i, o, &[3, 3, 3]);
        self.conv(&format!("{p}.conv2"), o, o, &[3, 3, 3]);
        if i != o {
            self.conv(&format!("{p}.conv_shortcut"), i, o, &[1, 1, 1]);
        }
    }
}
