//! The CPU backend's tensor: a host `Tensor` plus, when it serves as a weight, that weight
//! packed for the GEMM (`PackedB`: a conv2d weight's 16 Winograd matrices, a temporal conv's
//! three taps, a linear layer's transpose), made on first use so a forward pass never redoes
//! it. Every mutable access drops the packed form. A dropped tensor hands its storage back to
//! its backend's `Buffers`, which the next op's output reuses.

use std::sync::{Arc, Mutex, OnceLock};

use super::gemm::PackedB;
use crate::tensor::Tensor;

/// A tensor of the CPU backend.
#[derive(Debug)]
pub struct CpuTensor {
    host: Tensor,
    packed: OnceLock<Packed>,
    buffers: Arc<Buffers>,
}

/// A weight packed for one kind of op (the op's name guards against reuse by another).
#[derive(Debug)]
struct Packed {
    op: &'static str,
    mats: Vec<PackedB>,
}

impl CpuTensor {
    pub(crate) fn new(host: Tensor, buffers: &Arc<Buffers>) -> CpuTensor {
        CpuTensor {
            host,
            packed: OnceLock::new(),
            buffers: Arc::clone(buffers),
        }
    }

    /// The values.
    pub fn host(&self) -> &Tensor {
        &self.host
    }

    /// The values for writing; the packed form would be stale afterwards, so it is dropped.
    pub(crate) fn host_mut(&mut self) -> &mut Tensor {
        self.packed = OnceLock::new();
        &mut self.host
    }

    /// This tensor as the weight of `op`, packed by `pack` on first use.
    pub(crate) fn packed(
        &self,
        op: &'static str,
        pack: impl FnOnce(&Tensor) -> Vec<PackedB>,
    ) -> &[PackedB] {
        let packed = self.packed.get_or_init(|| Packed {
            op,
            mats: pack(&self.host),
        });
        assert_eq!(
            packed.op, op,
            "a tensor packed as a {} weight used as a {op} weight",
            packed.op
        );
        &packed.mats
    }
}

impl Drop for CpuTensor {
    fn drop(&mut self) {
        self.buffers.put(std::mem::take(&mut self.host.data));
    }
}

/// Storage of dropped tensors, for the outputs of later ops: a forward pass allocates the
/// same few sizes over and over, and fresh megabytes cost a page fault per 4 KiB (plus the
/// zeroing) every time, more than the norm that fills them.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    free: Mutex<Vec<Vec<f32>>>,
}

/// Buffers kept at most: the live activations of a pass are a handful.
const KEEP: usize = 8;

impl Buffers {
    /// `len` values of unspecified contents (whatever a dropped tensor left): the caller
    /// overwrites them all. Reuses the smallest kept buffer that is big enough.
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        let mut v = match best {
            Some(i) => free.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        drop(free);
        // Shrinking writes nothing; growing within the capacity zero-fills the new part.
        v.resize(len, 0.0);
        v
    }

    fn put(&self, v: Vec<f32>) {
        if v.capacity() == 0 {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < KEEP {
            free.push(v);
        } else if let Some(smallest) = free.iter_mut().min_by_key(|f| f.capacity()) {
            // Keep the bigger buffers: they are the expensive ones.
            if smallest.capacity() < v.capacity() {
                *smallest = v;
            }
        }
    }
}
