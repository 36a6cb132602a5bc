//! The transformer's memory-bound ops between GEMMs (`wan_norm.cu`), as [`WanCuda`] methods:
//!
//! - [`WanCuda::modulation`]: `table + emb`, the rows `shift, scale, gate, c_shift, c_scale,
//!   c_gate` of a block (or `shift, scale` of the output head), f32;
//! - [`WanCuda::modulated_layer_norm`]: `LN(x) (1 + scale) + shift` (`modulated_norm` of
//!   transformer.rs), the input of the QKV and FFN GEMMs and of the output head, bf16;
//! - [`WanCuda::layer_norm_affine`]: the cross-attention's `norm2` (`cross_attn_norm`), bf16;
//! - [`WanCuda::rms_norm_rope`]: q/k RMSNorm across heads, then 3D RoPE (self-attention) or
//!   not (cross-attention, and the text keys once per prompt), bf16 for attention;
//! - [`WanCuda::patchify`] / [`WanCuda::unpatchify`]: the patch embedding's and the output
//!   head's token layouts around their GEMMs.
//!
//! Not here: bias, GELU-tanh and the (gated) residual adds are GEMM epilogues (`gemm.rs`); the
//! gates are rows 2 and 5 of the same modulation buffer (`[items, 6, C]`, see
//! [`WanCuda::modulated_layer_norm`]).
//! Without `cross_attn_norm` the cross-attention reads `x` itself: `WanCuda::f32_to_bf16`
//! (`step.rs`) makes its bf16 copy.

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::WanCuda;
use crate::cuda::check;
use crate::cuda::ptx::Source;
use crate::error::KernelError;

/// The `wan_norm.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_norm.cu",
    code: wan_source!("wan_norm.cu"),
    kernels: &[
        "wan_modulation",
        "wan_modulated_layer_norm",
        "wan_layer_norm_affine",
        "wan_rms_norm_rope",
        "wan_patchify",
        "wan_unpatchify",
    ],
};

/// Threads per block of the grid-stride (elementwise) kernels.
const ELEMENT_THREADS: usize = 256;
/// Grid cap of the grid-stride kernels: enough blocks to fill any current GPU.
const MAX_BLOCKS: usize = 1 << 16;
/// Most threads per block of a row kernel: 8 warps keep 6 columns per thread at C = 1536.
const MAX_ROW_THREADS: usize = 256;

/// The launch of a grid-stride kernel over `n > 0` elements.
pub(super) fn grid_config(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            n.div_ceil(ELEMENT_THREADS).clamp(1, MAX_BLOCKS) as u32,
            1,
            1,
        ),
        block_dim: (ELEMENT_THREADS as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Threads of a row kernel's block for rows of `work` units (columns, or column pairs): whole
/// warps (its block reduction shuffles full warps), enough for one unit per thread up to
/// [`MAX_ROW_THREADS`]. The tiny model's rows of 28 get one warp, the 1.3B's of 1536 eight.
pub(super) fn row_threads(work: usize) -> u32 {
    (work.div_ceil(32).clamp(1, MAX_ROW_THREADS / 32) * 32) as u32
}

/// One block per row: the launch of a row kernel over `rows` rows of `work` units each, or
/// `None` when there are no rows. Errors if `rows` exceeds the grid's x range.
fn row_config(rows: usize, work: usize) -> Result<Option<LaunchConfig>, KernelError> {
    if rows == 0 {
        return Ok(None);
    }
    if rows > i32::MAX as usize {
        return Err(invalid(format!(
            "{rows} rows exceed a grid of {} blocks",
            i32::MAX
        )));
    }
    Ok(Some(LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (row_threads(work), 1, 1),
        shared_mem_bytes: 0,
    }))
}

/// A bad argument, as the launch methods report it.
pub(super) fn invalid(message: String) -> KernelError {
    KernelError::InvalidArgument(message)
}

/// `v` as the kernels' `int`, or an error naming it.
pub(super) fn int(v: usize, what: &str) -> Result<i32, KernelError> {
    i32::try_from(v).map_err(|_| invalid(format!("{what} {v} exceeds a 32-bit int")))
}

