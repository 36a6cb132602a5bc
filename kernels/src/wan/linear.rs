//! Linear layers whose weights stay in the checkpoint's precision (f32, bf16 or f16) and are
//! widened to f32 one panel at a time as the GEMM needs them.
//!
//! `y = x W^T + b` for an `nn.Linear` weight `W` stored `[out, in]`. The output features are
//! cut into panels of [`PANEL`] columns; a group of panels is widened (f32 weights are read
//! where they lie) and packed for the CPU backend's GEMM (in parallel, one panel per task), every row block of `x` is multiplied
//! against the group (in parallel, one block of rows per task), and the group's f32 copy is
//! dropped before the next. So a bf16 checkpoint costs 2 bytes per parameter at rest plus at
//! most [`GROUP_ELEMS`] widened floats per layer call, and the widening is `in x out` work
//! against the product's `rows x in x out`.

use rayon::prelude::*;

use super::{WanDtype, WanTensor};
use crate::cpu::gemm::{gemm, Operand, PackedB};

/// Output features per widened panel (a multiple of the GEMM's panel width).
pub(crate) const PANEL: usize = 32;
/// Widened weights held at once per layer call, in floats (4 MiB).
const GROUP_ELEMS: usize = 1 << 20;
/// Rows of `x` per parallel GEMM task.
const ROWS_PER_TASK: usize = 64;

/// A tensor's elements in their stored type, owned (row-major): f32 as floats, which the
/// GEMM packs straight from, bf16 and f16 as their little-endian bytes, widened per panel.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    /// f32 elements.
    F32(Vec<f32>),
    /// bf16 or f16 elements (`dtype`), little-endian bytes.
    Half { dtype: WanDtype, data: Vec<u8> },
}

impl Stored {
    /// Copies `t`'s elements, keeping its type.
    pub(crate) fn from_tensor(t: &WanTensor<'_>) -> Stored {
        Stored::from_bytes(t.dtype, t.data.to_vec())
    }

    /// Stored elements given as raw little-endian bytes of `dtype`.
    pub(crate) fn from_bytes(dtype: WanDtype, data: Vec<u8>) -> Stored {
        assert_eq!(data.len() % dtype.size(), 0, "Stored: partial element");
        match dtype {
            WanDtype::F32 => {
                let mut wide = vec![0.0f32; data.len() / 4];
                dtype.widen(&data, &mut wide);
                Stored::F32(wide)
            }
            WanDtype::Bf16 | WanDtype::F16 => Stored::Half { dtype, data },
        }
    }

    /// Elements held.
    pub(crate) fn len(&self) -> usize {
        match self {
            Stored::F32(v) => v.len(),
            Stored::Half { dtype, data } => data.len() / dtype.size(),
        }
    }

    /// Concatenates `parts` (row-major, so rows of `[out_i, in]` matrices stack); widens to
    /// f32 only if their types differ.
    pub(crate) fn concat(parts: Vec<Stored>) -> Stored {
        match &parts[0] {
            Stored::Half { dtype, .. }
                if parts
                    .iter()
                    .all(|p| matches!(p, Stored::Half { dtype: d, .. } if d == dtype)) =>
            {
                let dtype = *dtype;
                let data = parts
                    .into_iter()
                    .flat_map(|p| match p {
                        Stored::Half { data, .. } => data,
                        Stored::F32(_) => unreachable!("all parts are half"),
                    })
                    .collect();
                Stored::Half { dtype, data }
            }
            _ => Stored::F32(parts.iter().flat_map(Stored::to_f32).collect()),
        }
    }

    /// The elements as f32 in place, when that is how they are stored.
    fn as_f32(&self) -> Option<&[f32]> {
        match self {
            Stored::F32(v) => Some(v),
            Stored::Half { .. } => None,
        }
    }

    /// Widens elements `start..start + out.len()` into `out`.
    pub(crate) fn widen(&self, start: usize, out: &mut [f32]) {
        match self {
            Stored::F32(v) => out.copy_from_slice(&v[start..start + out.len()]),
            Stored::Half { dtype, data } => {
                let size = dtype.size();
                dtype.widen(&data[start * size..(start + out.len()) * size], out);
            }
        }
    }

    /// All elements widened to f32.
    pub(crate) fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.len()];
        self.widen(0, &mut out);
        out
    }
}

/// An `nn.Linear(input, output)` with its weight `[output, input]` in stored precision and
/// its bias widened to f32.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    input: usize,
    output: usize,
    weight: Stored,
    bias: Vec<f32>,
}

impl Linear {
    pub(crate) fn new(input: usize, output: usize, weight: Stored, bias: Vec<f32>) -> Linear {
        assert_eq!(weight.len(), input * output, "Linear: weight size");
        assert_eq!(bias.len(), output, "Linear: bias size");
        Linear {
            input,
            output,
            weight,
            bias,
        }
    }

    /// Output features.
    pub(crate) fn output(&self) -> usize {
        self.output
    }

    /// The row length [`Linear::apply`] writes: `output` rounded up to whole panels.
    pub(crate) fn padded_out(&self) -> usize {
        self.output.next_multiple_of(PANEL)
    }

