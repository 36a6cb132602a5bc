//! Launch geometry of the implicit-GEMM convolutions (`implicit_conv.cu`): the tile sizes the
//! kernels are written for, the grid that covers an output, and the limits of their 32-bit
//! indexing. Pure functions, so the geometry is tested without a GPU.
//!
//! Why 64 x 128: the built-in model's convolutions have 96-128 output channels (128 in the
//! shipped checkpoint; 108 for `conv_out`), so one 128-wide column tile covers every output
//! channel and each input patch is gathered once; 64 rows keep 512 blocks busy at batch 32
//! (2 x 32 clips of 8 frames of 8 x 8 pixels = 32768 rows), 128 at batch 8, on 132 SMs.

use cudarc::driver::LaunchConfig;

use crate::error::KernelError;

/// Output rows (pixels) per block: `BM` in implicit_conv.cu.
pub(crate) const TILE_ROWS: usize = 64;
/// Output channels per block: `BN`.
pub(crate) const TILE_COLS: usize = 128;
/// K (tap x input channel) values per step of the main loop: `BK`.
pub(crate) const TILE_K: usize = 16;
/// Threads per block: `THREADS`.
pub(crate) const TILE_THREADS: u32 = 256;

/// The shape of one implicit-GEMM convolution: `rows` output pixels (`N * H * W`), `taps`
/// neighbours each (9 or 3), `cin` input and `cout` output channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGemm {
    pub rows: usize,
    pub taps: usize,
    pub cin: usize,
    pub cout: usize,
}

impl ConvGemm {
    /// The launch covering every output value, after checking that every index the kernel
    /// computes (rows, `K = taps * cin`, and the element offsets it forms in 64 bits from
    /// 32-bit row and channel numbers) fits its `int`s.
    pub(crate) fn launch(&self) -> Result<LaunchConfig, KernelError> {
        let ConvGemm {
            rows,
            taps,
            cin,
            cout,
        } = *self;
        let fits = |v: usize| i32::try_from(v).is_ok();
        if cin == 0
            || cout == 0
            || !(fits(rows + TILE_ROWS) && fits(taps * cin + TILE_K) && fits(cout))
        {
            return Err(KernelError::InvalidArgument(format!(
                "implicit convolution of {rows} rows, {taps} taps, {cin} -> {cout} channels is \
                 outside the kernel's 32-bit range"
            )));
        }
        let grid = |n: usize, tile: usize| {
            u32::try_from(n.div_ceil(tile)).map_err(|_| {
                KernelError::InvalidArgument(format!("{n} is too many for one grid axis"))
            })
        };
        let blocks_y = grid(cout, TILE_COLS)?;
        if blocks_y > 65_535 {
            return Err(KernelError::InvalidArgument(format!(
                "{cout} output channels need more than 65535 column blocks"
            )));
        }
        Ok(LaunchConfig {
            grid_dim: (grid(rows, TILE_ROWS)?, blocks_y, 1),
            block_dim: (TILE_THREADS, 1, 1),
            shared_mem_bytes: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust constants are the ones the kernels are compiled with.
    #[test]
    fn constants_match_the_kernel_source() {
        let src = include_str!("implicit_conv.cu");
        for (name, value) in [
            ("BM", TILE_ROWS),
            ("BN", TILE_COLS),
            ("BK", TILE_K),
            ("THREADS", TILE_THREADS as usize),
        ] {
            assert!(
                src.contains(&format!("#define {name} {value}\n")),
                "implicit_conv.cu does not define {name} as {value}"
            );
        }
        // The loaders split the tiles evenly among the threads, and each warp's 32 x 32 share
        // of the 8 warps tiles the block: 2 x 4 warps of 32 x 32 = 64 x 128.
        assert_eq!(TILE_ROWS * TILE_K % TILE_THREADS as usize, 0);
        assert_eq!(TILE_K * TILE_COLS % TILE_THREADS as usize, 0);
        assert_eq!(TILE_THREADS as usize / 16, TILE_K, "16 threads per B row");
        assert_eq!(
            (TILE_ROWS / 32) * (TILE_COLS / 32),
            TILE_THREADS as usize / 32
        );
        assert_eq!(TILE_K % 8, 0, "whole m16n8k8 steps");
    }

    #[test]
    fn the_grid_covers_every_output_once() {
        let cases = [
            // (rows, cout, blocks x, blocks y)
            (32_768, 128, 512, 1), // a block's conv at batch 32
            (32_768, 108, 512, 1), // conv_out
            (1_024, 128, 16, 1),   // batch 1
            (70, 6, 2, 1),         // an odd test shape
            (64, 129, 1, 2),
            (65, 256, 2, 2),
        ];
        for (rows, cout, bx, by) in cases {
            let cfg = ConvGemm {
                rows,
                taps: 9,
                cin: 5,
                cout,
            }
            .launch()
            .unwrap();
            assert_eq!(cfg.grid_dim, (bx, by, 1), "{rows} rows x {cout}");
            assert_eq!(cfg.block_dim, (TILE_THREADS, 1, 1));
            let (gx, gy) = (cfg.grid_dim.0 as usize, cfg.grid_dim.1 as usize);
            assert!(gx * TILE_ROWS >= rows && (gx - 1) * TILE_ROWS < rows);
            assert!(gy * TILE_COLS >= cout && (gy - 1) * TILE_COLS < cout);
        }
    }

    #[test]
    fn shapes_past_the_32_bit_indices_are_refused() {
        let ok = ConvGemm {
            rows: 1 << 20,
            taps: 9,
            cin: 128,
            cout: 128,
        };
        assert!(ok.launch().is_ok());
        for bad in [
            ConvGemm {
                rows: i32::MAX as usize,
                ..ok
            },
            ConvGemm {
                cin: i32::MAX as usize / 4,
                ..ok
            },
            ConvGemm { cin: 0, ..ok },
            ConvGemm { cout: 0, ..ok },
        ] {
            assert!(
                matches!(bad.launch(), Err(KernelError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }
}