/// Rows of a matrix inside a device buffer: row `r` starts at element `offset + r * ld`.
/// The launch methods take it as an `(offset, ld)` pair (e.g. the k columns of a stacked QKV
/// output `[rows, 3C]`: `(C, 3C)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RowLayout {
    /// Element index of row 0's first column.
    pub(super) offset: usize,
    /// Elements from one row to the next.
    pub(super) ld: usize,
}

impl RowLayout {
    /// Checks that `rows` rows of `cols` columns fit a buffer of `len` elements.
    pub(super) fn check_fits(
        &self,
        what: &str,
        len: usize,
        rows: usize,
        cols: usize,
    ) -> Result<(), KernelError> {
        if self.ld < cols {
            return Err(invalid(format!(
                "{what}: rows {} apart cannot hold {cols} columns",
                self.ld
            )));
        }
        let end = match rows {
            0 => 0,
            _ => (rows - 1) * self.ld + self.offset + cols,
        };
        if end > len {
            return Err(invalid(format!(
                "{what}: {rows} rows of {cols} at offset {} ld {} need {end} elements, the buffer has {len}",
                self.offset, self.ld
            )));
        }
        Ok(())
    }
}

impl From<(usize, usize)> for RowLayout {
    fn from((offset, ld): (usize, usize)) -> RowLayout {
        RowLayout { offset, ld }
    }
}

/// Where the modulated norm of `items` items finds its shift and scale: `(stride, shift,
/// scale)` element offsets in a modulation buffer of `len` f32 laid out `[items, R, c]`, given
/// the row numbers `[shift, scale]` (both below `R`). Errors unless `len` is exactly that.
fn modulation_offsets(
    len: usize,
    items: usize,
    c: usize,
    rows: [usize; 2],
) -> Result<(usize, usize, usize), KernelError> {
    let per_item = items * c;
    let r = len.checked_div(per_item).unwrap_or(0);
    if per_item == 0 || r * per_item != len || rows.iter().any(|&row| row >= r) {
        return Err(invalid(format!(
            "modulation of {len} values is not [{items}, R, {c}] with rows {rows:?} below R"
        )));
    }
    Ok((r * c, rows[0] * c, rows[1] * c))
}

impl WanCuda {
    /// `out[b, j] = table[j] + emb[b, j % emb_len]` (f32): item `b`'s modulation rows from the
    /// time embedding `emb` (`[B, emb_len]`, dense). A block: `table` its
    /// `scale_shift_table` (6C), `emb` the time projection (`emb_len` 6C). The output head:
    /// `table` its `scale_shift_table` (2C), `emb` temb (`emb_len` C). `out` holds
    /// `B * table.len()` values.
    pub fn modulation(
        &self,
        table: &CudaSlice<f32>,
        emb: &CudaSlice<f32>,
        emb_len: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), KernelError> {
        let len = table.len();
        if emb_len == 0 || !emb.len().is_multiple_of(emb_len) || !len.is_multiple_of(emb_len) {
            return Err(invalid(format!(
                "modulation: table of {len} and embedding of {} are not whole rows of {emb_len}",
                emb.len()
            )));
        }
        let batch = emb.len() / emb_len;
        if out.len() != batch * len {
            return Err(invalid(format!(
                "modulation: output of {} for {batch} items of {len}",
                out.len()
            )));
        }
        if out.is_empty() {
            return Ok(());
        }
        let cfg = grid_config(out.len());
        let (len, emb_len, batch) = (len as u64, emb_len as u64, batch as u64);
        let mut l = self.stream.launch_builder(self.kernel("wan_modulation"));
        l.arg(table).arg(emb).arg(out);
        l.arg(&len).arg(&emb_len).arg(&batch);
        // SAFETY: grid-stride over batch * len outputs; table holds len, emb batch * emb_len
        // (checked above); argument types match the kernel.
        check(unsafe { l.launch(cfg) }, "wan_modulation");
        Ok(())
    }

