// Combines the photo and its stylised version on the canvas: strength, "keep photo
// colours" and the before/after split happen here, per pixel, so moving the slider
// never re-runs the network; the painted mask scales the strength per pixel. Must agree with src/stylize/blend.rs (the CPU path used
// for saving): the same BT.601 luma and the same linear mix in 0..255 sRGB values.

struct Uniforms {
    // Where the image lies inside the callback rectangle, in 0..1 of that rectangle.
    image_min: vec2<f32>,
    image_max: vec2<f32>,
    strength: f32,
    preserve_colors: f32,
    // Image x (0..1) left of which the original is shown; 0 disables the split.
    split: f32,
    // 1: the stylised texture holds a result; 0: show the photo only.
    has_styled: f32,
    // 1 when the render target is an sRGB format that re-encodes what we write.
    target_srgb: f32,
    // Scalars, not a vec3: a vec3 would be 16-aligned and make the struct 64 bytes.
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
};

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var photo_tex: texture_2d<f32>;
@group(0) @binding(2) var styled_tex: texture_2d<f32>;
@group(0) @binding(3) var samp: sampler;
// The painted strength mask (display size, one channel): 1 = full strength, 0 = photo.
@group(0) @binding(4) var mask_tex: texture_2d<f32>;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    // 0..1 across the callback rectangle, y down.
    @location(0) rect_uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VsOut {
    // Two triangles covering the viewport (egui-wgpu sets it to the callback rect).
    var corners = array<vec2<f32>, 6>(
        vec2(0.0, 0.0), vec2(1.0, 0.0), vec2(0.0, 1.0),
        vec2(0.0, 1.0), vec2(1.0, 0.0), vec2(1.0, 1.0),
    );
    let c = corners[i];
    var out: VsOut;
    out.pos = vec4(c.x * 2.0 - 1.0, 1.0 - c.y * 2.0, 0.0, 1.0);
    out.rect_uv = c;
    return out;
}

fn luma(c: vec3<f32>) -> f32 {
    return dot(c, vec3(0.299, 0.587, 0.114));
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let uv = (in.rect_uv - u.image_min) / (u.image_max - u.image_min);
    if (uv.x < 0.0 || uv.y < 0.0 || uv.x > 1.0 || uv.y > 1.0) {
        discard;
    }
    let p = textureSample(photo_tex, samp, uv).rgb;
    var t = textureSample(styled_tex, samp, uv).rgb;
    // Sampled here, not in the branch below: textureSample needs uniform control flow.
    let m = textureSample(mask_tex, samp, uv).r;
    var c = p;
    if (u.has_styled > 0.5 && uv.x >= u.split) {
        if (u.preserve_colors > 0.5) {
            t = p + vec3(luma(t) - luma(p));
        }
        c = clamp(mix(p, t, u.strength * m), vec3(0.0), vec3(1.0));
    }
    if (u.target_srgb > 0.5) {
        // The textures hold sRGB-encoded values; an sRGB target would encode again.
        c = pow(c, vec3(2.2));
    }
    return vec4(c, 1.0);
}
