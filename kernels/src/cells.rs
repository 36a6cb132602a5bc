//! Cells back to pixels: the inverse of net.py's `to_cells` (PyTorch's `pixel_shuffle`),
//! written channels-last so the result is already a `Clip`'s pixel order. Cell channel
//! `c * patch^2 + dy * patch + dx` at grid position (y, x) is colour `c` of pixel
//! (y * patch + dy, x * patch + dx). Cells need no weights: they replace an autoencoder.

use crate::tensor::Tensor;

/// `cells [N, 3 * patch^2, h, w]` -> pixels `[N, h * patch, w * patch, 3]`, values unchanged.
pub fn cells_to_pixels(cells: &Tensor, patch: usize) -> Tensor {
    let [n, ch, h, w] = match cells.shape[..] {
        [n, ch, h, w] => [n, ch, h, w],
        _ => panic!("cells must be [N, C, h, w], got {:?}", cells.shape),
    };
    assert_eq!(
        ch,
        3 * patch * patch,
        "{ch} cell channels for patch {patch}"
    );
    let (ph, pw) = (h * patch, w * patch);
    let mut out = vec![0.0f32; n * ph * pw * 3];
    for (img, pixels) in out.chunks_exact_mut(ph * pw * 3).enumerate() {
        let src = &cells.data[img * ch * h * w..(img + 1) * ch * h * w];
        for (k, &v) in src.iter().enumerate() {
            let (c, rest) = (k / (patch * patch * h * w), k % (patch * patch * h * w));
            let (d, pos) = (rest / (h * w), rest % (h * w));
            let (y, x) = ((pos / w) * patch + d / patch, (pos % w) * patch + d % patch);
            pixels[(y * pw + x) * 3 + c] = v;
        }
    }
    Tensor::new(&[n, ph, pw, 3], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_shuffle_order() {
        // patch 2, one 1x2 grid: channel c*4 + dy*2 + dx holds value 100c + 10dy + dx + 1000x.
        let (patch, w) = (2, 2);
        let mut data = Vec::new();
        for c in 0..3 {
            for dy in 0..2 {
                for dx in 0..2 {
                    for x in 0..w {
                        data.push((100 * c + 10 * dy + dx + 1000 * x) as f32);
                    }
                }
            }
        }
        let px = cells_to_pixels(&Tensor::new(&[1, 12, 1, w], data), patch);
        assert_eq!(px.shape, [1, 2, 4, 3]);
        for y in 0..2 {
            for x in 0..4 {
                for c in 0..3 {
                    let want = 100 * c + 10 * y + x % 2 + 1000 * (x / 2);
                    assert_eq!(
                        px.data[(y * 4 + x) * 3 + c],
                        want as f32,
                        "pixel ({y}, {x}) colour {c}"
                    );
                }
            }
        }
    }
}
