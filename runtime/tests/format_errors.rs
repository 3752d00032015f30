//! A `.tnn` buffer that is truncated, corrupt or inconsistent is refused with a typed error,
//! never a panic.

use alltnn_runtime::format::{self, AlignedBytes, DType, TensorSource, TnnFile};
use alltnn_runtime::spec::{LayerKind, ModelSpec, Norm, TensorRole, TensorSpec};
use alltnn_runtime::FormatError;

fn small_spec() -> ModelSpec {
    let mut spec = ModelSpec::paper_cnn();
    spec.input.height = 9;
    spec.input.width = 9;
    spec.layers.truncate(2);
    spec.layers[0].filters = 3;
    spec.layers[0].kernel = 3;
    spec.layers[0].stride = 1;
    spec.layers[1].filters = 2;
    spec.layers[1].kind = LayerKind::LocallyConnected;
    spec.layers[1].norm = Norm::None;
    spec.readout.classes = 4;
    spec
}

/// The tensors `spec` requires, as (spec, values), with values `i · 0.5`.
fn tensors_of(spec: &ModelSpec) -> Vec<(TensorSpec, Vec<f32>)> {
    let tensors = spec.tensors().unwrap();
    tensors
        .into_iter()
        .map(|t| {
            let values = (0..t.len()).map(|i| i as f32 * 0.5).collect();
            (t, values)
        })
        .collect()
}

/// Encodes `tensors` (names from their specs) for `spec`.
fn encode_for(
    spec: &ModelSpec,
    tensors: &[(TensorSpec, Vec<f32>)],
    classes: &[String],
) -> Result<Vec<u8>, FormatError> {
    let names: Vec<String> = tensors.iter().map(|(t, _)| t.name()).collect();
    let sources: Vec<TensorSource> = tensors
        .iter()
        .zip(&names)
        .map(|((t, d), n)| TensorSource {
            name: n,
            dtype: DType::F32,
            shape: &t.shape,
            bytes: bytemuck::cast_slice(d),
        })
        .collect();
    format::encode(spec, &sources, classes)
}

fn encoded(spec: &ModelSpec, classes: &[String]) -> Vec<u8> {
    encode_for(spec, &tensors_of(spec), classes).unwrap()
}

fn parse(bytes: &[u8]) -> Result<(), FormatError> {
    let aligned = AlignedBytes::from_slice(bytes);
    TnnFile::parse_verified(&aligned).map(|_| ())
}

#[test]
fn a_valid_file_round_trips() {
    let spec = small_spec();
    let names: Vec<String> = (0..4).map(|i| format!("class {i}")).collect();
    let bytes = AlignedBytes::from_slice(&encoded(&spec, &names));
    let file = TnnFile::parse_verified(&bytes).unwrap();
    assert_eq!(file.spec(), &spec);
    assert_eq!(file.class_names(), &names[..]);
    assert_eq!(file.tensor_f32("layer1.bias").unwrap(), &[0.0, 0.5]);
}

#[test]
fn every_truncation_is_refused() {
    let bytes = encoded(&small_spec(), &[]);
    for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let err = parse(&bytes[..len]).unwrap_err();
        if len >= 8 {
            assert!(
                matches!(err, FormatError::Truncated { .. }),
                "length {len}: {err}"
            );
        }
    }
    let err = parse(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn every_flipped_byte_is_detected() {
    let bytes = encoded(&small_spec(), &[]);
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(
            parse(&bad).is_err(),
            "flip at byte {i} of {} went unnoticed",
            bytes.len()
        );
    }
}

#[test]
fn flipped_data_bytes_name_the_tensor() {
    let bytes = encoded(&small_spec(), &[]);
    let mut bad = bytes.clone();
    let last = bad.len() - 2;
    bad[last] ^= 1;
    assert_eq!(
        parse(&bad).unwrap_err(),
        FormatError::TensorChecksum("readout.bias".into())
    );
    // Parsing alone does not read the tensor bytes; verification does.
    let aligned = AlignedBytes::from_slice(&bad);
    assert!(TnnFile::parse(&aligned).is_ok());
}

