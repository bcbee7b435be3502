//! The canvas's GPU side: the photo and the stylised image live in two wgpu textures
//! and `shaders/blend.wgsl` mixes them per pixel inside an egui paint callback, so the
//! strength slider, colour toggle and before/after split cost one draw call, not a
//! network run or a texture upload.

use eframe::egui_wgpu::{self, wgpu};
use image::RgbImage;

/// Everything the shader is given for one frame; `canvas` fills it from the app state
/// so tests can check it without a GPU.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlendUniforms {
    pub image_min: [f32; 2],
    pub image_max: [f32; 2],
    pub strength: f32,
    pub preserve_colors: f32,
    pub split: f32,
    pub has_styled: f32,
    pub target_srgb: f32,
    pub _pad: [f32; 3],
}

/// The pipeline and the two textures, kept in egui-wgpu's callback resources.
pub struct BlendResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    uniforms: wgpu::Buffer,
    photo: Option<wgpu::Texture>,
    styled: Option<wgpu::Texture>,
    mask: Option<wgpu::Texture>,
    bind_group: Option<wgpu::BindGroup>,
    target_srgb: bool,
}

/// Installs the pipeline; returns the largest texture side the device allows.
pub fn install(rs: &egui_wgpu::RenderState) -> u32 {
    let device = &rs.device;
    let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("atelier blend"),
        source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/blend.wgsl").into()),
    });
    let tex_entry = |binding| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: true },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    };
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("atelier blend"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            tex_entry(1),
            tex_entry(2),
            wgpu::BindGroupLayoutEntry {
                binding: 3,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                count: None,
            },
            tex_entry(4),
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("atelier blend"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("atelier blend"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &shader,
            entry_point: Some("vs_main"),
            buffers: &[],
            compilation_options: Default::default(),
        },
        fragment: Some(wgpu::FragmentState {
            module: &shader,
            entry_point: Some("fs_main"),
            targets: &[Some(rs.target_format.into())],
            compilation_options: Default::default(),
        }),
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        multiview_mask: None,
        cache: None,
    });
    let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
        label: Some("atelier blend"),
        mag_filter: wgpu::FilterMode::Nearest,
        min_filter: wgpu::FilterMode::Linear,
        ..Default::default()
    });
    let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("atelier blend"),
        size: std::mem::size_of::<BlendUniforms>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    rs.renderer
        .write()
        .callback_resources
        .insert(BlendResources {
            pipeline,
            layout,
            sampler,
            uniforms,
            photo: None,
            styled: None,
            mask: None,
            bind_group: None,
            target_srgb: rs.target_format.is_srgb(),
        });
    device.limits().max_texture_dimension_2d
}

fn rgba_of(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(img.as_raw().len() / 3 * 4);
    for p in img.as_raw().chunks_exact(3) {
        out.extend_from_slice(&[p[0], p[1], p[2], 255]);
    }
    out
}

fn new_texture(device: &wgpu::Device, w: u32, h: u32) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some("atelier image"),
        size: wgpu::Extent3d {
            width: w.max(1),
            height: h.max(1),
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        // Not *Srgb: the shader mixes encoded values exactly as the CPU path does.
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

fn write_region(queue: &wgpu::Queue, tex: &wgpu::Texture, x: u32, y: u32, img: &RgbImage) {
    if img.width() == 0 || img.height() == 0 {
        return;
    }
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: tex,
            mip_level: 0,
            origin: wgpu::Origin3d { x, y, z: 0 },
            aspect: wgpu::TextureAspect::All,
        },
        &rgba_of(img),
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(4 * img.width()),
            rows_per_image: Some(img.height()),
        },
        wgpu::Extent3d {
            width: img.width(),
            height: img.height(),
            depth_or_array_layers: 1,
        },
    );
}

impl BlendResources {
    fn rebind(&mut self, device: &wgpu::Device) {
        let (Some(photo), Some(styled), Some(mask)) = (&self.photo, &self.styled, &self.mask)
        else {
            self.bind_group = None;
            return;
        };
        let pv = photo.create_view(&Default::default());
        let sv = styled.create_view(&Default::default());
        let mv = mask.create_view(&Default::default());
        self.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("atelier blend"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.uniforms.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&pv),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&sv),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::TextureView(&mv),
                },
            ],
        }));
    }
}

