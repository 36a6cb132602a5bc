//! Parity with PyTorch: the checkpoint in model/checkpoint against the reference tensors that
//! model/export.py computed from the same weights (kernels/tests/golden/golden.safetensors).
//! Each tensor must match to a relative error (max |rust - torch| / max |torch|) of 1e-4;
//! clip-sized tensors are stored decimated (every `stride`-th value, see export.py) and the
//! Rust side is decimated the same way. Noise is regenerated from the seeds in the metadata
//! (its bit-exactness against noise.py is checked on the stored sample).
//! No PyTorch needed; after new weights, rerun `python3 model/export.py`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::rel_err;
use kernels::{cells, philox, CpuBackend, Method, Model, SceneState, Tensor};
use safetensors::{Dtype, SafeTensors};

const TOL: f64 = 1e-4;

struct Golden {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    ids: HashMap<String, Vec<Vec<usize>>>,
    meta: HashMap<String, String>,
}

impl Golden {
    fn load() -> Golden {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/golden.safetensors");
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run python3 model/export.py)", path.display()));
        let (_, header) = SafeTensors::read_metadata(&bytes).expect("golden header");
        let meta = header.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).expect("golden file");
        let (mut tensors, mut ids) = (HashMap::new(), HashMap::new());
        for (name, view) in st.tensors() {
            let bytes = view.data();
            match view.dtype() {
                Dtype::F32 => {
                    let data = bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    tensors.insert(name, (view.shape().to_vec(), data));
                }
                Dtype::I64 => {
                    let flat: Vec<usize> = bytes
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
                        .collect();
                    ids.insert(
                        name,
                        flat.chunks(view.shape()[1]).map(|r| r.to_vec()).collect(),
                    );
                }
                other => panic!("unexpected dtype {other:?} of {name}"),
            }
        }
        Golden { tensors, ids, meta }
    }

    fn tensor(&self, name: &str) -> Tensor {
        let (shape, data) = self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("golden tensor {name} missing"));
        Tensor::new(shape, data.clone())
    }

    fn meta<T: std::str::FromStr>(&self, key: &str) -> T {
        self.meta
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("golden metadata {key}"))
    }

    fn captions(&self) -> Vec<String> {
        serde_json::from_str(&self.meta["captions"]).expect("captions metadata")
    }

    /// Every `stride`-th value of `full`, as export.py's `decimate` keeps them.
    fn decimate(&self, full: &[f32]) -> Vec<f32> {
        full.iter().step_by(self.meta("stride")).copied().collect()
    }
}

/// `n` Philox clips of `stream`s 0.. under `seed`, `[n, F, L, h, w]`.
fn philox_clips(m: &Model, seed: u64, n: usize) -> Tensor {
    let c = m.config();
    let data = (0..n as u64)
        .flat_map(|s| philox::gaussian(seed, s, c.latent_len()))
        .collect();
    Tensor::new(
        &[
            n,
            c.frames,
            c.latent_channels,
            c.latent_size(),
            c.latent_size(),
        ],
        data,
    )
}

fn checkpoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/checkpoint")
}

fn model() -> Model {
    let model = Model::load_with(&checkpoint(), CpuBackend::new(2)).expect("load model/checkpoint");
    let golden = Golden::load();
    let sha: String = golden.meta("weights_sha1");
    assert!(
        model.id().ends_with(&sha[..12]),
        "golden file is for weights {sha}, checkpoint is {}: rerun python3 model/export.py",
        model.id()
    );
    model
}

fn assert_close(name: &str, got: &[f32], want: &[f32]) {
    let err = rel_err(got, want);
    assert!(err <= TOL, "{name}: relative error {err:e} > {TOL:e}");
}

