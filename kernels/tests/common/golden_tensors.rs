//! Reading `model/wan/tiny-goldens.safetensors`, the f32 reference tensors that
//! `model/wan/make_tiny.py` computes with diffusers on the tiny Wan2.1 checkpoint.

use safetensors::{Dtype, SafeTensors};

/// The goldens file's bytes.
pub fn wan_goldens() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../model/wan/tiny-goldens.safetensors"
    );
    std::fs::read(path).expect("model/wan/tiny-goldens.safetensors (run make_tiny.py)")
}

/// The f32 golden `name` from `bytes` (the goldens file), checked to have `shape`.
pub fn golden_f32(bytes: &[u8], name: &str, shape: &[usize]) -> Vec<f32> {
    let goldens = SafeTensors::deserialize(bytes).expect("goldens");
    let t = goldens.tensor(name).expect(name);
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    assert_eq!(t.shape(), shape, "{name}");
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}