#[test]
fn bad_magic_and_version() {
    let mut bytes = encoded(&small_spec(), &[]);
    assert_eq!(
        parse(b"PK\x03\x04 this is a zip file, not a model at all, padded to 64 bytes....")
            .unwrap_err(),
        FormatError::BadMagic
    );
    bytes[8] = 2;
    // The version is covered by the header checksum; recompute it to reach the version check.
    let crc = crc(&[&bytes[..44], &bytes[48..64]].concat());
    bytes[44..48].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        parse(&bytes).unwrap_err(),
        FormatError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
}

#[test]
fn tensors_must_match_the_spec() {
    let spec = small_spec();
    let mut other = spec.clone();
    other.layers[1].filters = 3;
    let tensors = tensors_of(&other);
    let err = encode_for(&spec, &tensors, &[]).unwrap_err();
    assert!(
        matches!(err, FormatError::ShapeMismatch { ref name, .. } if name == "layer1.kernel"),
        "{err}"
    );
    let err = encode_for(&spec, &tensors[1..], &[]).unwrap_err();
    assert_eq!(err, FormatError::MissingTensor("layer0.kernel".into()));
}

#[test]
fn misaligned_buffers_are_refused() {
    let bytes = encoded(&small_spec(), &[]);
    let mut shifted = AlignedBytes::from_slice(&[&[0u8][..], &bytes].concat());
    let err = TnnFile::parse(&shifted[1..]).unwrap_err();
    assert_eq!(err, FormatError::Misaligned);
    shifted[0] = 0;
}

fn crc(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    h.finalize()
}

/// Stored tensors for `spec` with every kernel in `dtype` (int8 with scales of 0.25), as
/// (name, dtype, shape, bytes).
fn stored_as(spec: &ModelSpec, dtype: DType) -> Vec<(String, DType, Vec<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    for (t, values) in tensors_of(spec) {
        let is_kernel = t.role == TensorRole::Kernel;
        match dtype {
            DType::F16 if is_kernel => {
                let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
                out.push((
                    t.name(),
                    DType::F16,
                    t.shape.clone(),
                    bytemuck::cast_slice(&h).to_vec(),
                ));
            }
            DType::I8 if is_kernel => {
                let q: Vec<i8> = (0..t.len()).map(|i| (i % 255) as i8).collect();
                let units = t.unit_shape().unwrap();
                let scales = vec![0.25f32; units.iter().product()];
                out.push((
                    t.name(),
                    DType::I8,
                    t.shape.clone(),
                    bytemuck::cast_slice(&q).to_vec(),
                ));
                out.push((
                    format::scale_name(&t.name()),
                    DType::F32,
                    units,
                    bytemuck::cast_slice(&scales).to_vec(),
                ));
            }
            _ => out.push((
                t.name(),
                DType::F32,
                t.shape.clone(),
                bytemuck::cast_slice(&values).to_vec(),
            )),
        }
    }
    out
}

fn encode_stored(
    spec: &ModelSpec,
    stored: &[(String, DType, Vec<usize>, Vec<u8>)],
) -> Result<(), FormatError> {
    let sources: Vec<TensorSource> = stored
        .iter()
        .map(|(name, dtype, shape, bytes)| TensorSource {
            name,
            dtype: *dtype,
            shape,
            bytes,
        })
        .collect();
    parse(&format::encode(spec, &sources, &[])?)
}

