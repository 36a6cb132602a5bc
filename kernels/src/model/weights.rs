//! Reading `model.safetensors` (fp32, PyTorch state_dict names) into host tensors, taken out
//! one by one by the modules under the exact PyTorch parameter names.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::KernelError;
use crate::tensor::Tensor;

pub(crate) struct Weights {
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    pub(crate) fn from_bytes(bytes: &[u8], path: &Path) -> Result<Weights, KernelError> {
        let bad = |m: String| KernelError::Weights(format!("{}: {m}", path.display()));
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!(
                    "{name} is {:?}; export.py writes fp32",
                    view.dtype()
                )));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(name, Tensor::new(view.shape(), data));
        }
        Ok(Weights { tensors })
    }

    /// The parameter `name`, which must have exactly `shape`.
    pub(crate) fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, KernelError> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| KernelError::Weights(format!("missing tensor {name}")))?;
        if t.shape != shape {
            return Err(KernelError::Weights(format!(
                "{name} has shape {:?}, the config implies {shape:?}",
                t.shape
            )));
        }
        Ok(t)
    }

    /// Fails on parameters nobody took: a mismatch between net.py and these modules.
    pub(crate) fn finish(self) -> Result<(), KernelError> {
        let mut left: Vec<&String> = self.tensors.keys().collect();
        left.sort();
        match left.is_empty() {
            true => Ok(()),
            false => Err(KernelError::Weights(format!("unexpected tensors {left:?}"))),
        }
    }
}