    /// `out = bf16(LN(x) (1 + scale) + shift)` for the f32 residual stream `x` (`[rows, c]`,
    /// dense): LayerNorm without affine parameters (biased variance, `eps`), row `r`
    /// modulated by item `r / rows_per_item`'s shift and scale. `mods` is
    /// [`WanCuda::modulation`]'s f32 output `[items, R, c]` and `mod_rows` = `[shift, scale]`
    /// picks its rows: a block's (`R` = 6: shift, scale, gate, c_shift, c_scale, c_gate) `[0,
    /// 1]` before self-attention and `[3, 4]` before the FFN; the output head's (`R` = 2)
    /// `[0, 1]`. `out` is bf16 `[rows, c]`, dense.
    #[allow(clippy::too_many_arguments)]
    pub fn modulated_layer_norm(
        &self,
        x: &CudaSlice<f32>,
        c: usize,
        rows_per_item: usize,
        mods: &CudaSlice<f32>,
        mod_rows: [usize; 2],
        eps: f32,
        out: &mut CudaSlice<u16>,
    ) -> Result<(), KernelError> {
        let rows = whole_rows("modulated_layer_norm", x.len(), c, out.len())?;
        if rows_per_item == 0 || !rows.is_multiple_of(rows_per_item) {
            return Err(invalid(format!(
                "modulated_layer_norm: {rows} rows are not items of {rows_per_item}"
            )));
        }
        let Some(cfg) = row_config(rows, c)? else {
            return Ok(());
        };
        let (stride, shift, scale) =
            modulation_offsets(mods.len(), rows / rows_per_item, c, mod_rows)?;
        let (stride, shift, scale) = (stride as u64, shift as u64, scale as u64);
        let (per_item, c) = (rows_per_item as u64, int(c, "columns")?);
        let mut l = self
            .stream
            .launch_builder(self.kernel("wan_modulated_layer_norm"));
        l.arg(x).arg(out).arg(mods);
        l.arg(&stride).arg(&shift).arg(&scale).arg(&per_item);
        l.arg(&c).arg(&eps);
        // SAFETY: one block per row of x and out (both rows * c); every item's shift and
        // scale rows lie inside mods (checked above); argument types match the kernel.
        check(unsafe { l.launch(cfg) }, "wan_modulated_layer_norm");
        Ok(())
    }

    /// `out = bf16(LN(x) w + b)`: LayerNorm with weight and bias (`cross_attn_norm`'s
    /// `norm2`, f32 `[c]` each) of the f32 residual stream `x` (`[rows, c]`, dense) into bf16
    /// `[rows, c]`, dense.
    pub fn layer_norm_affine(
        &self,
        x: &CudaSlice<f32>,
        weight: &CudaSlice<f32>,
        bias: &CudaSlice<f32>,
        eps: f32,
        out: &mut CudaSlice<u16>,
    ) -> Result<(), KernelError> {
        let c = weight.len();
        if bias.len() != c {
            return Err(invalid(format!(
                "layer_norm_affine: weight of {c}, bias of {}",
                bias.len()
            )));
        }
        let rows = whole_rows("layer_norm_affine", x.len(), c, out.len())?;
        let Some(cfg) = row_config(rows, c)? else {
            return Ok(());
        };
        let c = int(c, "columns")?;
        let mut l = self
            .stream
            .launch_builder(self.kernel("wan_layer_norm_affine"));
        l.arg(x).arg(out).arg(weight).arg(bias).arg(&c).arg(&eps);
        // SAFETY: one block per row of x and out (both rows * c); weight and bias hold c
        // (checked above); argument types match the kernel.
        check(unsafe { l.launch(cfg) }, "wan_layer_norm_affine");
        Ok(())
    }

