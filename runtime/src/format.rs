//! The compact `.tnn` model format: read zero-copy from any byte slice (a memory map or a
//! `&'static [u8]` in flash), and encoded for the converter.
//!
//! Layout, all little-endian:
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `ALLTNN\0\x1a` |
//! | 8..12 | version (`u32`, currently 1) |
//! | 12..16 | flags (`u32`, 0) |
//! | 16..24 | metadata length (`u64`); the metadata starts at byte 64 |
//! | 24..32 | data offset (`u64`, a multiple of 64) |
//! | 32..40 | data length (`u64`); the file ends at data offset + data length |
//! | 40..44 | CRC-32 of the metadata |
//! | 44..48 | CRC-32 of bytes 0..44 and 48..64 |
//! | 48..64 | zero (reserved) |
//!
//! Metadata: the encoded [`ModelSpec`], the tensor table (`u32` count; per tensor: name,
//! dtype code (0 f32, 1 f16, 2 int8), rank, dims as `u32`, offset from the data start as `u64`, byte length `u64`,
//! CRC-32 of its bytes `u32`) and the class names (`u32` count, then strings). Strings are a
//! `u16` byte length followed by UTF-8. Tensor data start at multiples of 64 bytes; all padding
//! is zero, so that every byte of a file is checked.
//!
//! [`TnnFile::parse`] checks everything but the tensor bytes, so opening a memory-mapped model
//! touches only its first pages; [`TnnFile::verify_checksums`] reads every tensor once.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::error::FormatError;
use crate::kernels::weights::Weights;
use crate::spec::{
    Activation, InputSpec, LayerKind, LayerSpec, ModelSpec, Norm, NormParams, OutputActivation,
    Preprocess, ReadoutSpec, TensorRole,
};

pub const MAGIC: [u8; 8] = *b"ALLTNN\0\x1a";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
pub const ALIGN: usize = 64;

/// Element type of a stored tensor. Only kernels may be f16 or int8; an int8 kernel `NAME` comes
/// with an f32 tensor `NAME.scale` of one scale per output unit (see
/// [`crate::kernels::weights`] and [`crate::spec::TensorSpec::unit_shape`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    I8,
}

impl DType {
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::I8];

    pub fn code(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::I8 => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.code() == code)
    }

    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::I8 => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "int8",
        }
    }
}

/// Name of the per-unit scales of the int8 kernel `kernel`.
pub fn scale_name(kernel: &str) -> String {
    format!("{kernel}.scale")
}

/// One row of the tensor table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Offset from the start of the data section.
    pub offset: usize,
    pub byte_len: usize,
    pub crc32: u32,
}

/// A parsed `.tnn` buffer. Tensor data stay in the buffer; nothing is copied.
#[derive(Debug, Clone)]
pub struct TnnFile<'a> {
    bytes: &'a [u8],
    spec: ModelSpec,
    tensors: Vec<TensorEntry>,
    class_names: Vec<String>,
    data_offset: usize,
}