#[test]
fn f16_and_int8_kernels_round_trip_with_their_scales() {
    let spec = small_spec();
    for dtype in [DType::F16, DType::I8] {
        let stored = stored_as(&spec, dtype);
        let sources: Vec<TensorSource> = stored
            .iter()
            .map(|(name, dtype, shape, bytes)| TensorSource {
                name,
                dtype: *dtype,
                shape,
                bytes,
            })
            .collect();
        let bytes = AlignedBytes::from_slice(&format::encode(&spec, &sources, &[]).unwrap());
        let file = TnnFile::parse_verified(&bytes).unwrap();
        assert_eq!(file.kernel_dtype(), Some(dtype));
        let kernel = file.weights("layer1.kernel").unwrap();
        assert_eq!(kernel.dtype(), dtype);
        // Layer 1 is locally connected with 2 filters.
        let expected: Vec<f32> = match dtype {
            DType::F16 => (0..kernel.len()).map(|i| i as f32 * 0.5).collect(),
            _ => (0..kernel.len())
                .map(|i| (i % 255) as i8 as f32 * 0.25)
                .collect(),
        };
        assert_eq!(kernel.to_f32(2), expected);
        let err = file.tensor_f32("layer1.kernel").unwrap_err().to_string();
        assert!(
            err.contains("layer1.kernel") && err.contains(dtype.name()),
            "{err}"
        );
    }
}

#[test]
fn int8_kernels_need_well_formed_scales_and_only_kernels_may_shrink() {
    let spec = small_spec();
    let base = stored_as(&spec, DType::I8);
    let without = |name: &str| -> Vec<_> { base.iter().filter(|t| t.0 != name).cloned().collect() };

    let err = encode_stored(&spec, &without("layer0.kernel.scale")).unwrap_err();
    assert_eq!(
        err,
        FormatError::MissingTensor("layer0.kernel.scale".into())
    );

    let mut wrong_shape = base.clone();
    let scale = wrong_shape
        .iter_mut()
        .find(|t| t.0 == "readout.kernel.scale")
        .unwrap();
    scale.2 = vec![2, 2];
    let err = encode_stored(&spec, &wrong_shape).unwrap_err().to_string();
    assert!(
        err.contains("readout.kernel.scale") && err.contains("[4]"),
        "{err}"
    );

    // Scales of a kernel that is not int8 are not part of the model.
    let mut stray = stored_as(&spec, DType::F32);
    stray.push(
        base.iter()
            .find(|t| t.0 == "layer1.kernel.scale")
            .unwrap()
            .clone(),
    );
    let err = encode_stored(&spec, &stray).unwrap_err();
    assert_eq!(
        err,
        FormatError::UnexpectedTensor("layer1.kernel.scale".into())
    );

    let mut f16_bias = stored_as(&spec, DType::F32);
    let bias = f16_bias.iter_mut().find(|t| t.0 == "layer1.bias").unwrap();
    bias.1 = DType::F16;
    bias.3.truncate(bias.3.len() / 2);
    let err = encode_stored(&spec, &f16_bias).unwrap_err().to_string();
    assert!(
        err.contains("layer1.bias") && err.contains("only kernels"),
        "{err}"
    );
}

#[test]
fn an_unknown_dtype_code_is_refused() {
    let spec = small_spec();
    let bytes = encoded(&spec, &[]);
    let file = TnnFile::parse(&AlignedBytes::from_slice(&bytes))
        .unwrap()
        .tensors()[0]
        .clone();
    // Find the first tensor's dtype byte: right after its name in the metadata.
    let name = file.name.as_bytes();
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let mut corrupt = bytes.clone();
    corrupt[at] = 9;
    // Recompute the metadata checksum so that the dtype check itself is reached.
    let meta_len = u64::from_le_bytes(corrupt[16..24].try_into().unwrap()) as usize;
    let crc = crc32fast::hash(&corrupt[64..64 + meta_len]);
    corrupt[40..44].copy_from_slice(&crc.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&corrupt[..44]);
    h.update(&corrupt[48..64]);
    corrupt[44..48].copy_from_slice(&h.finalize().to_le_bytes());
    let err = parse(&corrupt).unwrap_err().to_string();
    assert!(err.contains("unknown dtype code 9"), "{err}");
}