    /// RMSNorm across all heads (`x * w / sqrt(mean(x^2) + eps)` over a row's `C = heads *
    /// head_dim` columns, `C = weight.len()`, `weight` f32), then, given the `(cos, sin)`
    /// tables, Wan's 3D RoPE on each head's interleaved pairs: of `rows` f32 rows of `x` at
    /// `x_at` = `(offset, ld)` (the q or k columns of a projection's output) into bf16 `out`
    /// `[rows, C]`, dense (attention's `[items, tokens, heads, head_dim]`).
    ///
    /// The tables are rope.rs's, f32 `[tokens, head_dim / 2]` each (angles in f64, rounded to
    /// f32; pair `j` of every head uses column `j`); row `r` is token `r % tokens`, the items
    /// of a batch sharing one grid. Without them (cross-attention's q, the text's k) the rows
    /// are only normed.
    #[allow(clippy::too_many_arguments)]
    pub fn rms_norm_rope(
        &self,
        x: &CudaSlice<f32>,
        x_at: (usize, usize),
        rows: usize,
        weight: &CudaSlice<f32>,
        head_dim: usize,
        eps: f32,
        rope: Option<(&CudaSlice<f32>, &CudaSlice<f32>)>,
        out: &mut CudaSlice<u16>,
    ) -> Result<(), KernelError> {
        let c = weight.len();
        check_heads(c, head_dim)?;
        RowLayout::from(x_at).check_fits("rms_norm_rope input", x.len(), rows, c)?;
        if out.len() != rows * c {
            return Err(invalid(format!(
                "rms_norm_rope: output of {} for {rows} rows of {c}",
                out.len()
            )));
        }
        // Without RoPE the kernel never reads a table; the weight stands in as a valid pointer.
        let (cos, sin, tokens) = match rope {
            Some((cos, sin)) => (cos, sin, rope_tokens(cos.len(), sin.len(), head_dim, rows)?),
            None => (weight, weight, 1),
        };
        let Some(cfg) = row_config(rows, c / 2)? else {
            return Ok(());
        };
        let (x_off, ldx) = (x_at.0 as u64, x_at.1 as u64);
        let (c, head_dim) = (int(c, "columns")?, int(head_dim, "head_dim")?);
        let (tokens, has_rope) = (tokens as u64, rope.is_some() as i32);
        let mut l = self.stream.launch_builder(self.kernel("wan_rms_norm_rope"));
        l.arg(x).arg(&x_off).arg(&ldx);
        l.arg(out).arg(weight).arg(&c).arg(&head_dim).arg(&eps);
        l.arg(cos).arg(sin).arg(&tokens).arg(&has_rope);
        // SAFETY: one block per row; every row's c columns lie inside x and out (checked
        // above); the weight holds c, the tables tokens * head_dim / 2 and the kernel reads
        // row % tokens; argument types match the kernel.
        check(unsafe { l.launch(cfg) }, "wan_rms_norm_rope");
        Ok(())
    }

    /// The f32 latent `[C, F, H, W]` (`shape`) as the patch-embedding GEMM's bf16 input:
    /// `[tokens, C pt ph pw]` (tokens the `F/pt x H/ph x W/pw` grid, frame-major; columns the
    /// Conv3d weight's `(c, a, b, e)` order), as transformer.rs's patchify.
    pub fn patchify(
        &self,
        latent: &CudaSlice<f32>,
        shape: [usize; 4],
        patch: [usize; 3],
        out: &mut CudaSlice<u16>,
    ) -> Result<(), KernelError> {
        let tokens = patch_tokens(shape, patch)?;
        let [c, f, h, w] = shape;
        let pv = c * patch.iter().product::<usize>();
        if latent.len() != c * f * h * w || out.len() != tokens * pv {
            return Err(invalid(format!(
                "patchify: latent of {} for {shape:?}, output of {} for {tokens} x {pv}",
                latent.len(),
                out.len()
            )));
        }
        if out.is_empty() {
            return Ok(());
        }
        let [c, f, h, w] = shape.map(|v| v as u64);
        let [pt, ph, pw] = patch.map(|v| v as u64);
        let cfg = grid_config(out.len());
        let mut l = self.stream.launch_builder(self.kernel("wan_patchify"));
        l.arg(latent).arg(out);
        l.arg(&c).arg(&f).arg(&h).arg(&w).arg(&pt).arg(&ph).arg(&pw);
        // SAFETY: grid-stride over the tokens * pv outputs; every index read is inside the
        // latent of c f h w (the patch divides the grid, checked above).
        check(unsafe { l.launch(cfg) }, "wan_patchify");
        Ok(())
    }

