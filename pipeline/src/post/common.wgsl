// Shared by every post-processing shader (prepended to each stage's source).
// `Params` mirrors `geometry::Params`; `Motion` mirrors the 8 words of `analyse::FrameMotion`.

struct Params {
    in_w: u32,
    in_h: u32,
    frames: u32,
    out_size: u32,
    out_frames: u32,
    quads: u32,
    y_words: u32,
    c_words: u32,
    chroma_side: u32,
    alpha_lo: f32,
    contrast_floor: f32,
    min_mass: f32,
    gate_lo: f32,
    gate_hi: f32,
    pad0: u32,
    pad1: u32,
}

struct Motion {
    bg_r: f32,
    bg_g: f32,
    bg_b: f32,
    contrast: f32,
    mass: f32,
    cx: f32,
    cy: f32,
    pad: f32,
}

// One bind group serves all stages; a stage ignores what it does not touch.
@group(0) @binding(0) var<uniform> params: Params;
// Base frames, [frame][y][x][rgb] f32, as uploaded.
@group(0) @binding(1) var<storage, read> clip: array<f32>;
// One `Motion` per base frame (written by analyse, read by resample).
@group(0) @binding(2) var<storage, read_write> motion: array<Motion>;
// Delivered RGB8, 3 words per 4 pixels, `params.quads * 3` words per frame.
@group(0) @binding(3) var<storage, read_write> rgb: array<u32>;
// Delivered Y'CbCr 4:2:0, per frame Y then Cb then Cr, 4 samples per word.
@group(0) @binding(4) var<storage, read_write> yuv: array<u32>;
// Per base frame and cell, `SIDE_WORDS / 4` vectors describing the cell's 4x4 neighbourhood
// (written by sides, read by resample): (near side, gate), (step to far side, 1 / its square
// length), (lowest of each channel, 0), (highest of each channel, 0).
@group(0) @binding(5) var<storage, read_write> sides: array<vec4<f32>>;

fn base_pixel(f: u32, x: u32, y: u32) -> vec3<f32> {
    let i = ((f * params.in_h + y) * params.in_w + x) * 3u;
    return vec3<f32>(clip[i], clip[i + 1u], clip[i + 2u]);
}

// A base pixel at any integer position, edges repeated outwards.
fn texel(f: u32, x: i32, y: i32) -> vec3<f32> {
    let cx = u32(clamp(x, 0, i32(params.in_w) - 1));
    let cy = u32(clamp(y, 0, i32(params.in_h) - 1));
    return base_pixel(f, cx, cy);
}

// Cells per row and per column: a sampling position's cell (the base pixel left of / above it)
// runs from -2 to the frame's side, beyond which the clamped 4x4 neighbourhood no longer changes.
fn cells_w() -> u32 {
    return params.in_w + 3u;
}

fn cells_h() -> u32 {
    return params.in_h + 3u;
}
