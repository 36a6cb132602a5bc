//! The tiny random-weight Wan2.1 checkpoint (`model/wan/tiny/`) and its goldens
//! (`model/wan/tiny-goldens.safetensors`), both written by `model/wan/make_tiny.py`.

use std::collections::HashMap;
use std::path::PathBuf;

use kernels::wan::WanCheckpoint;
use safetensors::{Dtype, SafeTensors};

/// `model/wan/tiny/`.
pub fn tiny_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../model/wan/tiny"))
}

/// The tiny checkpoint, opened (panics naming the error if it does not open).
pub fn open_tiny() -> WanCheckpoint {
    WanCheckpoint::open(&tiny_dir()).unwrap_or_else(|e| panic!("model/wan/tiny: {e}"))
}

/// max |a - b| over two tensors of the same size.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared tensors differ in size");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The goldens file, read once per `Goldens`.
pub struct Goldens {
    bytes: Vec<u8>,
}

impl Goldens {
    pub fn load() -> Goldens {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../model/wan/tiny-goldens.safetensors"
        );
        let bytes =
            std::fs::read(path).expect("model/wan/tiny-goldens.safetensors (run make_tiny.py)");
        Goldens { bytes }
    }

    pub fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("goldens")
    }

    /// The header's metadata (prompts, sizes).
    pub fn metadata(&self) -> HashMap<String, String> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes).expect("goldens header");
        meta.metadata().clone().expect("goldens metadata")
    }

    /// A golden's shape.
    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.tensors().tensor(name).expect(name).shape().to_vec()
    }

    /// An f32 golden.
    pub fn f32(&self, name: &str) -> Vec<f32> {
        let tensors = self.tensors();
        let t = tensors.tensor(name).expect(name);
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect()
    }

    /// An f32 golden, checking its shape.
    pub fn f32_shaped(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        assert_eq!(self.shape(name), shape, "{name}");
        self.f32(name)
    }

    /// An int64 golden, checking its shape.
    pub fn i64(&self, name: &str, shape: &[usize]) -> Vec<i64> {
        let tensors = self.tensors();
        let t = tensors.tensor(name).expect(name);
        assert_eq!(t.dtype(), Dtype::I64, "{name}");
        assert_eq!(t.shape(), shape, "{name}");
        t.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect()
    }

    /// An int64 golden of token ids (or a mask) as u32s.
    pub fn ids(&self, name: &str) -> Vec<u32> {
        let shape = self.shape(name);
        self.i64(name, &shape)
            .into_iter()
            .map(|v| u32::try_from(v).expect("an id"))
            .collect()
    }
}