    /// The output head's f32 GEMM rows `y` (`items x tokens` rows `ldy` apart, each token's
    /// `pt ph pw Cout` values channel-fastest) back to f32 latents `[items, Cout, F, H, W]`
    /// (`shape` = `[Cout, F, H, W]`), as transformer.rs's unpatchify.
    pub fn unpatchify(
        &self,
        y: &CudaSlice<f32>,
        ldy: usize,
        shape: [usize; 4],
        patch: [usize; 3],
        out: &mut CudaSlice<f32>,
    ) -> Result<(), KernelError> {
        let tokens = patch_tokens(shape, patch)?;
        let [co, f, h, w] = shape;
        let per_item = co * f * h * w;
        if per_item == 0 || !out.len().is_multiple_of(per_item) {
            return Err(invalid(format!(
                "unpatchify: output of {} is not latents of {shape:?}",
                out.len()
            )));
        }
        if out.is_empty() {
            return Ok(());
        }
        let items = out.len() / per_item;
        let cols = co * patch.iter().product::<usize>();
        RowLayout::from((0, ldy)).check_fits("unpatchify input", y.len(), items * tokens, cols)?;
        let [co, f, h, w] = shape.map(|v| v as u64);
        let [pt, ph, pw] = patch.map(|v| v as u64);
        let (ldy, items) = (ldy as u64, items as u64);
        let cfg = grid_config(out.len());
        let mut l = self.stream.launch_builder(self.kernel("wan_unpatchify"));
        l.arg(y).arg(&ldy).arg(out).arg(&items);
        l.arg(&co)
            .arg(&f)
            .arg(&h)
            .arg(&w)
            .arg(&pt)
            .arg(&ph)
            .arg(&pw);
        // SAFETY: grid-stride over the items * per_item outputs; every row read is one of the
        // items * tokens rows of cols columns inside y (checked above).
        check(unsafe { l.launch(cfg) }, "wan_unpatchify");
        Ok(())
    }
}

/// Rows of `c` in an input of `len` whose output has `out_len` elements, or an error.
fn whole_rows(what: &str, len: usize, c: usize, out_len: usize) -> Result<usize, KernelError> {
    if c == 0 || !len.is_multiple_of(c) || out_len != len {
        return Err(invalid(format!(
            "{what}: input of {len} and output of {out_len} are not equal whole rows of {c}"
        )));
    }
    Ok(len / c)
}

/// Tokens of RoPE tables of `cos_len` and `sin_len` values for heads `head_dim` wide, which
/// must divide `rows` (items of one grid), or an error.
fn rope_tokens(
    cos_len: usize,
    sin_len: usize,
    head_dim: usize,
    rows: usize,
) -> Result<usize, KernelError> {
    let half = head_dim / 2;
    let tokens = cos_len / half.max(1);
    if half == 0
        || tokens == 0
        || cos_len != tokens * half
        || sin_len != cos_len
        || !rows.is_multiple_of(tokens)
    {
        return Err(invalid(format!(
            "rms_norm_rope: RoPE tables of {cos_len} and {sin_len} for heads {head_dim} wide, {rows} rows"
        )));
    }
    Ok(tokens)
}

/// Checks that `c` columns are whole heads of an even `head_dim`.
fn check_heads(c: usize, head_dim: usize) -> Result<(), KernelError> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) || !c.is_multiple_of(head_dim) || c == 0 {
        return Err(invalid(format!(
            "rms_norm_rope: {c} columns are not heads of an even width {head_dim}"
        )));
    }
    Ok(())
}

