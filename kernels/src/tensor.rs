//! A minimal host tensor: a shape and a dense row-major `Vec<f32>`. It is what crosses the
//! `Backend` boundary (upload / download) and what weights are loaded into; backends keep
//! their own device-side representation.

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor over `data`; panics when the lengths disagree (a programming error, never input).
    pub fn new(shape: &[usize], data: Vec<f32>) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "tensor shape {shape:?} does not match {} values", data.len());
        Tensor { shape: shape.to_vec(), data }
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::new(shape, vec![0.0; shape.iter().product()])
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The same values under another shape of equal size.
    pub fn reshape(mut self, shape: &[usize]) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), self.data.len(), "cannot reshape {:?} to {shape:?}", self.shape);
        self.shape = shape.to_vec();
        self
    }

    /// Axes reordered: output axis `i` is input axis `perm[i]` (like `torch.permute`).
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        let rank = self.shape.len();
        assert_eq!(perm.len(), rank, "permutation {perm:?} of a rank {rank} tensor");
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut in_strides = vec![1; rank];
        for i in (0..rank.saturating_sub(1)).rev() {
            in_strides[i] = in_strides[i + 1] * self.shape[i + 1];
        }
        let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
        let mut data = Vec::with_capacity(self.data.len());
        let mut index = vec![0usize; rank];
        for _ in 0..self.data.len() {
            data.push(self.data[index.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
            for axis in (0..rank).rev() {
                index[axis] += 1;
                if index[axis] < shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Tensor { shape, data }
    }
}
