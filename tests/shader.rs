//! The blend shader is checked as wgpu checks it when the app starts (parse, types,
//! uniform control flow for texture sampling), so a broken shader fails here and not
//! on an artist's screen; the test machines have no GPU to run it on.

#[test]
fn the_blend_shader_is_valid_wgsl_with_a_mask_texture() {
    let src = include_str!("../shaders/blend.wgsl");
    let module =
        naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{e:?}"));
    let bindings: Vec<u32> = module
        .global_variables
        .iter()
        .filter_map(|(_, v)| v.binding.as_ref().map(|b| b.binding))
        .collect();
    for b in 0..=4 {
        assert!(bindings.contains(&b), "binding {b} in {bindings:?}");
    }
}
