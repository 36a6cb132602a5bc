// Stage 1, analyse: one workgroup per base frame finds the background colour (mean of the
// border), the contrast (largest channel difference to it), and the object's mask mass and
// centroid. CPU twin: analyse.rs.

const WG: u32 = 256u;
var<workgroup> partial: array<vec4<f32>, 256>;

// The k-th pixel of the frame's border: top row, bottom row, then the two side columns.
fn border_pixel(k: u32, w: u32, h: u32) -> vec2<u32> {
    if (w < 3u || h < 3u) {
        return vec2<u32>(k % w, k / w);
    }
    if (k < w) {
        return vec2<u32>(k, 0u);
    }
    if (k < 2u * w) {
        return vec2<u32>(k - w, h - 1u);
    }
    let side = k - 2u * w;
    if (side < h - 2u) {
        return vec2<u32>(0u, side + 1u);
    }
    return vec2<u32>(w - 1u, side - (h - 2u) + 1u);
}

fn reduce_sum(li: u32) {
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            partial[li] = partial[li] + partial[li + s];
        }
        workgroupBarrier();
    }
}

fn distance_to(p: vec3<f32>, bg: vec3<f32>) -> f32 {
    let d = abs(p - bg);
    return max(d.x, max(d.y, d.z));
}

@compute @workgroup_size(256)
fn analyse(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let f = wg.x;
    let w = params.in_w;
    let h = params.in_h;
    let n = w * h;
    var border = 2u * w + 2u * h - 4u;
    if (w < 3u || h < 3u) {
        border = n;
    }

    var acc = vec4<f32>(0.0);
    for (var k = li; k < border; k = k + WG) {
        let p = border_pixel(k, w, h);
        acc = acc + vec4<f32>(base_pixel(f, p.x, p.y), 0.0);
    }
    partial[li] = acc;
    workgroupBarrier();
    reduce_sum(li);
    let bg = partial[0].xyz / f32(border);
    workgroupBarrier();

    var far = 0.0;
    for (var i = li; i < n; i = i + WG) {
        far = max(far, distance_to(base_pixel(f, i % w, i / w), bg));
    }
    partial[li] = vec4<f32>(far, 0.0, 0.0, 0.0);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            partial[li].x = max(partial[li].x, partial[li + s].x);
        }
        workgroupBarrier();
    }
    let contrast = partial[0].x;
    workgroupBarrier();

    let scale = 1.0 / max(contrast, 1e-6);
    let ramp = 1.0 / (1.0 - 2.0 * params.alpha_lo);
    acc = vec4<f32>(0.0);
    for (var i = li; i < n; i = i + WG) {
        let x = i % w;
        let y = i / w;
        let d = distance_to(base_pixel(f, x, y), bg) * scale;
        let a = clamp((d - params.alpha_lo) * ramp, 0.0, 1.0);
        acc = acc + vec4<f32>(a, a * (f32(x) + 0.5), a * (f32(y) + 0.5), 0.0);
    }
    partial[li] = acc;
    workgroupBarrier();
    reduce_sum(li);

    if (li == 0u) {
        let m = partial[0];
        var centroid = vec2<f32>(f32(w), f32(h)) * 0.5;
        if (m.x > 0.0) {
            centroid = m.yz / m.x;
        }
        motion[f] = Motion(bg.x, bg.y, bg.z, contrast, m.x, centroid.x, centroid.y, 0.0);
    }
}
