//! Undo and redo over the edits an artist makes to a result: the style, strength,
//! colour setting and the painted mask. The photo itself is never touched, so an edit
//! is just these settings; a step is recorded when the edit settles (the pointer is up),
//! which makes one slider drag or one brush stroke one step, not one per frame.

use super::AtelierApp;
use image::GrayImage;
use std::path::PathBuf;
use std::sync::Arc;

/// How many steps back are kept.
const MAX_STEPS: usize = 64;
/// What the kept masks may take together: an 8192² mask is 64 MB, so a large photo keeps
/// fewer steps (at least [`MIN_STEPS`]).
const MASK_BUDGET: usize = 768 << 20;
const MIN_STEPS: usize = 8;

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub style: Option<PathBuf>,
    pub strength: f32,
    pub preserve_colors: bool,
    pub stroke_scale: f32,
    /// Shared with the document: a stroke copies the mask before changing it.
    pub mask: Option<Arc<GrayImage>>,
}

impl Snapshot {
    fn same(&self, o: &Self) -> bool {
        let same_mask = match (&self.mask, &o.mask) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        self.style == o.style
            && self.strength == o.strength
            && self.preserve_colors == o.preserve_colors
            && self.stroke_scale == o.stroke_scale
            && same_mask
    }
}

#[derive(Debug, Default)]
pub struct History {
    /// The state the last recorded step ended in.
    committed: Option<Snapshot>,
    undo: Vec<Snapshot>,
    redo: Vec<Snapshot>,
}

impl History {
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

impl AtelierApp {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            style: self.gallery.selected.clone(),
            strength: self.settings.strength,
            preserve_colors: self.settings.preserve_colors,
            stroke_scale: self.settings.stroke_scale,
            mask: self.state.doc.as_ref().and_then(|d| d.mask.clone()),
        }
    }

    /// Records the edit made since the last step as one step, once it has settled.
    pub(super) fn commit_edits(&mut self, settled: bool) {
        if !settled {
            return;
        }
        let now = self.snapshot();
        match self.history.committed.take() {
            Some(before) if !before.same(&now) => {
                self.history.undo.push(before);
                let mask_bytes = now.mask.as_ref().map_or(0, |m| m.as_raw().len());
                let cap = (MASK_BUDGET / mask_bytes.max(1)).clamp(MIN_STEPS, MAX_STEPS);
                if self.history.undo.len() > cap {
                    let excess = self.history.undo.len() - cap;
                    self.history.undo.drain(..excess);
                }
                self.history.redo.clear();
            }
            _ => {}
        }
        self.history.committed = Some(now);
    }

    /// A new photo starts a new history: its masks do not fit another photo.
    pub(super) fn reset_history(&mut self) {
        self.history = History::default();
        self.history.committed = Some(self.snapshot());
    }

    pub(super) fn undo(&mut self) {
        self.commit_edits(true);
        if let Some(s) = self.history.undo.pop() {
            self.history.redo.push(self.snapshot());
            self.restore(s);
        }
    }

    pub(super) fn redo(&mut self) {
        self.commit_edits(true);
        if let Some(s) = self.history.redo.pop() {
            self.history.undo.push(self.snapshot());
            self.restore(s);
        }
    }

    fn restore(&mut self, s: Snapshot) {
        self.settings.strength = s.strength;
        self.settings.preserve_colors = s.preserve_colors;
        let rescaled = s.stroke_scale != self.settings.stroke_scale;
        self.settings.stroke_scale = s.stroke_scale;
        let restyled = s.style != self.gallery.selected && s.style.is_some();
        if restyled {
            self.gallery.selected = s.style.clone();
            self.settings.style = s.style.clone();
        }
        if restyled || rescaled {
            // Usually from the result cache, so stepping back is instant.
            self.restyle();
        }
        if let Some(doc) = self.state.doc.as_mut() {
            doc.mask = s.mask.clone();
            let [w, h] = doc.display_size();
            self.display.write_mask(doc.mask.as_deref(), [0, 0, w, h]);
        }
        self.display.invalidate();
        self.history.committed = Some(self.snapshot());
    }

    /// Paints a stroke through `points` (display pixels) with the current brush.
    pub(super) fn paint(&mut self, points: &[[f32; 2]]) {
        let Some(doc) = self.state.doc.as_mut() else {
            return;
        };
        let [w, h] = doc.display_size();
        let mask = Arc::make_mut(
            doc.mask
                .get_or_insert_with(|| Arc::new(super::mask::full(w, h))),
        );
        let brush = self.settings.brush;
        let radius = brush.radius * doc.display_scale;
        let mut dirty: Option<[u32; 4]> = None;
        let segments: Vec<_> = match points {
            [p] => vec![(*p, *p)],
            _ => points.windows(2).map(|s| (s[0], s[1])).collect(),
        };
        for (a, b) in segments {
            if let Some(r) = super::mask::paint_segment(mask, a, b, radius, &brush) {
                dirty = Some(match dirty {
                    None => r,
                    Some(d) => [
                        d[0].min(r[0]),
                        d[1].min(r[1]),
                        d[2].max(r[2]),
                        d[3].max(r[3]),
                    ],
                });
            }
        }
        if let Some(rect) = dirty {
            self.display.write_mask(Some(mask), rect);
        }
    }

    /// Inverts the mask (no mask becomes "style nowhere"), or clears it back to none.
    pub(super) fn edit_mask(&mut self, invert: bool) {
        let Some(doc) = self.state.doc.as_mut() else {
            return;
        };
        let [w, h] = doc.display_size();
        if invert {
            let mut m = doc
                .mask
                .as_deref()
                .cloned()
                .unwrap_or_else(|| super::mask::full(w, h));
            super::mask::invert(&mut m);
            doc.mask = Some(Arc::new(m));
        } else {
            doc.mask = None;
        }
        self.display.write_mask(doc.mask.as_deref(), [0, 0, w, h]);
    }
}