/// Uploads a new photo (display size) and an empty stylised texture of the same size.
pub fn set_photo(rs: &egui_wgpu::RenderState, photo: &RgbImage) {
    let mut renderer = rs.renderer.write();
    let Some(res) = renderer.callback_resources.get_mut::<BlendResources>() else {
        return;
    };
    let (w, h) = photo.dimensions();
    let p = new_texture(&rs.device, w, h);
    write_region(&rs.queue, &p, 0, 0, photo);
    res.photo = Some(p);
    res.styled = Some(new_texture(&rs.device, w, h));
    res.mask = Some(new_mask_texture(&rs.device, &rs.queue, w, h));
    res.rebind(&rs.device);
}

/// A display-size mask texture, all full strength (no mask painted).
fn new_mask_texture(device: &wgpu::Device, queue: &wgpu::Queue, w: u32, h: u32) -> wgpu::Texture {
    let tex = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("atelier mask"),
        size: wgpu::Extent3d {
            width: w.max(1),
            height: h.max(1),
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::R8Unorm,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let full = image::GrayImage::from_pixel(w.max(1), h.max(1), image::Luma([255]));
    write_mask_region(queue, &tex, &full, [0, 0, w.max(1), h.max(1)]);
    tex
}

/// Uploads `rect` (x0, y0, x1, y1) of the display-size mask; `None` is no mask (all
/// full strength). Only the painted rectangle travels, so a brush stroke costs little.
pub fn write_mask(rs: &egui_wgpu::RenderState, mask: Option<&image::GrayImage>, rect: [u32; 4]) {
    let renderer = rs.renderer.read();
    let Some(tex) = renderer
        .callback_resources
        .get::<BlendResources>()
        .and_then(|r| r.mask.as_ref())
    else {
        return;
    };
    let (w, h) = (tex.width(), tex.height());
    match mask {
        Some(m) if m.dimensions() == (w, h) => write_mask_region(&rs.queue, tex, m, rect),
        _ => {
            let full = image::GrayImage::from_pixel(w, h, image::Luma([255]));
            write_mask_region(&rs.queue, tex, &full, [0, 0, w, h]);
        }
    }
}

fn write_mask_region(queue: &wgpu::Queue, tex: &wgpu::Texture, m: &image::GrayImage, r: [u32; 4]) {
    let [x0, y0, x1, y1] = [r[0], r[1], r[2].min(m.width()), r[3].min(m.height())];
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    let stride = m.width() as usize;
    let bytes: Vec<u8> = (y0..y1)
        .flat_map(|y| &m.as_raw()[y as usize * stride + x0 as usize..][..(x1 - x0) as usize])
        .copied()
        .collect();
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: tex,
            mip_level: 0,
            origin: wgpu::Origin3d { x: x0, y: y0, z: 0 },
            aspect: wgpu::TextureAspect::All,
        },
        &bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(x1 - x0),
            rows_per_image: Some(y1 - y0),
        },
        wgpu::Extent3d {
            width: x1 - x0,
            height: y1 - y0,
            depth_or_array_layers: 1,
        },
    );
}

/// Writes stylised pixels at (x, y) of the display-size stylised texture.
pub fn write_styled(rs: &egui_wgpu::RenderState, x: u32, y: u32, region: &RgbImage) {
    let renderer = rs.renderer.read();
    if let Some(tex) = renderer
        .callback_resources
        .get::<BlendResources>()
        .and_then(|r| r.styled.as_ref())
    {
        let (w, h) = (tex.width(), tex.height());
        if x + region.width() <= w && y + region.height() <= h {
            write_region(&rs.queue, tex, x, y, region);
        }
    }
}

/// The per-frame draw: one full-rectangle quad through the blend shader.
pub struct BlendCallback {
    pub uniforms: BlendUniforms,
}

impl egui_wgpu::CallbackTrait for BlendCallback {
    fn prepare(
        &self,
        _device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(res) = resources.get::<BlendResources>() {
            let mut u = self.uniforms;
            u.target_srgb = if res.target_srgb { 1.0 } else { 0.0 };
            queue.write_buffer(&res.uniforms, 0, bytemuck::bytes_of(&u));
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(res) = resources.get::<BlendResources>() else {
            return;
        };
        let Some(bind_group) = &res.bind_group else {
            return;
        };
        pass.set_pipeline(&res.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.draw(0..6, 0..1);
    }
}
