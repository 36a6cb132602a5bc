// Stage 3, resample: temporal interpolation fused with the edge-crisp upscale.
// One thread makes four consecutive pixels of one delivered frame and packs them as RGB8 into
// three words. CPU twin: resample.rs (same formulas, same order).

struct Warp {
    origin: vec2<f32>,  // object centroid in the base frame
    goal: vec2<f32>,  // interpolated centroid in the delivered frame (base-frame units)
    ratio: f32,         // base-frame object scale / interpolated scale
    sharpen: f32,       // stretch that brings a one-pixel base ramp to one delivered pixel
}

struct Plan {
    a: u32,
    b: u32,
    w: f32,
    from_a: Warp,
    from_b: Warp,
}

fn warp(m: Motion, goal: vec2<f32>, scale: f32, tracked: bool) -> Warp {
    let zoom = f32(params.out_size) / f32(params.in_w);
    if (!tracked) {
        return Warp(goal, goal, 1.0, max(zoom, 1.0));
    }
    let ratio = sqrt(m.mass) / scale;
    return Warp(vec2<f32>(m.cx, m.cy), goal, ratio, max(zoom / ratio, 1.0));
}

fn plan(j: u32) -> Plan {
    var a = 0u;
    var b = 0u;
    var w = 0.0;
    if (params.frames > 1u && params.out_frames > 1u) {
        let span = params.out_frames - 1u;
        let q = j * (params.frames - 1u);
        a = q / span;
        w = f32(q % span) / f32(span);
        if (a == params.frames - 1u) {
            a = a - 1u;
            w = 1.0;
        }
        b = a + 1u;
    }
    let ma = motion[a];
    let mb = motion[b];
    let tracked = ma.contrast >= params.contrast_floor && ma.mass >= params.min_mass
        && mb.contrast >= params.contrast_floor && mb.mass >= params.min_mass;
    var goal = vec2<f32>(f32(params.in_w), f32(params.in_h)) * 0.5;
    var scale = 1.0;
    if (tracked) {
        goal = mix(vec2<f32>(ma.cx, ma.cy), vec2<f32>(mb.cx, mb.cy), w);
        scale = mix(sqrt(ma.mass), sqrt(mb.mass), w);
    }
    return Plan(a, b, w, warp(ma, goal, scale, tracked), warp(mb, goal, scale, tracked));
}

fn cubic(t: f32) -> vec4<f32> {
    let t2 = t * t;
    let t3 = t2 * t;
    return vec4<f32>(
        -0.5 * t3 + t2 - 0.5 * t,
        1.5 * t3 - 2.5 * t2 + 1.0,
        -1.5 * t3 + 2.0 * t2 + 0.5 * t,
        0.5 * t3 - 0.5 * t2,
    );
}

// Where cell `c` (the base pixel left of / above a position) sits along an axis of `n` pixels
// in the side table.
fn cell_index(c: i32, n: u32) -> u32 {
    return u32(clamp(c, -2, i32(n)) + 2);
}

// Where a colour at `t` between the side colours (0 and 1) goes: the ramp between them made
// `k` times steeper about its middle, flat at 0 and 1 for a width `d` either side of each, and
// moved `d` towards them beyond that. Being symmetric about each side colour, it takes noise
// around a side towards it from both directions alike, so no ring of one-sided noise remains.
fn push(t: f32, k: f32) -> f32 {
    let d = 0.5 - 0.5 / k;
    let ramp = clamp((t - 0.5) * k + 0.5, 0.0, 1.0);
    return ramp + min(t + d, 0.0) + max(t - 1.0 - d, 0.0);
}

// The upscale proper: Catmull-Rom at `pos`, clamped to the 4x4 range (no ringing), then, where
// the neighbourhood is an edge rather than noise (gate), moved along the step from one side
// colour to the other by `push`, which steepens the ramp between them by `sharpen`.
fn sample_sharp(f: u32, pos: vec2<f32>, sharpen: f32) -> vec3<f32> {
    let s = pos - vec2<f32>(0.5);
    // Clamped first so that far-off positions cannot overflow the integer conversion.
    let cell = floor(clamp(s, vec2<f32>(-4.0), vec2<f32>(f32(params.in_w), f32(params.in_h)) + 4.0));
    let t = s - floor(s);
    let wx = cubic(t.x);
    let wy = cubic(t.y);
    let x0 = i32(cell.x) - 1;
    let y0 = i32(cell.y) - 1;
    var acc = vec3<f32>(0.0);
    for (var j = 0; j < 4; j = j + 1) {
        var row = vec3<f32>(0.0);
        for (var i = 0; i < 4; i = i + 1) {
            row = row + wx[i] * texel(f, x0 + i, y0 + j);
        }
        acc = acc + wy[j] * row;
    }
    let at = ((f * cells_h() + cell_index(y0 + 1, params.in_h)) * cells_w()
        + cell_index(x0 + 1, params.in_w)) * 4u;
    let side = sides[at];
    let step = sides[at + 1u];
    let lo = sides[at + 2u].xyz;
    let hi = sides[at + 3u].xyz;
    let v = clamp(acc, lo, hi);
    if (side.w <= 0.0) {
        return v;
    }
    let k = 1.0 + (sharpen - 1.0) * side.w;
    let along = dot(v - side.xyz, step.xyz) * step.w;
    return clamp(v + (push(along, k) - along) * step.xyz, lo, hi);
}

fn sample_warped(f: u32, wp: Warp, u: vec2<f32>) -> vec3<f32> {
    return sample_sharp(f, wp.origin + (u - wp.goal) * wp.ratio, wp.sharpen);
}

fn to_byte(v: f32) -> u32 {
    return u32(clamp(v, 0.0, 1.0) * 255.0 + 0.5);
}

@compute @workgroup_size(64)
fn resample(@builtin(global_invocation_id) gid: vec3<u32>) {
    let quad = gid.x;
    let j = gid.y;
    if (quad >= params.quads || j >= params.out_frames) {
        return;
    }
    let pl = plan(j);
    let n = params.out_size * params.out_size;
    let to_base = vec2<f32>(f32(params.in_w), f32(params.in_h)) / f32(params.out_size);
    var bytes: array<u32, 12>;
    for (var k = 0u; k < 4u; k = k + 1u) {
        let i = quad * 4u + k;
        var c = vec3<f32>(0.0);
        if (i < n) {
            let u = (vec2<f32>(f32(i % params.out_size), f32(i / params.out_size)) + vec2<f32>(0.5)) * to_base;
            if (pl.w < 1.0) {
                c = c + (1.0 - pl.w) * sample_warped(pl.a, pl.from_a, u);
            }
            if (pl.w > 0.0) {
                c = c + pl.w * sample_warped(pl.b, pl.from_b, u);
            }
        }
        bytes[3u * k] = to_byte(c.x);
        bytes[3u * k + 1u] = to_byte(c.y);
        bytes[3u * k + 2u] = to_byte(c.z);
    }
    let base = j * params.quads * 3u + quad * 3u;
    for (var word = 0u; word < 3u; word = word + 1u) {
        let o = 4u * word;
        rgb[base + word] = bytes[o] | (bytes[o + 1u] << 8u) | (bytes[o + 2u] << 16u) | (bytes[o + 3u] << 24u);
    }
}