impl<'a> TnnFile<'a> {
    /// Validates header, metadata, tensor table and shapes against the spec. Tensor bytes are
    /// not read (see [`TnnFile::verify_checksums`]).
    pub fn parse(bytes: &'a [u8]) -> Result<TnnFile<'a>, FormatError> {
        let found = bytes.len() as u64;
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(if MAGIC.starts_with(bytes) {
                FormatError::Truncated {
                    expected: HEADER_LEN as u64,
                    found,
                }
            } else {
                FormatError::BadMagic
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(FormatError::Truncated {
                expected: HEADER_LEN as u64,
                found,
            });
        }
        let mut header = Reader::new(&bytes[8..HEADER_LEN]);
        let version = header.u32()?;
        let _flags = header.u32()?;
        let meta_len = header.u64()?;
        let data_offset = header.u64()?;
        let data_len = header.u64()?;
        let meta_crc = header.u32()?;
        let header_crc = header.u32()?;
        if header_crc32(&bytes[..HEADER_LEN]) != header_crc {
            return Err(FormatError::HeaderChecksum);
        }
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let meta_end = (HEADER_LEN as u64).checked_add(meta_len);
        let total = data_offset.checked_add(data_len);
        let (Some(meta_end), Some(total)) = (meta_end, total) else {
            return Err(FormatError::Malformed("section sizes overflow".into()));
        };
        if meta_end > data_offset || data_offset % ALIGN as u64 != 0 {
            return Err(FormatError::Malformed("data section misplaced".into()));
        }
        if total > found {
            return Err(FormatError::Truncated {
                expected: total,
                found,
            });
        }
        if total < found {
            return Err(FormatError::Malformed(format!(
                "{} unexpected bytes after the end of the data",
                found - total
            )));
        }
        // `total` fits the buffer, so these conversions cannot fail.
        let (meta_end, data_offset, data_len) =
            (meta_end as usize, data_offset as usize, data_len as usize);
        let meta = &bytes[HEADER_LEN..meta_end];
        if crc32(meta) != meta_crc {
            return Err(FormatError::MetadataChecksum);
        }
        if bytes[meta_end..data_offset].iter().any(|&b| b != 0) {
            return Err(FormatError::Malformed(
                "non-zero padding after the metadata".into(),
            ));
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<f32>()) {
            return Err(FormatError::Misaligned);
        }

        let mut r = Reader::new(meta);
        let spec = read_spec(&mut r)?;
        let count = r.u32()? as usize;
        let mut tensors: Vec<TensorEntry> = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let name = r.string()?;
            let code = r.u8()?;
            let dtype = DType::from_code(code).ok_or_else(|| {
                FormatError::Malformed(format!("tensor `{name}` has unknown dtype code {code}"))
            })?;
            let rank = r.u8()? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u32()? as usize);
            }
            let offset = r.u64()?;
            let byte_len = r.u64()?;
            let crc32 = r.u32()?;
            let end = offset
                .checked_add(byte_len)
                .filter(|&e| e <= data_len as u64);
            if end.is_none() || offset % ALIGN as u64 != 0 {
                return Err(FormatError::Malformed(format!(
                    "tensor `{name}` lies outside the data section"
                )));
            }
            let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if elements.and_then(|n| n.checked_mul(dtype.size())) != Some(byte_len as usize) {
                return Err(FormatError::Malformed(format!(
                    "tensor `{name}`: {byte_len} bytes do not hold shape {shape:?} of {}",
                    dtype.name()
                )));
            }
            if tensors.iter().any(|t| t.name == name) {
                return Err(FormatError::Malformed(format!(
                    "tensor `{name}` appears twice"
                )));
            }
            tensors.push(TensorEntry {
                name,
                dtype,
                shape,
                offset: offset as usize,
                byte_len: byte_len as usize,
                crc32,
            });
        }
        let class_count = r.u32()? as usize;
        let mut class_names = Vec::with_capacity(class_count.min(65536));
        for _ in 0..class_count {
            class_names.push(r.string()?);
        }
        if !r.is_empty() {
            return Err(FormatError::Malformed(
                "trailing bytes in the metadata".into(),
            ));
        }
        if class_count != 0 && class_count != spec.readout.classes as usize {
            return Err(FormatError::Malformed(format!(
                "{class_count} class names for a readout of {} classes",
                spec.readout.classes
            )));
        }
        check_tensors_against_spec(&spec, &tensors)?;
        Ok(TnnFile {
            bytes,
            spec,
            tensors,
            class_names,
            data_offset,
        })
    }

    /// Parses, then verifies every tensor's checksum (reads the whole buffer once).
    pub fn parse_verified(bytes: &'a [u8]) -> Result<TnnFile<'a>, FormatError> {
        let file = Self::parse(bytes)?;
        file.verify_checksums()?;
        Ok(file)
    }

    /// Checks the CRC-32 of every tensor's bytes, and that the padding between them is zero.
    pub fn verify_checksums(&self) -> Result<(), FormatError> {
        let mut by_offset: Vec<&TensorEntry> = self.tensors.iter().collect();
        by_offset.sort_by_key(|t| t.offset);
        let mut end = 0;
        for t in by_offset {
            let gap = self
                .bytes
                .get(self.data_offset + end..self.data_offset + t.offset);
            if gap.is_none_or(|g| g.iter().any(|&b| b != 0)) {
                return Err(FormatError::Malformed(format!(
                    "tensor `{}` overlaps another or follows non-zero padding",
                    t.name
                )));
            }
            if crc32(self.entry_bytes(t)) != t.crc32 {
                return Err(FormatError::TensorChecksum(t.name.clone()));
            }
            end = t.offset + t.byte_len;
        }
        Ok(())
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// Class names stored with the model (empty if none were stored).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Size of the whole buffer.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }

    fn entry_bytes(&self, t: &TensorEntry) -> &'a [u8] {
        let start = self.data_offset + t.offset;
        &self.bytes[start..start + t.byte_len]
    }

    /// The stored values of an f32 tensor, without copying.
    /// An f32 tensor (biases and norm parameters are always f32; kernels may not be).
    pub fn tensor_f32(&self, name: &str) -> Result<&'a [f32], FormatError> {
        let t = self
            .tensor(name)
            .ok_or_else(|| FormatError::MissingTensor(name.to_string()))?;
        match t.dtype {
            DType::F32 => {
                bytemuck::try_cast_slice(self.entry_bytes(t)).map_err(|_| FormatError::Misaligned)
            }
            other => Err(FormatError::WrongDtype {
                name: name.to_string(),
                found: other.name(),
                allowed: "f32 expected here",
            }),
        }
    }

    /// A kernel in its stored type, zero-copy (int8 with its scales).
    pub fn weights(&self, name: &str) -> Result<Weights<'a>, FormatError> {
        let t = self
            .tensor(name)
            .ok_or_else(|| FormatError::MissingTensor(name.to_string()))?;
        let bytes = self.entry_bytes(t);
        Ok(match t.dtype {
            DType::F32 => Weights::F32(self.tensor_f32(name)?),
            DType::F16 => {
                Weights::F16(bytemuck::try_cast_slice(bytes).map_err(|_| FormatError::Misaligned)?)
            }
            DType::I8 => Weights::I8 {
                values: bytemuck::cast_slice(bytes),
                scales: self.tensor_f32(&scale_name(name))?,
            },
        })
    }

    /// The type of the model's kernels: `Some` if all share one, `None` if they are mixed.
    pub fn kernel_dtype(&self) -> Option<DType> {
        let mut kernels = self
            .spec
            .tensors()
            .ok()?
            .into_iter()
            .filter(|t| t.role == TensorRole::Kernel)
            .filter_map(|t| self.tensor(&t.name()).map(|e| e.dtype));
        let first = kernels.next()?;
        kernels.all(|d| d == first).then_some(first)
    }
}

