//! A minimal host tensor: a shape and a dense row-major `Vec<f32>`. It is what crosses the
//! `Backend` boundary (upload / download) and what weights are loaded into; backends keep
//! their own device-side representation.

/// A host tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values, row-major; as many as the shape's product.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor over `data`; panics when the lengths disagree (a programming error, never input).
    pub fn new(shape: &[usize], data: Vec<f32>) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "tensor shape {shape:?} does not match {} values",
            data.len()
        );
        Tensor {
            shape: shape.to_vec(),
            data,
        }
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::new(shape, vec![0.0; shape.iter().product()])
    }

    /// Number of values.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The same values under another shape of equal size.
    pub fn reshape(mut self, shape: &[usize]) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            self.data.len(),
            "cannot reshape {:?} to {shape:?}",
            self.shape
        );
        self.shape = shape.to_vec();
        self
    }

    /// Axes reordered: output axis `i` is input axis `perm[i]` (like `torch.permute`).
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        let rank = self.shape.len();
        assert!(
            rank > 0 && perm.len() == rank,
            "permutation {perm:?} of a rank {rank} tensor"
        );
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut in_strides = vec![1; rank];
        for i in (0..rank.saturating_sub(1)).rev() {
            in_strides[i] = in_strides[i + 1] * self.shape[i + 1];
        }
        let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
        // Walk the output in order, moving the source offset by the permuted strides.
        let (inner, inner_stride) = (shape[rank - 1], strides[rank - 1]);
        let mut data = Vec::with_capacity(self.data.len());
        let mut index = vec![0usize; rank];
        let mut src = 0usize;
        while data.len() < self.data.len() {
            data.extend((0..inner).map(|i| self.data[src + i * inner_stride]));
            for axis in (0..rank - 1).rev() {
                index[axis] += 1;
                src += strides[axis];
                if index[axis] < shape[axis] {
                    break;
                }
                src -= strides[axis] * shape[axis];
                index[axis] = 0;
            }
        }
        Tensor { shape, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_moves_axes() {
        let t = Tensor::new(&[2, 3, 4], (0..24).map(|v| v as f32).collect());
        let p = t.permute(&[2, 0, 1]);
        assert_eq!(p.shape, [4, 2, 3]);
        for (i, j, k) in
            (0..2).flat_map(|i| (0..3).flat_map(move |j| (0..4).map(move |k| (i, j, k))))
        {
            assert_eq!(p.data[(k * 2 + i) * 3 + j], t.data[(i * 3 + j) * 4 + k]);
        }
        assert_eq!(
            p.permute(&[1, 2, 0]),
            t,
            "the inverse permutation restores the tensor"
        );
    }
}
