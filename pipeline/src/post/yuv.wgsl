// Stage 4, yuv: delivered RGB8 -> BT.601 limited-range Y'CbCr 4:2:0.
// A thread packs four Y samples (one word), or four Cb and four Cr samples (a word of each);
// chroma comes from the mean of a 2x2 block (edge pixels repeated). CPU twin: yuv.rs.

fn rgb_byte(j: u32, i: u32) -> f32 {
    let word = rgb[j * params.quads * 3u + i / 4u];
    return f32((word >> (8u * (i % 4u))) & 255u);
}

fn rgb_at(j: u32, x: u32, y: u32) -> vec3<f32> {
    let p = 3u * (y * params.out_size + x);
    return vec3<f32>(rgb_byte(j, p), rgb_byte(j, p + 1u), rgb_byte(j, p + 2u));
}

fn quantise(v: f32) -> u32 {
    return u32(clamp(floor(v + 0.5), 0.0, 255.0));
}

fn luma(c: vec3<f32>) -> u32 {
    return quantise(16.0 + 0.256788 * c.x + 0.504129 * c.y + 0.097906 * c.z);
}

fn chroma(c: vec3<f32>) -> vec2<u32> {
    let cb = 128.0 - 0.148223 * c.x - 0.290993 * c.y + 0.439216 * c.z;
    let cr = 128.0 + 0.439216 * c.x - 0.367788 * c.y - 0.071427 * c.z;
    return vec2<u32>(quantise(cb), quantise(cr));
}

@compute @workgroup_size(64)
fn to_yuv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.y;
    let side = params.out_size;
    let cs = params.chroma_side;
    if (j >= params.out_frames || gid.x >= params.y_words + params.c_words) {
        return;
    }
    let frame = j * (params.y_words + 2u * params.c_words);
    if (gid.x < params.y_words) {
        var word = 0u;
        for (var k = 0u; k < 4u; k = k + 1u) {
            let i = gid.x * 4u + k;
            if (i < side * side) {
                word = word | (luma(rgb_at(j, i % side, i / side)) << (8u * k));
            }
        }
        yuv[frame + gid.x] = word;
        return;
    }
    let cw = gid.x - params.y_words;
    var cb = 0u;
    var cr = 0u;
    for (var k = 0u; k < 4u; k = k + 1u) {
        let i = cw * 4u + k;
        if (i < cs * cs) {
            let x = 2u * (i % cs);
            let y = 2u * (i / cs);
            let x1 = min(x + 1u, side - 1u);
            let y1 = min(y + 1u, side - 1u);
            let mean = (rgb_at(j, x, y) + rgb_at(j, x1, y) + rgb_at(j, x, y1) + rgb_at(j, x1, y1)) * 0.25;
            let c = chroma(mean);
            cb = cb | (c.x << (8u * k));
            cr = cr | (c.y << (8u * k));
        }
    }
    yuv[frame + params.y_words + cw] = cb;
    yuv[frame + params.y_words + params.c_words + cw] = cr;
}
