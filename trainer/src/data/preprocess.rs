//! The original's preprocessing (PAPER.md "Training recipe"): a random square crop, an
//! antialiased resize, /255 and clipping, the train-time colour augmentation of tf.image,
//! then 2x − 1.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{RawImage, Split};

/// tf.image.random_brightness's `max_delta` in the original.
const BRIGHTNESS_DELTA: f32 = 32.0 / 255.0;
/// Saturation and contrast factors are drawn from [LOWER, UPPER).
const FACTOR_LOWER: f32 = 0.5;
const FACTOR_UPPER: f32 = 1.5;
/// The crop's side is at least the square root of this fraction of the image's area.
const CROP_MIN_AREA: f64 = 0.33;
/// tf.image.rgb_to_grayscale's weights, for a grey model fed colour images.
const LUMA: [f32; 3] = [0.2989, 0.587, 0.114];

/// Output size and which random steps to take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preprocess {
    pub height: usize,
    pub width: usize,
    /// 1 or 3; grey images are repeated to 3 channels, colour ones reduced by luma to 1.
    pub channels: usize,
    /// Random square crop before the resize (else the whole image is resized).
    pub crop: bool,
    /// Random brightness, saturation and contrast.
    pub augment: bool,
}

impl Preprocess {
    /// The original's settings: every split is cropped, only train is augmented.
    pub fn original(height: usize, width: usize, channels: usize, split: Split) -> Preprocess {
        Preprocess {
            height,
            width,
            channels,
            crop: true,
            augment: split == Split::Train,
        }
    }
}

/// A rectangle of an image, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// Preprocesses one image to `cfg.height × cfg.width × cfg.channels` f32 values in [-1, 1]
/// (HWC). Random choices come from `rng`, in a fixed order: crop side, crop top, crop left,
/// brightness delta, saturation factor, contrast factor (each only when enabled).
///
/// The resize is [`resize_triangle`]: antialiased (tf.image.resize's `antialias=True`
/// bilinear). Saturation is tf.image.adjust_saturation's HSV scaling, done in closed form.
///
/// # Panics
/// When `cfg.channels` is not 1 or 3, or the image is empty or its pixel count does not
/// match its size (the loader checks images before calling this).
pub fn preprocess(image: &RawImage, cfg: &Preprocess, rng: &mut ChaCha8Rng) -> Vec<f32> {
    assert!(
        cfg.channels == 1 || cfg.channels == 3,
        "Preprocess.channels must be 1 or 3, not {}",
        cfg.channels
    );
    let window = if cfg.crop {
        crop_window(image.height, image.width, rng)
    } else {
        Window {
            top: 0,
            left: 0,
            height: image.height,
            width: image.width,
        }
    };
    let pixels = window_pixels(image, window, cfg.channels);
    let mut out = resize_triangle(
        &pixels,
        window.height,
        window.width,
        cfg.channels,
        cfg.height,
        cfg.width,
    );
    for v in &mut out {
        *v = (*v / 255.0).clamp(0.0, 1.0);
    }
    if cfg.augment {
        augment(&mut out, cfg.channels, rng);
    }
    for v in &mut out {
        *v = 2.0 * *v - 1.0;
    }
    out
}

/// The original's random square crop: side uniform in [ceil(sqrt(0.33·H·W)), min(H, W))
/// (min(H, W) when that range is empty), position uniform.
pub(crate) fn crop_window(height: usize, width: usize, rng: &mut ChaCha8Rng) -> Window {
    let short = height.min(width);
    let lower = (CROP_MIN_AREA * (height * width) as f64).sqrt().ceil() as usize;
    let side = if lower < short {
        rng.random_range(lower..short)
    } else {
        short
    };
    let top = rng.random_range(0..=height - side);
    let left = rng.random_range(0..=width - side);
    Window {
        top,
        left,
        height: side,
        width: side,
    }
}