fn check_tensors_against_spec(
    spec: &ModelSpec,
    tensors: &[TensorEntry],
) -> Result<(), FormatError> {
    let find = |name: &str| tensors.iter().find(|t| t.name == name);
    let check_shape = |name: &str, have: &TensorEntry, want: &[usize]| {
        if have.shape == want {
            Ok(())
        } else {
            Err(FormatError::ShapeMismatch {
                name: name.to_string(),
                expected: want.to_vec(),
                found: have.shape.clone(),
            })
        }
    };
    let mut expected = Vec::new();
    for want in spec.tensors()? {
        let name = want.name();
        let have = find(&name).ok_or_else(|| FormatError::MissingTensor(name.clone()))?;
        check_shape(&name, have, &want.shape)?;
        match (want.role, have.dtype) {
            (_, DType::F32) | (TensorRole::Kernel, DType::F16) => {}
            (TensorRole::Kernel, DType::I8) => {
                let scale = scale_name(&name);
                let have = find(&scale).ok_or_else(|| FormatError::MissingTensor(scale.clone()))?;
                let units = want.unit_shape().expect("kernels have units");
                check_shape(&scale, have, &units)?;
                if have.dtype != DType::F32 {
                    return Err(FormatError::WrongDtype {
                        name: scale,
                        found: have.dtype.name(),
                        allowed: "scales must be f32",
                    });
                }
                expected.push(scale);
            }
            (_, other) => {
                return Err(FormatError::WrongDtype {
                    name,
                    found: other.name(),
                    allowed: "only kernels may be f16 or int8",
                })
            }
        }
        expected.push(name);
    }
    match tensors.iter().find(|t| !expected.contains(&t.name)) {
        Some(extra) => Err(FormatError::UnexpectedTensor(extra.name.clone())),
        None => Ok(()),
    }
}