    /// `x W^T + b` for the `m` rows of `x` (each `input` long, `lda` apart): `m` rows of
    /// [`Linear::padded_out`] floats, the padding zero.
    pub(crate) fn apply(&self, m: usize, x: &[f32], lda: usize) -> Vec<f32> {
        let (k, n) = (self.input, self.output);
        let ldc = self.padded_out();
        let mut c = vec![0.0f32; m * ldc];
        if m == 0 {
            return c;
        }
        assert!((m - 1) * lda + k <= x.len(), "Linear: input too short");
        let panels = n.div_ceil(PANEL);
        let per_group = (GROUP_ELEMS / (k * PANEL).max(1)).max(1);
        for g0 in (0..panels).step_by(per_group) {
            let g1 = (g0 + per_group).min(panels);
            let packed: Vec<PackedB> = (g0..g1)
                .into_par_iter()
                .map(|p| {
                    let cols = PANEL.min(n - p * PANEL);
                    // f32 weights are packed from where they lie; others widened first.
                    let wide;
                    let data = match self.weight.as_f32() {
                        Some(all) => &all[p * PANEL * k..(p * PANEL + cols) * k],
                        None => {
                            let mut panel = vec![0.0f32; cols * k];
                            self.weight.widen(p * PANEL * k, &mut panel);
                            wide = panel;
                            &wide
                        }
                    };
                    // Column j of the panel is weight row p * PANEL + j.
                    let b = Operand {
                        data,
                        row_stride: 1,
                        col_stride: k,
                    };
                    PackedB::new(k, cols, b)
                })
                .collect();
            c.par_chunks_mut(ROWS_PER_TASK * ldc)
                .enumerate()
                .for_each(|(t, chunk)| {
                    let r0 = t * ROWS_PER_TASK;
                    let rows = chunk.len() / ldc;
                    for (i, b) in packed.iter().enumerate() {
                        let col0 = (g0 + i) * PANEL;
                        debug_assert_eq!(b.padded_n(), PANEL, "GEMM panels wider than PANEL");
                        gemm(rows, &x[r0 * lda..], lda, b, &mut chunk[col0..], ldc, false);
                    }
                });
        }
        c.par_chunks_mut(ldc).for_each(|row| {
            for (o, b) in row.iter_mut().zip(&self.bias) {
                *o += b;
            }
        });
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 8;
                h as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn matches_a_plain_product_across_groups_panels_and_row_tasks() {
        // 8192 inputs: 4 panels per widened group, so 200 outputs (7 panels, the last
        // partial) take 2 groups; 70 rows take 2 row tasks; rows of x padded (lda > input).
        let (m, k, n, lda) = (70, 8192, 200, 8200);
        let x = values(m * lda, 1);
        let w = values(n * k, 2);
        let bias = values(n, 3);
        let lin = Linear::new(
            k,
            n,
            Stored::from_bytes(WanDtype::F32, f32_bytes(&w)),
            bias.clone(),
        );
        let y = lin.apply(m, &x, lda);
        assert_eq!(lin.padded_out(), 224);
        for r in 0..m {
            for o in 0..lin.padded_out() {
                let got = y[r * 224 + o];
                if o >= n {
                    assert_eq!(got, 0.0, "padding");
                    continue;
                }
                let terms = (0..k).map(|i| x[r * lda + i] as f64 * w[o * k + i] as f64);
                let want = terms.clone().sum::<f64>() + bias[o] as f64;
                // f32 accumulation over k terms: a bound relative to the sum of magnitudes.
                let bound = 1e-5 * terms.map(f64::abs).sum::<f64>();
                let err = (got as f64 - want).abs();
                assert!(err <= bound, "({r}, {o}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn half_precision_weights_are_widened_exactly() {
        // bf16 / f16 weights give bit for bit what their f32 widening gives.
        let (m, k, n) = (5, 40, 33);
        let x = values(m * k, 4);
        let w = values(n * k, 5);
        let bias = values(n, 6);
        let bf16: Vec<u8> = w
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect();
        let f16: Vec<u8> = w
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        for (dtype, bytes) in [(WanDtype::Bf16, bf16), (WanDtype::F16, f16)] {
            let stored = Stored::from_bytes(dtype, bytes);
            let wide = stored.to_f32();
            assert!(wide.iter().zip(&w).any(|(a, b)| a != b), "{dtype:?} rounds");
            let half = Linear::new(k, n, stored, bias.clone());
            let full = Linear::new(
                k,
                n,
                Stored::from_bytes(WanDtype::F32, f32_bytes(&wide)),
                bias.clone(),
            );
            assert_eq!(half.apply(m, &x, k), full.apply(m, &x, k), "{dtype:?}");
        }
        // Stacking mixed types widens them all.
        let mixed = Stored::concat(vec![
            Stored::from_bytes(WanDtype::Bf16, vec![0x80, 0x3f]),
            Stored::from_bytes(WanDtype::F32, f32_bytes(&[2.5])),
        ]);
        assert_eq!(mixed.to_f32(), vec![1.0, 2.5]);
    }
}
