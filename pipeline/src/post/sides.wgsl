// Stage 2, sides: for every cell of every base frame, what the upscale needs to know about the
// cell's 4x4 neighbourhood: the range of each channel, the two colours either side of an edge
// there, estimated robustly against noise, and how much their step is an edge (gate). One thread
// per cell. CPU twin: sides.rs (same formulas, same order).

const TAPS: u32 = 16u;

fn weighted_mean(sum: vec3<f32>, weight: f32, otherwise: vec3<f32>) -> vec3<f32> {
    if (weight > 0.0) {
        return sum / weight;
    }
    return otherwise;
}

// How much a step of `size` (largest channel difference) between the side colours is an edge
// to sharpen. Gating on the sides rather than on the taps' range keeps noise, which widens the
// range, from opening the gate, and leaves alone the fringe of an edge, where the far side is
// only a partly covered pixel and the near side's noise would be pushed about.
fn gate(size: f32) -> f32 {
    return clamp((size - params.gate_lo) / (params.gate_hi - params.gate_lo), 0.0, 1.0);
}

// The weight of a tap at `s` when the two sides sit at -0.5 and 0.5: none in the middle half
// (the edge's own ramp), full from 3/8 outwards, so noise about a side colour is averaged
// evenly instead of favouring the taps it pushes outwards.
fn side_weight(s: f32) -> f32 {
    return clamp(abs(s) * 8.0 - 2.0, 0.0, 1.0);
}

@compute @workgroup_size(64)
fn find_sides(@builtin(global_invocation_id) gid: vec3<u32>) {
    let f = gid.y;
    let cw = cells_w();
    if (gid.x >= cw * cells_h() || f >= params.frames) {
        return;
    }
    // Cell (cx, cy) = (index % cw - 2, index / cw - 2); its taps start one pixel up and left.
    let x0 = i32(gid.x % cw) - 3;
    let y0 = i32(gid.x / cw) - 3;
    var taps: array<vec3<f32>, 16>;
    var sum = vec3<f32>(0.0);
    var lo = vec3<f32>(1e30);
    var hi = vec3<f32>(-1e30);
    for (var j = 0; j < 4; j = j + 1) {
        for (var i = 0; i < 4; i = i + 1) {
            let p = texel(f, x0 + i, y0 + j);
            taps[j * 4 + i] = p;
            sum = sum + p;
            lo = min(lo, p);
            hi = max(hi, p);
        }
    }
    let range = hi - lo;
    let o = (f * cw * cells_h() + gid.x) * 4u;
    sides[o + 2u] = vec4<f32>(lo, 0.0);
    sides[o + 3u] = vec4<f32>(hi, 0.0);
    // The sides lie within the range, so a range below the gate cannot open it: no edge, and
    // the upscale only clamps here.
    if (gate(max(range.x, max(range.y, range.z))) <= 0.0) {
        sides[o] = vec4<f32>(lo, 0.0);
        sides[o + 1u] = vec4<f32>(0.0);
        return;
    }
    let mean = sum / f32(TAPS);

    // The direction the colours spread along: two steps of power iteration on their scatter,
    // from the range's diagonal.
    var axis = hi - lo;
    for (var step = 0; step < 2; step = step + 1) {
        var next = vec3<f32>(0.0);
        for (var k = 0u; k < TAPS; k = k + 1u) {
            let d = taps[k] - mean;
            next = next + d * dot(d, axis);
        }
        axis = next;
    }

    // A first guess: either side of the mean, weighted by squared distance from it so that the
    // ramp barely counts; the mean leans towards the bigger side, so that guess is refined
    // twice about the midpoint of the sides found.
    var sum_a = vec3<f32>(0.0);
    var sum_b = vec3<f32>(0.0);
    var w_a = 0.0;
    var w_b = 0.0;
    for (var k = 0u; k < TAPS; k = k + 1u) {
        let key = dot(taps[k] - mean, axis);
        let w = key * key;
        if (key < 0.0) {
            sum_a = sum_a + w * taps[k];
            w_a = w_a + w;
        } else {
            sum_b = sum_b + w * taps[k];
            w_b = w_b + w;
        }
    }
    var a = weighted_mean(sum_a, w_a, mean);
    var b = weighted_mean(sum_b, w_b, mean);
    for (var round = 0; round < 2; round = round + 1) {
        let e0 = b - a;
        let mid = (a + b) * 0.5;
        let inv0 = 1.0 / max(dot(e0, e0), 1e-12);
        sum_a = vec3<f32>(0.0);
        sum_b = vec3<f32>(0.0);
        w_a = 0.0;
        w_b = 0.0;
        for (var k = 0u; k < TAPS; k = k + 1u) {
            let s = dot(taps[k] - mid, e0) * inv0;
            let w = side_weight(s);
            if (s < 0.0) {
                sum_a = sum_a + w * taps[k];
                w_a = w_a + w;
            } else {
                sum_b = sum_b + w * taps[k];
                w_b = w_b + w;
            }
        }
        a = weighted_mean(sum_a, w_a, a);
        b = weighted_mean(sum_b, w_b, b);
    }
    let e = b - a;
    let size = abs(e);
    sides[o] = vec4<f32>(a, gate(max(size.x, max(size.y, size.z))));
    sides[o + 1u] = vec4<f32>(e, 1.0 / max(dot(e, e), 1e-12));
}