/// A tensor handed to the encoder.
#[derive(Clone, Copy, Debug)]
pub struct TensorSource<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
}

/// The part of a `.tnn` file before the tensor data, and where each tensor goes.
#[derive(Clone, Debug)]
pub struct EncodedPrefix {
    /// Header, metadata and zero padding up to the data section.
    pub prefix: Vec<u8>,
    /// Absolute file offset of every tensor, in the order given.
    pub offsets: Vec<usize>,
    /// Total file length.
    pub total_len: usize,
}

/// Lays out a model: validates the tensors against the spec and encodes header and metadata.
/// Write `prefix`, then each tensor's bytes at its offset with zero padding in between.
pub fn encode_prefix(
    spec: &ModelSpec,
    tensors: &[TensorSource<'_>],
    class_names: &[String],
) -> Result<EncodedPrefix, FormatError> {
    let mut meta = Vec::new();
    write_spec(&mut meta, spec);
    meta.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
    let mut relative = 0usize;
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut entries = Vec::with_capacity(tensors.len());
    for t in tensors {
        let elements: usize = t.shape.iter().product();
        if elements * t.dtype.size() != t.bytes.len() {
            return Err(FormatError::Malformed(format!(
                "tensor `{}`: {} bytes do not hold shape {:?}",
                t.name,
                t.bytes.len(),
                t.shape
            )));
        }
        write_string(&mut meta, t.name);
        meta.push(t.dtype.code());
        meta.push(t.shape.len() as u8);
        for &d in t.shape {
            meta.extend_from_slice(&(d as u32).to_le_bytes());
        }
        meta.extend_from_slice(&(relative as u64).to_le_bytes());
        meta.extend_from_slice(&(t.bytes.len() as u64).to_le_bytes());
        meta.extend_from_slice(&crc32(t.bytes).to_le_bytes());
        offsets.push(relative);
        entries.push(TensorEntry {
            name: t.name.to_string(),
            dtype: t.dtype,
            shape: t.shape.to_vec(),
            offset: relative,
            byte_len: t.bytes.len(),
            crc32: 0,
        });
        relative = align_up(relative + t.bytes.len());
    }
    if !class_names.is_empty() && class_names.len() != spec.readout.classes as usize {
        return Err(FormatError::Malformed(format!(
            "{} class names for a readout of {} classes",
            class_names.len(),
            spec.readout.classes
        )));
    }
    meta.extend_from_slice(&(class_names.len() as u32).to_le_bytes());
    for name in class_names {
        write_string(&mut meta, name);
    }
    check_tensors_against_spec(spec, &entries)?;

    let data_offset = align_up(HEADER_LEN + meta.len());
    let data_len = tensors
        .last()
        .map_or(0, |t| offsets[offsets.len() - 1] + t.bytes.len());
    let mut prefix = vec![0u8; data_offset];
    prefix[..8].copy_from_slice(&MAGIC);
    prefix[8..12].copy_from_slice(&VERSION.to_le_bytes());
    prefix[16..24].copy_from_slice(&(meta.len() as u64).to_le_bytes());
    prefix[24..32].copy_from_slice(&(data_offset as u64).to_le_bytes());
    prefix[32..40].copy_from_slice(&(data_len as u64).to_le_bytes());
    prefix[40..44].copy_from_slice(&crc32(&meta).to_le_bytes());
    let header_crc = header_crc32(&prefix[..HEADER_LEN]);
    prefix[44..48].copy_from_slice(&header_crc.to_le_bytes());
    prefix[HEADER_LEN..HEADER_LEN + meta.len()].copy_from_slice(&meta);
    Ok(EncodedPrefix {
        prefix,
        offsets: offsets.into_iter().map(|o| data_offset + o).collect(),
        total_len: data_offset + data_len,
    })
}

/// Encodes a whole model into one buffer (for small models, tests and embedded images).
pub fn encode(
    spec: &ModelSpec,
    tensors: &[TensorSource<'_>],
    class_names: &[String],
) -> Result<Vec<u8>, FormatError> {
    let layout = encode_prefix(spec, tensors, class_names)?;
    let mut out = layout.prefix;
    out.resize(layout.total_len, 0);
    for (t, &offset) in tensors.iter().zip(&layout.offsets) {
        out[offset..offset + t.bytes.len()].copy_from_slice(t.bytes);
    }
    Ok(out)
}

fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// CRC-32 of the header without its own checksum field.
fn header_crc32(header: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..44]);
    h.update(&header[48..HEADER_LEN]);
    h.finalize()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    h.finalize()
}

