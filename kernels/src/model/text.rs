//! `TextEncoder` of net.py: token embedding + position, masked mean pooling (host side: a few
//! hundred floats), then fc1 -> SiLU -> fc2 on the backend. An all-padding caption yields the
//! learned `null` vector, the unconditional input of classifier-free guidance.

use super::layers::Linear;
use super::weights::Weights;
use crate::backend::Backend;
use crate::error::KernelError;
use crate::tensor::Tensor;

pub(crate) struct TextEncoder<B: Backend> {
    tok: Tensor,
    pos: Tensor,
    null: Tensor,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

/// Token embedding width: net.py's TextEncoder default, not part of the config.
const WIDTH: usize = 64;

impl<B: Backend> TextEncoder<B> {
    pub(crate) fn load(
        be: &B,
        w: &mut Weights,
        vocab: usize,
        max_tokens: usize,
        emb: usize,
    ) -> Result<Self, KernelError> {
        Ok(TextEncoder {
            tok: w.take("text.tok.weight", &[vocab, WIDTH])?,
            pos: w.take("text.pos", &[max_tokens, WIDTH])?,
            null: w.take("text.null", &[emb])?,
            fc1: Linear::load(be, w, "text.fc1", WIDTH, emb)?,
            fc2: Linear::load(be, w, "text.fc2", emb, emb)?,
        })
    }

    /// Token id rows (each `max_tokens` long, 0 = padding, ids < vocab) -> `[rows, emb]`.
    pub(crate) fn forward(&self, be: &B, ids: &[Vec<usize>]) -> Tensor {
        let d = WIDTH;
        let mut pooled = vec![0.0f32; ids.len() * d];
        for (row, out) in ids.iter().zip(pooled.chunks_exact_mut(d)) {
            let mut count = 0.0f32;
            for (j, &id) in row.iter().enumerate().filter(|(_, &id)| id > 0) {
                let (tok, pos) = (
                    &self.tok.data[id * d..(id + 1) * d],
                    &self.pos.data[j * d..(j + 1) * d],
                );
                for ((o, t), p) in out.iter_mut().zip(tok).zip(pos) {
                    *o += t + p;
                }
                count += 1.0;
            }
            out.iter_mut().for_each(|o| *o /= count.max(1.0));
        }
        let mut h = self
            .fc1
            .forward(be, &be.upload(&Tensor::new(&[ids.len(), d], pooled)));
        be.silu(&mut h);
        let mut c = be.download(&self.fc2.forward(be, &h));
        let emb = self.null.numel();
        for (row, out) in ids.iter().zip(c.data.chunks_exact_mut(emb)) {
            if row.iter().all(|&id| id == 0) {
                out.copy_from_slice(&self.null.data);
            }
        }
        c
    }
}