/// Frame `f` of a clip as `[3, H, W]` (the PyTorch layout of the golden frames).
fn frame_chw(clip: &kernels::Clip, f: usize) -> Vec<f32> {
    let n = clip.width * clip.height;
    Tensor::new(
        &[clip.height, clip.width, 3],
        clip.data[f * n * 3..(f + 1) * n * 3].to_vec(),
    )
    .permute(&[2, 0, 1])
    .data
}

#[test]
fn text_encoder_matches_torch() {
    let (m, g) = (model(), Golden::load());
    let got = m.text(&g.ids["text.ids"]).unwrap();
    assert_close("text.cond", &got.data, &g.tensor("text.cond").data);
}

#[test]
fn denoiser_matches_torch() {
    let (m, g) = (model(), Golden::load());
    let cond = m.text(&g.ids["denoise.ids"]).unwrap();
    let z = philox_clips(&m, g.meta("denoise_seed"), 2);
    let out = m.denoise(&z, &g.tensor("denoise.t").data, &cond).unwrap();
    assert_close(
        "denoise.out",
        &g.decimate(&out.data),
        &g.tensor("denoise.out").data,
    );
}

#[test]
fn cells_to_pixels_matches_pixel_shuffle() {
    let (m, g) = (model(), Golden::load());
    let c = m.config();
    let frame =
        philox_clips(&m, g.meta("cells_seed"), 1).data[..c.latent_len() / c.frames].to_vec();
    let cells = Tensor::new(
        &[1, c.latent_channels, c.latent_size(), c.latent_size()],
        frame,
    );
    let px = cells::cells_to_pixels(&cells, c.patch);
    assert_eq!(
        px.permute(&[0, 3, 1, 2]).data,
        g.tensor("cells.pixels").data,
        "a pure rearrangement is exact"
    );
}

/// Starts the golden scenes, checks their Philox noise against noise.py bit for bit, then
/// steps them together and compares every intermediate latent.
fn run_trajectory(name: &str, method: Method, steps_key: &str) -> (Model, Vec<SceneState>) {
    let (m, g) = (model(), Golden::load());
    let (seed, guidance, steps): (u64, f32, usize) =
        (g.meta("seed"), g.meta("guidance"), g.meta(steps_key));
    let mut scenes: Vec<SceneState> = g
        .captions()
        .iter()
        .enumerate()
        .map(|(i, c)| m.start(c, seed, i as u64, steps, guidance, method).unwrap())
        .collect();
    let z0: Vec<f32> = scenes.iter().flat_map(|s| s.latent().to_vec()).collect();
    assert_eq!(
        g.decimate(&z0),
        g.tensor("dpm.z0").data,
        "Philox noise differs from noise.py"
    );
    let trace = g.tensor(&format!("{name}.trace"));
    assert_eq!(trace.shape[0], steps);
    for (k, want) in trace.data.chunks_exact(trace.shape[1]).enumerate() {
        assert!(scenes.iter().all(|s| s.step_index() == k && !s.done()));
        m.step(&mut scenes.iter_mut().collect::<Vec<_>>());
        let got: Vec<f32> = scenes.iter().flat_map(|s| s.latent().to_vec()).collect();
        assert_close(
            &format!("{name} latent after step {}", k + 1),
            &g.decimate(&got),
            want,
        );
    }
    assert!(scenes.iter().all(|s| s.done() && s.step_index() == steps));
    (m, scenes)
}

#[test]
fn dpm_solver_trajectory_matches_torch() {
    let (m, scenes) = run_trajectory("dpm", Method::DpmPP2M, "dpm_steps");
    let g = Golden::load();
    let (first, last) = (m.decode(&scenes[0]), m.decode(&scenes[1]));
    let got: Vec<f32> = [frame_chw(&first, 0), frame_chw(&last, last.frames - 1)].concat();
    assert_close("dpm.frames", &got, &g.tensor("dpm.frames").data);
    assert!(first.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn ddim_trajectory_matches_torch() {
    run_trajectory("ddim", Method::Ddim, "ddim_steps");
}