/// Bytes held at a 64-byte aligned address, as zero-copy parsing needs.
#[repr(C, align(64))]
pub struct Aligned<B: ?Sized>(pub B);

/// Embeds a `.tnn` file in the binary at a 64-byte aligned address: `&'static [u8; N]`.
#[macro_export]
macro_rules! include_tnn {
    ($path:expr) => {{
        static MODEL: $crate::format::Aligned<[u8; include_bytes!($path).len()]> =
            $crate::format::Aligned(*include_bytes!($path));
        &MODEL.0
    }};
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; ALIGN]);
// SAFETY: a plain byte array; the alignment adds no padding since 64 is a multiple of 64.
unsafe impl bytemuck::Zeroable for Block {}
// SAFETY: as above: every bit pattern is valid and there is no padding.
unsafe impl bytemuck::Pod for Block {}

/// An owned, 64-byte aligned byte buffer (for models read into memory rather than mapped).
#[derive(Clone)]
pub struct AlignedBytes {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBytes {
    pub fn from_slice(bytes: &[u8]) -> AlignedBytes {
        let mut blocks = vec![Block([0; ALIGN]); bytes.len().div_ceil(ALIGN)];
        bytemuck::cast_slice_mut::<Block, u8>(&mut blocks)[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            blocks,
            len: bytes.len(),
        }
    }
}

impl core::ops::Deref for AlignedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice::<Block, u8>(&self.blocks)[..self.len]
    }
}

impl core::ops::DerefMut for AlignedBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<Block, u8>(&mut self.blocks)[..self.len]
    }
}

/// Bounds-checked little-endian reader: malformed input is an error, never a panic.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        if self.bytes.len() < N {
            return Err(FormatError::Malformed("metadata ends early".into()));
        }
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        Ok(head.try_into().expect("split_at gives N bytes"))
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn f32(&mut self) -> Result<f32, FormatError> {
        Ok(f32::from_le_bytes(self.take()?))
    }
    fn bool(&mut self) -> Result<bool, FormatError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(FormatError::Malformed(format!(
                "flag byte {v} is neither 0 nor 1"
            ))),
        }
    }
    fn string(&mut self) -> Result<String, FormatError> {
        let len = self.u16()? as usize;
        if self.bytes.len() < len {
            return Err(FormatError::Malformed("metadata ends early".into()));
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        core::str::from_utf8(head)
            .map(ToString::to_string)
            .map_err(|_| FormatError::Malformed("a name is not UTF-8".into()))
    }
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    // Names and class names are short; longer ones are cut at a char boundary.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn bad(what: &str, code: u8) -> FormatError {
    FormatError::Malformed(format!("unknown {what} code {code}"))
}

