//! Fallible allocation for the big buffers (decoded photos, tiled outputs, video
//! frames). Rust aborts the whole process when an ordinary allocation fails, which under
//! a memory limit (`ulimit -v`, `vm.overcommit_memory = 2`) loses the rest of a batch;
//! these report [`Error::OutOfMemory`] instead, naming what needed the memory.

use crate::{Error, Result};

/// A zero-filled vector of `len` elements, or an error if the memory is not there.
pub fn zeroed<T: Clone + Default>(len: usize, what: &str) -> Result<Vec<T>> {
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| out_of_memory(what, bytes))?;
    v.resize(len, T::default());
    Ok(v)
}

/// Checks that `bytes` can be allocated right now, for buffers that a library (the image
/// decoders, candle) allocates itself. The probe goes through the global allocator, which
/// serves the library's allocation from the same space afterwards. (Under an address-space
/// limit `main.rs` lets it give freed memory back; with freed memory kept mapped, the probe
/// itself would hold on to the space it proved free.)
pub fn ensure(bytes: u64, what: &str) -> Result<()> {
    let n = usize::try_from(bytes).map_err(|_| out_of_memory(what, bytes as usize))?;
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(n)
        .map_err(|_| out_of_memory(what, n))?;
    Ok(())
}

/// An RGB image of `w`×`h` pixels, allocated fallibly.
pub fn rgb_image(w: u32, h: u32, what: &str) -> Result<image::RgbImage> {
    let len = rgb_len(w, h).ok_or_else(|| out_of_memory(what, usize::MAX))?;
    let buf = zeroed::<u8>(len, what)?;
    image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| Error::Invalid(format!("bad {w}×{h} buffer for {what}")))
}

/// Bytes of an 8-bit RGB buffer, or `None` where that overflows the address space.
pub fn rgb_len(w: u32, h: u32) -> Option<usize> {
    (w as usize).checked_mul(h as usize)?.checked_mul(3)
}

fn out_of_memory(what: &str, bytes: usize) -> Error {
    Error::OutOfMemory {
        what: what.to_string(),
        bytes: bytes as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        let e = zeroed::<u64>(usize::MAX / 4, "a test buffer").unwrap_err();
        assert!(
            e.to_string()
                .contains("not enough memory for a test buffer"),
            "{e}"
        );
        assert!(ensure(u64::MAX / 2, "a probe").is_err());
        assert!(rgb_image(u32::MAX, u32::MAX, "a frame").is_err());
        assert_eq!(zeroed::<u8>(5, "small").unwrap(), vec![0; 5]);
    }
}
