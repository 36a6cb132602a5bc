//! One component's weights: a single `*.safetensors` file or the shards listed by a
//! `*.safetensors.index.json`, memory-mapped so that opening a multi-GiB checkpoint costs page
//! tables rather than a copy, and checked against the names and shapes its config implies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use super::config::read_json;
use super::WanLoadError;

/// The element types a Wan checkpoint may store its weights in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WanDtype {
    /// IEEE single precision.
    F32,
    /// bfloat16 (the published Wan2.1 weights).
    Bf16,
    /// IEEE half precision.
    F16,
}

impl WanDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            WanDtype::F32 => 4,
            WanDtype::Bf16 | WanDtype::F16 => 2,
        }
    }

    /// The name safetensors uses (`F32`, `BF16`, `F16`).
    pub fn name(self) -> &'static str {
        match self {
            WanDtype::F32 => "F32",
            WanDtype::Bf16 => "BF16",
            WanDtype::F16 => "F16",
        }
    }

    /// Widens `out.len()` elements of this type, stored little-endian in `bytes`, into `out`
    /// (exact for every supported type).
    pub(crate) fn widen(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            WanDtype::F32 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            WanDtype::Bf16 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            WanDtype::F16 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
        }
    }
}

/// One tensor of a loaded component, borrowed from the mapped file.
#[derive(Debug, Clone, Copy)]
pub struct WanTensor<'a> {
    /// Element type in the file.
    pub dtype: WanDtype,
    /// Shape, outermost first.
    pub shape: &'a [usize],
    /// Little-endian elements, row-major (safetensors' layout).
    pub data: &'a [u8],
}

impl WanTensor<'_> {
    /// Elements in the tensor.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements widened to f32 (exact for every supported type).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.len()];
        self.dtype.widen(self.data, &mut out);
        out
    }
}

/// Where one tensor lives: which shard, its type, shape and byte range in that shard.
#[derive(Debug)]
struct Entry {
    shard: usize,
    dtype: WanDtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

#[derive(Debug)]
struct Shard {
    path: PathBuf,
    map: Mmap,
}

/// The shapes a component's config implies: the tensors it must have, and the ones it may
/// have but does not use (checked for type and, when listed with a shape, for shape).
#[derive(Debug, Default)]
pub(crate) struct Expected {
    /// Name and shape of every tensor the model math reads.
    pub required: Vec<(String, Vec<usize>)>,
    /// Name and shape of tensors that may be present and are then ignored.
    pub optional: Vec<(String, Vec<usize>)>,
    /// Name prefixes of tensors that may be present and are ignored whatever their shape.
    pub ignored_prefixes: &'static [&'static str],
}

/// The memory-mapped weights of one component, validated against its config.
#[derive(Debug)]
pub struct WanWeights {
    /// The file to name for the component as a whole: the single file or the index.
    source: PathBuf,
    shards: Vec<Shard>,
    /// The tensors the model uses.
    used: BTreeMap<String, Entry>,
    /// Present but unused: optional or under an ignored prefix.
    ignored: BTreeMap<String, Entry>,
}

/// The `*.safetensors.index.json` keys this crate reads.
#[derive(Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

fn weights_error(path: &Path, message: String) -> WanLoadError {
    WanLoadError::Weights {
        path: path.to_path_buf(),
        message,
    }
}

/// Maps one safetensors file (shard number `shard` of its component) and lists its tensors,
/// refusing unsupported types.
fn map_shard(path: &Path, shard: usize) -> Result<(Mmap, Vec<(String, Entry)>), WanLoadError> {
    let io = |source| WanLoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only and lives as long as the WanWeights that owns it. A model
    // file rewritten in place while the server runs would change the bytes under us; that is
    // the accepted contract of serving from a checkpoint directory (as with every mmap loader).
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    let (header, metadata) =
        SafeTensors::read_metadata(&map).map_err(|e| weights_error(path, e.to_string()))?;
    // Data offsets in the header count from the end of the 8-byte length and the header.
    let base = 8 + header;
    let mut tensors = Vec::new();
    for (name, info) in metadata.tensors() {
        let (start, end) = info.data_offsets;
        let entry = Entry {
            shard,
            dtype: supported(path, &name, info.dtype)?,
            shape: info.shape.clone(),
            start: base + start,
            end: base + end,
        };
        tensors.push((name, entry));
    }
    Ok((map, tensors))
}

fn supported(path: &Path, name: &str, dtype: Dtype) -> Result<WanDtype, WanLoadError> {
    match dtype {
        Dtype::F32 => Ok(WanDtype::F32),
        Dtype::BF16 => Ok(WanDtype::Bf16),
        Dtype::F16 => Ok(WanDtype::F16),
        other => Err(WanLoadError::UnsupportedDtype {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            dtype: format!("{other:?}"),
        }),
    }
}

/// Finds the component's weights in `dir`: an index if there is one (diffusers and
/// transformers write `<stem>.safetensors.index.json` beside the shards), else the one
/// `*.safetensors` file.
fn locate(dir: &Path) -> Result<(PathBuf, Option<PathBuf>), WanLoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| WanLoadError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut indexes = Vec::new();
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| WanLoadError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.ends_with(".safetensors.index.json") {
            indexes.push(path);
        } else if name.ends_with(".safetensors") {
            files.push(path);
        }
    }
    indexes.sort();
    files.sort();
    match (indexes.as_slice(), files.as_slice()) {
        ([index], _) => Ok((index.clone(), Some(index.clone()))),
        ([], [file]) => Ok((file.clone(), None)),
        ([], []) => Err(WanLoadError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no *.safetensors or *.safetensors.index.json in the component directory",
            ),
        }),
        ([], several) => Err(weights_error(
            dir,
            format!(
                "{} *.safetensors files and no index to say which to use",
                several.len()
            ),
        )),
        (several, _) => Err(weights_error(
            dir,
            format!("{} *.safetensors.index.json files", several.len()),
        )),
    }
}

