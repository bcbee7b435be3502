//! The photo and its result as the canvas draws them: in the blend shader's GPU textures
//! when there is a wgpu renderer, as CPU-blended egui textures otherwise (tests, software
//! fallbacks). Strength and colour changes cost nothing on the GPU path; the fallback
//! blends again once per frame at most.

use super::blend_pass;
use super::canvas::CanvasInput;
use super::document::Document;
use super::settings::Settings;
use eframe::egui_wgpu::RenderState;
use image::RgbImage;

pub struct Display {
    wgpu: Option<RenderState>,
    /// The largest texture the GPU takes; larger photos are shown scaled down.
    pub max_texture_side: u32,
    fallback: Option<egui::TextureHandle>,
    fallback_photo: Option<egui::TextureHandle>,
    /// The fallback's blend is out of date.
    dirty: bool,
}

impl Display {
    pub fn new(wgpu: Option<RenderState>) -> Self {
        let max_texture_side = match &wgpu {
            Some(rs) => blend_pass::install(rs),
            None => 8192,
        };
        Self {
            wgpu,
            max_texture_side,
            fallback: None,
            fallback_photo: None,
            dirty: false,
        }
    }

    /// A new photo (display size), with no result yet.
    pub fn set_photo(&mut self, ctx: &egui::Context, photo: &RgbImage) {
        if let Some(rs) = &self.wgpu {
            blend_pass::set_photo(rs, photo);
        } else {
            self.fallback_photo = Some(texture_of(ctx, "photo", photo));
            self.fallback = None;
        }
    }

    /// Stylised pixels at (x, y) of the display-size result.
    pub fn write_styled(&mut self, x: u32, y: u32, image: &RgbImage) {
        if let Some(rs) = &self.wgpu {
            blend_pass::write_styled(rs, x, y, image);
        }
        self.dirty = true;
    }

    /// The painted mask changed inside `rect` (display pixels); `None` is no mask.
    pub fn write_mask(&mut self, mask: Option<&image::GrayImage>, rect: [u32; 4]) {
        if let Some(rs) = &self.wgpu {
            blend_pass::write_mask(rs, mask, rect);
        }
        self.dirty = true;
    }

    /// The blend inputs changed.
    pub fn invalidate(&mut self) {
        self.dirty = true;
    }

    /// Blends the fallback texture again if anything changed (no-op with wgpu).
    pub fn refresh(&mut self, ctx: &egui::Context, doc: Option<&Document>, settings: &Settings) {
        if self.wgpu.is_some() || !self.dirty {
            return;
        }
        self.dirty = false;
        if let Some((doc, styled)) = doc.and_then(|d| Some((d, d.styled_display.as_ref()?))) {
            let img = match &doc.mask {
                Some(mask) if mask.dimensions() == styled.dimensions() => {
                    crate::stylize::blend::blend_masked(
                        &doc.display_photo,
                        styled,
                        settings.strength,
                        settings.preserve_colors,
                        mask,
                    )
                }
                _ => crate::stylize::blend::blend(
                    &doc.display_photo,
                    styled,
                    settings.strength,
                    settings.preserve_colors,
                ),
            };
            self.fallback = Some(texture_of(ctx, "styled", &img));
        }
    }

    pub fn canvas_input<'a>(&'a self, doc: &Document, settings: &Settings) -> CanvasInput<'a> {
        CanvasInput {
            display_size: doc.display_size(),
            display_scale: doc.display_scale,
            has_styled: doc.styled_display.is_some(),
            strength: settings.strength,
            preserve_colors: settings.preserve_colors,
            fallback: self.fallback.as_ref(),
            fallback_photo: self.fallback_photo.as_ref(),
            gpu: self.wgpu.is_some(),
        }
    }
}

fn texture_of(ctx: &egui::Context, name: &str, img: &RgbImage) -> egui::TextureHandle {
    let size = [img.width() as usize, img.height() as usize];
    ctx.load_texture(
        name,
        egui::ColorImage::from_rgb(size, img.as_raw()),
        Default::default(),
    )
}