/// Tokens of the patch grid of `shape` (`[C, F, H, W]`), or an error if `patch` does not
/// divide it.
fn patch_tokens(shape: [usize; 4], patch: [usize; 3]) -> Result<usize, KernelError> {
    let [_, f, h, w] = shape;
    let [pt, ph, pw] = patch;
    if pt == 0 || ph == 0 || pw == 0 || f % pt != 0 || h % ph != 0 || w % pw != 0 {
        return Err(invalid(format!(
            "latent {shape:?} is not whole patches of {patch:?}"
        )));
    }
    Ok((f / pt) * (h / ph) * (w / pw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_blocks_are_whole_warps_up_to_eight() {
        // The tiny model: rows of 28 (and 14 pairs); the 1.3B: 1536 (768 pairs); the 14B 5120.
        assert_eq!(row_threads(28), 32);
        assert_eq!(row_threads(14), 32);
        assert_eq!(row_threads(33), 64);
        assert_eq!(row_threads(1536), 256);
        assert_eq!(row_threads(768), 256);
        assert_eq!(row_threads(5120), 256);
        assert_eq!(row_threads(0), 32);
        for work in 0..3000 {
            let t = row_threads(work) as usize;
            assert!(t.is_multiple_of(32) && (32..=MAX_ROW_THREADS).contains(&t));
            assert!(t >= work.min(MAX_ROW_THREADS), "{work} units, {t} threads");
        }
    }

    #[test]
    fn row_grids_cover_every_row() {
        assert!(row_config(0, 28).unwrap().is_none());
        let cfg = row_config(65_520, 1536).unwrap().unwrap();
        assert_eq!(cfg.grid_dim, (65_520, 1, 1));
        assert_eq!(cfg.block_dim, (256, 1, 1));
        assert!(row_config(i32::MAX as usize + 1, 28).is_err());
    }

    #[test]
    fn grid_stride_launches_are_capped() {
        assert_eq!(grid_config(1).grid_dim.0, 1);
        assert_eq!(grid_config(256).grid_dim.0, 1);
        assert_eq!(grid_config(257).grid_dim.0, 2);
        assert_eq!(grid_config(1 << 40).grid_dim.0, MAX_BLOCKS as u32);
    }

    #[test]
    fn modulation_rows_are_found_and_bounded() {
        let c = 1536;
        // A block's [2, 6, C]: the FFN's shift and scale rows of item 0 at 3C and 4C.
        assert_eq!(
            modulation_offsets(12 * c, 2, c, [3, 4]).unwrap(),
            (6 * c, 3 * c, 4 * c)
        );
        assert_eq!(
            modulation_offsets(12 * c, 2, c, [0, 1]).unwrap(),
            (6 * c, 0, c)
        );
        // The head's [1, 2, 28].
        assert_eq!(modulation_offsets(56, 1, 28, [0, 1]).unwrap(), (56, 0, 28));
        assert!(modulation_offsets(56, 1, 28, [0, 2]).is_err());
        assert!(modulation_offsets(12 * c - 1, 2, c, [0, 1]).is_err());
        assert!(modulation_offsets(0, 0, c, [0, 1]).is_err());
    }

    #[test]
    fn rope_tables_must_cover_the_grid() {
        // 2 items of 6 tokens, heads of 14 (7 pairs).
        assert_eq!(rope_tokens(42, 42, 14, 12).unwrap(), 6);
        assert!(rope_tokens(42, 41, 14, 12).is_err());
        assert!(rope_tokens(43, 43, 14, 12).is_err());
        assert!(rope_tokens(42, 42, 14, 13).is_err());
        assert!(rope_tokens(0, 0, 14, 0).is_err());
        assert_eq!(
            rope_tokens(64 * 32_760, 64 * 32_760, 128, 65_520).unwrap(),
            32_760
        );
    }

    #[test]
    fn row_layouts_are_bounds_checked() {
        // The k columns of a QKV output [5, 3C], C = 28.
        let k = RowLayout::from((28, 84));
        assert!(k.check_fits("k", 5 * 84, 5, 28).is_ok());
        assert!(k.check_fits("k", 5 * 84 - 29, 5, 28).is_err());
        let v = RowLayout::from((56, 84));
        assert!(v.check_fits("v", 5 * 84, 5, 28).is_ok());
        assert!(v.check_fits("v", 5 * 84 - 1, 5, 28).is_err());
        assert!(RowLayout::from((0, 28)).check_fits("x", 0, 0, 28).is_ok());
        assert!(RowLayout::from((0, 27))
            .check_fits("x", 1000, 2, 28)
            .is_err());
    }

    #[test]
    fn shapes_are_validated() {
        assert_eq!(whole_rows("t", 56, 28, 56).unwrap(), 2);
        assert!(whole_rows("t", 57, 28, 57).is_err());
        assert!(whole_rows("t", 56, 28, 28).is_err());
        assert!(whole_rows("t", 0, 0, 0).is_err());
        assert!(check_heads(28, 14).is_ok());
        assert!(check_heads(1536, 128).is_ok());
        assert!(check_heads(27, 9).is_err());
        assert!(check_heads(28, 0).is_err());
        assert!(check_heads(30, 14).is_err());
        assert_eq!(patch_tokens([5, 3, 16, 18], [1, 2, 3]).unwrap(), 3 * 8 * 6);
        assert_eq!(patch_tokens([16, 21, 60, 104], [1, 2, 2]).unwrap(), 32_760);
        assert!(patch_tokens([5, 3, 15, 18], [1, 2, 3]).is_err());
        assert!(patch_tokens([5, 3, 16, 18], [0, 2, 3]).is_err());
    }
}