impl WanWeights {
    /// Opens the weights under `dir` and checks them against `expected`.
    pub(crate) fn open(dir: &Path, expected: &Expected) -> Result<Self, WanLoadError> {
        let (source, index) = locate(dir)?;
        let (shard_paths, weight_map) = match &index {
            None => (vec![source.clone()], None),
            Some(index) => {
                let parsed: ShardIndex = read_json(index)?;
                let names: BTreeSet<&String> = parsed.weight_map.values().collect();
                let paths = names.into_iter().map(|n| dir.join(n)).collect();
                (paths, Some(parsed.weight_map))
            }
        };
        let mut shards = Vec::with_capacity(shard_paths.len());
        let mut all: HashMap<String, Entry> = HashMap::new();
        for (shard, path) in shard_paths.into_iter().enumerate() {
            let (map, tensors) = map_shard(&path, shard)?;
            for (name, entry) in tensors {
                if let Some(map) = &weight_map {
                    let listed = map.get(&name).map(|f| dir.join(f));
                    if listed.as_deref() != Some(path.as_path()) {
                        return Err(weights_error(
                            index.as_deref().unwrap_or(&path),
                            format!(
                                "tensor {name} is in {} but the index maps it to {listed:?}",
                                path.display()
                            ),
                        ));
                    }
                }
                all.insert(name, entry);
            }
            shards.push(Shard { path, map });
        }
        if let Some(map) = &weight_map {
            if let Some((name, file)) = map.iter().find(|(name, _)| !all.contains_key(*name)) {
                return Err(weights_error(
                    index.as_deref().unwrap_or(&source),
                    format!("the index maps tensor {name} to {file}, which does not hold it"),
                ));
            }
        }
        let mut weights = WanWeights {
            source,
            shards,
            used: BTreeMap::new(),
            ignored: BTreeMap::new(),
        };
        weights.sort(all, expected)?;
        Ok(weights)
    }

    /// Checks every expected tensor's presence and shape, and that nothing else is present.
    fn sort(
        &mut self,
        mut all: HashMap<String, Entry>,
        expected: &Expected,
    ) -> Result<(), WanLoadError> {
        let check = |name: &str, want: &[usize], entry: &Entry, path: &Path| {
            if entry.shape == want {
                Ok(())
            } else {
                Err(WanLoadError::WrongShape {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                    expected: want.to_vec(),
                    found: entry.shape.clone(),
                })
            }
        };
        for (name, want) in &expected.required {
            let entry = all
                .remove(name)
                .ok_or_else(|| WanLoadError::MissingTensor {
                    path: self.source.clone(),
                    tensor: name.clone(),
                    expected: want.clone(),
                })?;
            check(name, want, &entry, &self.shards[entry.shard].path)?;
            self.used.insert(name.clone(), entry);
        }
        for (name, want) in &expected.optional {
            if let Some(entry) = all.remove(name) {
                check(name, want, &entry, &self.shards[entry.shard].path)?;
                self.ignored.insert(name.clone(), entry);
            }
        }
        let mut rest: Vec<(String, Entry)> = all.into_iter().collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, entry) in rest {
            if expected
                .ignored_prefixes
                .iter()
                .any(|p| name.starts_with(p))
            {
                self.ignored.insert(name, entry);
            } else {
                return Err(WanLoadError::UnexpectedTensor {
                    path: self.shards[entry.shard].path.clone(),
                    tensor: name,
                    shape: entry.shape,
                });
            }
        }
        Ok(())
    }

    fn view<'a>(&'a self, entry: &'a Entry) -> WanTensor<'a> {
        WanTensor {
            dtype: entry.dtype,
            shape: &entry.shape,
            data: &self.shards[entry.shard].map[entry.start..entry.end],
        }
    }

    /// A tensor the model uses, by its diffusers/transformers name; `None` for any other name
    /// (ignored tensors included: nothing should compute with them).
    pub fn tensor(&self, name: &str) -> Option<WanTensor<'_>> {
        self.used.get(name).map(|e| self.view(e))
    }

    /// What this component's weights hold, for logs and readiness reports.
    pub(crate) fn summary(&self) -> WeightsSummary {
        let count = |entries: &BTreeMap<String, Entry>| {
            entries.values().fold((0u64, 0u64), |(n, b), e| {
                let len: usize = e.shape.iter().product();
                (n + len as u64, b + (len * e.dtype.size()) as u64)
            })
        };
        let (parameters, bytes) = count(&self.used);
        let (_, ignored_bytes) = count(&self.ignored);
        let dtypes: BTreeSet<WanDtype> = self.used.values().map(|e| e.dtype).collect();
        WeightsSummary {
            files: self.shards.len(),
            tensors: self.used.len(),
            parameters,
            bytes,
            dtypes: dtypes.into_iter().map(|d| d.name().to_string()).collect(),
            ignored_tensors: self.ignored.len(),
            ignored_bytes,
        }
    }
}

/// The part of a component's summary that comes from its weights.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WeightsSummary {
    /// Weights files mapped (more than one when sharded).
    pub files: usize,
    /// Tensors the model uses.
    pub tensors: usize,
    /// Elements in those tensors.
    pub parameters: u64,
    /// Bytes of those tensors as stored.
    pub bytes: u64,
    /// The distinct stored types of those tensors (`F32`, `BF16`, `F16`), sorted.
    pub dtypes: Vec<String>,
    /// Tensors present but unused (the VAE's encoder, a tied embedding's copy).
    pub ignored_tensors: usize,
    /// Bytes of those.
    pub ignored_bytes: u64,
}