/// The window's pixels as f32 in 0..=255, converted to `channels` channels.
fn window_pixels(image: &RawImage, window: Window, channels: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(window.height * window.width * channels);
    for y in window.top..window.top + window.height {
        let start = (y * image.width + window.left) * image.channels;
        let row = &image.pixels[start..start + window.width * image.channels];
        match (image.channels, channels) {
            (1, 3) => row.iter().for_each(|&p| out.extend([f32::from(p); 3])),
            (3, 1) => row
                .chunks_exact(3)
                .for_each(|p| out.push(p.iter().zip(LUMA).map(|(&v, w)| f32::from(v) * w).sum())),
            (from, to) if from == to => out.extend(row.iter().map(|&p| f32::from(p))),
            (from, to) => panic!("cannot convert {from} channels to {to}"),
        }
    }
    out
}

/// Resizes an HWC f32 image with a triangle (bilinear) kernel that is widened by the scale
/// factor when shrinking, so that every source pixel contributes (antialiasing): the kernel of
/// tf.image.resize(antialias=True) and of image's `imageops::resize(FilterType::Triangle)`,
/// whose results this matches to float rounding. Own code rather than `imageops` because it
/// keeps f32 values unquantised, any channel count, and precomputes the weights once per axis.
pub fn resize_triangle(
    src: &[f32],
    height: usize,
    width: usize,
    channels: usize,
    out_height: usize,
    out_width: usize,
) -> Vec<f32> {
    assert_eq!(
        src.len(),
        height * width * channels,
        "resize_triangle: pixel count does not match the size"
    );
    let row_len = width * channels;
    // Rows first: when shrinking, this leaves fewer rows for the column pass.
    let mut rows = vec![0.0f32; out_height * row_len];
    for (out_row, taps) in rows
        .chunks_exact_mut(row_len)
        .zip(triangle_taps(height, out_height))
    {
        for (k, w) in taps.weights.iter().enumerate() {
            let start = (taps.first + k) * row_len;
            for (o, &s) in out_row.iter_mut().zip(&src[start..start + row_len]) {
                *o += w * s;
            }
        }
    }
    let columns = triangle_taps(width, out_width);
    let mut out = vec![0.0f32; out_height * out_width * channels];
    for (out_row, row) in out
        .chunks_exact_mut(out_width * channels)
        .zip(rows.chunks_exact(row_len))
    {
        for (pixel, taps) in out_row.chunks_exact_mut(channels).zip(&columns) {
            for (k, w) in taps.weights.iter().enumerate() {
                let start = (taps.first + k) * channels;
                for (o, &s) in pixel.iter_mut().zip(&row[start..start + channels]) {
                    *o += w * s;
                }
            }
        }
    }
    out
}

/// The source samples feeding one output sample and their normalised weights.
struct Taps {
    first: usize,
    weights: Vec<f32>,
}

/// Weights along one axis of `len` samples resized to `out_len` (the computation of image's
/// `imageops` sampling): output sample `o` is centred at `(o + 0.5)·ratio` in the source; the
/// triangle kernel is stretched by the ratio when shrinking; taps outside the source are
/// dropped and the rest renormalised.
fn triangle_taps(len: usize, out_len: usize) -> Vec<Taps> {
    let ratio = len as f32 / out_len as f32;
    let scale = ratio.max(1.0);
    let support = scale;
    (0..out_len)
        .map(|o| {
            let centre = (o as f32 + 0.5) * ratio;
            let first = ((centre - support).floor().max(0.0) as usize).min(len - 1);
            let end = ((centre + support).ceil() as usize).clamp(first + 1, len);
            let weights: Vec<f32> = (first..end)
                .map(|i| (1.0 - ((i as f32 - (centre - 0.5)) / scale).abs()).max(0.0))
                .collect();
            let sum: f32 = weights.iter().sum();
            Taps {
                first,
                weights: weights.into_iter().map(|w| w / sum).collect(),
            }
        })
        .collect()
}

/// tf.image's random brightness, saturation and contrast on [0, 1] values, clipping after each.
fn augment(x: &mut [f32], channels: usize, rng: &mut ChaCha8Rng) {
    let delta = rng.random_range(-BRIGHTNESS_DELTA..BRIGHTNESS_DELTA);
    let saturation = rng.random_range(FACTOR_LOWER..FACTOR_UPPER);
    let contrast = rng.random_range(FACTOR_LOWER..FACTOR_UPPER);
    for v in x.iter_mut() {
        *v = (*v + delta).clamp(0.0, 1.0);
    }
    // Saturation has no meaning for grey images (tf.image refuses them); they skip it.
    if channels == 3 {
        x.chunks_exact_mut(3)
            .for_each(|p| scale_saturation(p, saturation));
    }
    adjust_contrast(x, channels, contrast);
}

