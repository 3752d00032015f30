//! Float functions for `no_std`: `libm` (accurate) by default, `micromath` with `fast-math`.
//! micromath's approximations (sqrt off by up to 6 %) cannot meet the fixtures' 1e-4 parity, so
//! it is strictly opt-in.

#[cfg(not(feature = "fast-math"))]
pub fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}

#[cfg(not(feature = "fast-math"))]
pub fn exp(x: f32) -> f32 {
    libm::expf(x)
}

#[cfg(feature = "fast-math")]
pub fn sqrt(x: f32) -> f32 {
    micromath::F32Ext::sqrt(x)
}

#[cfg(feature = "fast-math")]
pub fn exp(x: f32) -> f32 {
    micromath::F32Ext::exp(x)
}