fn write_spec(out: &mut Vec<u8>, spec: &ModelSpec) {
    let u32le = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    u32le(out, spec.input.height);
    u32le(out, spec.input.width);
    u32le(out, spec.input.channels);
    out.push(match spec.input.preprocess {
        Preprocess::SignedUnit => 0,
        Preprocess::Unit => 1,
        Preprocess::Identity => 2,
    });
    u32le(out, spec.layers.len() as u32);
    for l in &spec.layers {
        out.push(match l.kind {
            LayerKind::LocallyConnected => 0,
            LayerKind::Conv => 1,
        });
        u32le(out, l.filters);
        u32le(out, l.kernel);
        u32le(out, l.stride);
        out.push(l.bias as u8);
        out.push(match l.activation {
            Activation::Relu => 0,
            Activation::Linear => 1,
        });
        let (code, p) = match l.norm {
            Norm::None => (0, NormParams::default()),
            Norm::LayerNorm(p) => (1, p),
            Norm::BatchNorm(p) => (2, p),
        };
        out.push(code);
        out.extend_from_slice(&p.epsilon.to_le_bytes());
        out.push(p.center as u8);
        out.push(p.scale as u8);
        out.push(l.norm_first as u8);
        out.push(l.pool_after as u8);
    }
    u32le(out, spec.readout.classes);
    out.push(spec.readout.bias as u8);
    out.push(match spec.output {
        OutputActivation::Softmax => 0,
        OutputActivation::Linear => 1,
    });
}

fn read_spec(r: &mut Reader<'_>) -> Result<ModelSpec, FormatError> {
    let (height, width, channels) = (r.u32()?, r.u32()?, r.u32()?);
    let preprocess = match r.u8()? {
        0 => Preprocess::SignedUnit,
        1 => Preprocess::Unit,
        2 => Preprocess::Identity,
        c => return Err(bad("preprocessing", c)),
    };
    let n = r.u32()? as usize;
    let mut layers = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        let kind = match r.u8()? {
            0 => LayerKind::LocallyConnected,
            1 => LayerKind::Conv,
            c => return Err(bad("layer kind", c)),
        };
        let (filters, kernel, stride) = (r.u32()?, r.u32()?, r.u32()?);
        let bias = r.bool()?;
        let activation = match r.u8()? {
            0 => Activation::Relu,
            1 => Activation::Linear,
            c => return Err(bad("activation", c)),
        };
        let code = r.u8()?;
        let params = NormParams {
            epsilon: r.f32()?,
            center: r.bool()?,
            scale: r.bool()?,
        };
        let norm = match code {
            0 => Norm::None,
            1 => Norm::LayerNorm(params),
            2 => Norm::BatchNorm(params),
            c => return Err(bad("norm", c)),
        };
        let norm_first = r.bool()?;
        let pool_after = r.bool()?;
        layers.push(LayerSpec {
            kind,
            filters,
            kernel,
            stride,
            bias,
            activation,
            norm,
            norm_first,
            pool_after,
        });
    }
    let classes = r.u32()?;
    let bias = r.bool()?;
    let output = match r.u8()? {
        0 => OutputActivation::Softmax,
        1 => OutputActivation::Linear,
        c => return Err(bad("output activation", c)),
    };
    let spec = ModelSpec {
        input: InputSpec {
            height,
            width,
            channels,
            preprocess,
        },
        layers,
        readout: ReadoutSpec { classes, bias },
        output,
    };
    spec.geometry()?;
    Ok(spec)
}