/// tf.image.adjust_saturation without the HSV round trip: with V = max and S = (max − min)/max,
/// scaling S by `factor` (clipped to 1) while keeping hue and value moves every channel c to
/// max − (max − c)·g with g = min(factor, max / (max − min)). Stays in [0, 1].
fn scale_saturation(pixel: &mut [f32], factor: f32) {
    let max = pixel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let min = pixel.iter().copied().fold(f32::INFINITY, f32::min);
    let range = max - min;
    if range <= 0.0 {
        return;
    }
    let gain = factor.min(max / range);
    for c in pixel.iter_mut() {
        *c = (max - (max - *c) * gain).clamp(0.0, 1.0);
    }
}

/// tf.image.adjust_contrast: per channel, mean + factor·(x − mean), then clipped.
fn adjust_contrast(x: &mut [f32], channels: usize, factor: f32) {
    let pixels = (x.len() / channels) as f32;
    for c in 0..channels {
        let mean = x.iter().skip(c).step_by(channels).sum::<f32>() / pixels;
        for v in x.iter_mut().skip(c).step_by(channels) {
            *v = (mean + factor * (*v - mean)).clamp(0.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    /// A deterministic test image with structure in every channel.
    fn image(height: usize, width: usize, channels: usize) -> RawImage {
        let pixels = (0..height * width * channels)
            .map(|i| ((i * 37 + i / 7 * 11) % 256) as u8)
            .collect();
        RawImage {
            height,
            width,
            channels,
            pixels,
        }
    }

    fn cfg(channels: usize, crop: bool, augment: bool) -> Preprocess {
        Preprocess {
            height: 12,
            width: 10,
            channels,
            crop,
            augment,
        }
    }

    #[test]
    fn crop_side_in_the_original_range() {
        let (h, w) = (40, 30);
        let lower = (0.33f64 * 1200.0).sqrt().ceil() as usize; // 20
        let mut sides = std::collections::BTreeSet::new();
        let mut r = rng(1);
        for _ in 0..2000 {
            let win = crop_window(h, w, &mut r);
            assert_eq!(win.height, win.width);
            assert!(win.height >= lower && win.height < 30, "{win:?}");
            assert!(
                win.top + win.height <= h && win.left + win.width <= w,
                "{win:?}"
            );
            sides.insert(win.height);
        }
        assert_eq!(
            sides.into_iter().collect::<Vec<_>>(),
            (lower..30).collect::<Vec<_>>()
        );
    }

    #[test]
    fn crop_of_a_tiny_image_takes_the_short_side() {
        // ceil(sqrt(0.33 · 2 · 3)) = 2 = min(H, W): empty range.
        let win = crop_window(2, 3, &mut rng(0));
        assert_eq!((win.height, win.width), (2, 2));
        assert_eq!(
            crop_window(1, 1, &mut rng(0)),
            Window {
                top: 0,
                left: 0,
                height: 1,
                width: 1
            }
        );
    }

    #[test]
    fn output_in_range_and_deterministic() {
        for channels in [1, 3] {
            let img = image(33, 29, 3);
            let c = cfg(channels, true, true);
            let a = preprocess(&img, &c, &mut rng(7));
            assert_eq!(a.len(), 12 * 10 * channels);
            assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
            assert_eq!(a, preprocess(&img, &c, &mut rng(7)));
            assert_ne!(a, preprocess(&img, &c, &mut rng(8)));
        }
    }

    #[test]
    fn grey_is_repeated_to_three_channels() {
        let img = image(20, 16, 1);
        let out = preprocess(&img, &cfg(3, true, false), &mut rng(3));
        assert!(out.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        let grey = preprocess(&img, &cfg(1, true, false), &mut rng(3));
        assert_eq!(out.iter().step_by(3).copied().collect::<Vec<_>>(), grey);
    }

    #[test]
    fn plain_is_resize_then_scale_exactly() {
        let img = image(20, 16, 3);
        let out = preprocess(&img, &cfg(3, false, false), &mut rng(0));
        let src: Vec<f32> = img.pixels.iter().map(|&p| f32::from(p)).collect();
        let expected: Vec<f32> = resize_triangle(&src, 20, 16, 3, 12, 10)
            .into_iter()
            .map(|v| 2.0 * (v / 255.0).clamp(0.0, 1.0) - 1.0)
            .collect();
        assert_eq!(out, expected);
        // Without random steps the generator is not touched.
        let mut r = rng(0);
        preprocess(&img, &cfg(3, false, false), &mut r);
        assert_eq!(r, rng(0));
    }

    #[test]
    fn resize_matches_image_crate() {
        for (h, w, oh, ow) in [(20, 16, 12, 10), (7, 9, 15, 20), (64, 48, 17, 13)] {
            let img = image(h, w, 3);
            let src: Vec<f32> = img.pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
            let ours = resize_triangle(&src, h, w, 3, oh, ow);
            let buffer = image::Rgb32FImage::from_raw(w as u32, h as u32, src).unwrap();
            let theirs = image::imageops::resize(
                &buffer,
                ow as u32,
                oh as u32,
                image::imageops::FilterType::Triangle,
            );
            let diff = ours
                .iter()
                .zip(theirs.as_raw())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "{h}x{w} -> {oh}x{ow}: max diff {diff}");
        }
    }

    #[test]
    fn resize_keeps_constants_and_identity() {
        let src = vec![0.25f32; 9 * 7 * 2];
        assert!(resize_triangle(&src, 9, 7, 2, 4, 5)
            .iter()
            .all(|v| (v - 0.25).abs() < 1e-6));
        let img: Vec<f32> = image(6, 5, 3)
            .pixels
            .iter()
            .map(|&p| f32::from(p))
            .collect();
        assert_eq!(resize_triangle(&img, 6, 5, 3, 6, 5), img);
    }

    #[test]
    fn saturation_matches_hsv_scaling() {
        // Orange (1.0, 0.5, 0.2): H fixed, V = 1, S = 0.8. Factor 0.5: S = 0.4 -> (1, 0.75, 0.6).
        let mut p = [1.0f32, 0.5, 0.2];
        scale_saturation(&mut p, 0.5);
        assert!(
            p.iter()
                .zip([1.0, 0.75, 0.6])
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "{p:?}"
        );
        // Factor 1.5: S = 1.2 clips to 1 -> min channel 0, hue kept: (1, 0.375, 0).
        let mut p = [1.0f32, 0.5, 0.2];
        scale_saturation(&mut p, 1.5);
        assert!(
            p.iter()
                .zip([1.0, 0.375, 0.0])
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "{p:?}"
        );
        let mut grey = [0.3f32; 3];
        scale_saturation(&mut grey, 1.5);
        assert_eq!(grey, [0.3; 3]);
    }

    #[test]
    fn contrast_scales_around_the_channel_mean() {
        let mut x = [0.2f32, 0.0, 0.6, 1.0];
        adjust_contrast(&mut x, 2, 0.5);
        // Channel 0: mean 0.4 -> 0.3, 0.5; channel 1: mean 0.5 -> 0.25, 0.75.
        assert!(
            x.iter()
                .zip([0.3, 0.25, 0.5, 0.75])
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "{x:?}"
        );
    }

    #[test]
    fn augmentation_changes_values_within_bounds() {
        let img = image(20, 16, 3);
        let plain = preprocess(&img, &cfg(3, false, false), &mut rng(5));
        let augmented = preprocess(&img, &cfg(3, false, true), &mut rng(5));
        assert_ne!(plain, augmented);
        assert!(augmented.iter().all(|v| (-1.0..=1.0).contains(v)));
    }

    #[test]
    fn original_settings_per_split() {
        assert!(Preprocess::original(150, 150, 3, Split::Train).augment);
        let val = Preprocess::original(150, 150, 3, Split::Val);
        assert!(val.crop && !val.augment);
    }
}
