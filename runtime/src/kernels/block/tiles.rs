//! The block kernel's algorithm, shared by the SIMD instruction sets: `tiles!` stamps it out
//! over one set's vector helpers. A tile of outputs — up to `T` vectors of columns × 4 images,
//! or in narrow layers one vector × `WIDE` images — is held in registers while the block's rows
//! stream by; each row's weights are loaded (and converted from f16/int8) once per tile.
//! Batches under 4 stream the block row by row instead.

/// Vectors of columns per tile.
pub(super) const T: usize = 4;
/// Rows ahead that the row-by-row path prefetches for int8 and f16 weights (measured on the
/// paper model at batch 1; 16 and 32 rows did less for int8, 32 and 64 for f16).
pub(super) const fn ahead(weight_bytes: usize) -> usize {
    if weight_bytes == 1 {
        64
    } else {
        16
    }
}
/// Weight bytes of one chunk of rows in the tiled path: well inside L2. The unit tests use
/// chunks of a few rows, so that their small random blocks cross chunk boundaries everywhere.
pub(super) const CHUNK_BYTES: usize = if cfg!(test) { 64 } else { 256 * 1024 };
/// Rows per chunk at least, so that loading and storing the accumulators stays negligible.
pub(super) const MIN_CHUNK: usize = if cfg!(test) { 2 } else { 32 };
/// Vectors of columns up to which a layer counts as narrow (see `tiles!`).
pub(super) const NARROW: usize = 6;
/// Cache line bytes.
pub(super) const LINE: usize = 64;

/// Copies `n < N` values into a zero-padded array: the tails of instruction sets without masked
/// loads (AVX2 for f16/int8, NEON).
///
/// # Safety
/// `n` values can be read at `p`.
#[inline(always)]
pub(super) unsafe fn partial<E: Copy + Default, const N: usize>(p: *const E, n: usize) -> [E; N] {
    let mut a = [E::default(); N];
    // SAFETY: the caller's `n` values at `p`.
    unsafe { core::ptr::copy_nonoverlapping(p, a.as_mut_ptr(), n) };
    a
}

/// Lines to prefetch: `per_row` lines from each of `rows` rows `stride` bytes apart, in order.
/// Copies are handed to the tile calls of a chunk, a part each.
#[derive(Clone, Copy)]
pub(super) struct Stripe {
    row: *const u8,
    line: usize,
    per_row: usize,
    stride: usize,
    left: usize,
}

impl Stripe {
    /// The lines holding `bytes` bytes from `start` in each of `rows` rows.
    pub(super) fn new(start: *const u8, bytes: usize, stride: usize, rows: usize) -> Stripe {
        let skew = start as usize % LINE;
        let per_row = (skew + bytes).div_ceil(LINE);
        Stripe {
            row: start.wrapping_sub(skew),
            line: 0,
            per_row,
            stride,
            left: per_row * rows,
        }
    }

    pub(super) fn lines(&self) -> usize {
        self.left
    }

    /// Lines `from..from + count` of this stripe (fewer past its end).
    pub(super) fn part(mut self, from: usize, count: usize) -> Stripe {
        let from = from.min(self.left);
        self.row = self.row.wrapping_add(from / self.per_row * self.stride);
        self.line = from % self.per_row;
        self.left = count.min(self.left - from);
        self
    }

    /// The next line's address (stepping by wrapping arithmetic: the lines may lie past the
    /// weights, where only prefetches, which never fault, go).
    #[inline(always)]
    pub(super) fn next(&mut self) -> Option<*const u8> {
        if self.left == 0 {
            return None;
        }
        let at = self.row.wrapping_add(self.line * LINE);
        self.left -= 1;
        self.line += 1;
        if self.line == self.per_row {
            self.line = 0;
            self.row = self.row.wrapping_add(self.stride);
        }
        Some(at)
    }
}

/// Input `i` of the row at `p`, for f32 inputs.
///
/// # Safety
/// The value lies inside the inputs.
#[inline(always)]
pub(super) unsafe fn read_f32(p: *const f32, i: usize) -> f32 {
    // SAFETY: the caller's.
    unsafe { *p.add(i) }
}

/// The tiled kernel for one weight type, written against the enclosing module's `V`, `L`, `WIDE`,
/// `zero`, `splat`, `fma`, `load_out`, `store_out`, `prefetch_l1`, `prefetch_l2` and the given
/// loader. Inputs are f32 unless the form with `$x` (input element), `$xe` (what one read gives),
/// `$read` (the reader) and `$skip` (whether a single image skips zero inputs) says otherwise.
macro_rules! tiles {
    ($features:literal, $name:ident, $tile:ident, $rows:ident, $quad:ident, $t:ty, $load:ident) => {
        tiles!($features, $name, $tile, $rows, $quad, $t, $load, f32, f32, read_f32, true);
    };
    ($features:literal, $name:ident, $tile:ident, $rows:ident, $quad:ident, $t:ty, $load:ident,
     $x:ty, $xe:ty, $read:ident, $skip:literal) => {
        /// # Safety
        /// As [`super::accumulate`]; the CPU has the module's features.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name(
            w: *const $t,
            width: usize,
            cols: Range<usize>,
            x: Inputs<'_, $x>,
            batch: usize,
            (out, out_stride): (*mut f32, usize),
        ) {
            if batch < 4 {
                for b in 0..batch {
                    // SAFETY: image `b` lies inside the caller's bounds.
                    unsafe {
                        let xb = x.data.as_ptr().add(x.base + b * x.batch_stride);
                        let ob = out.add(b * out_stride + cols.start);
                        $rows(w.add(cols.start), width, cols.len(), &x, xb, ob);
                    }
                }
                return;
            }
            // A column tile alone would walk the block's rows with a whole-row stride (for the
            // widest layers a page per row, which no prefetcher follows), so the rows are
            // taken in chunks that every tile and image group uses while they are in L2.
            let k = x.rows * x.row_len;
            let size = core::mem::size_of::<$t>();
            let chunk = if cols.len() <= T * L {
                k
            } else {
                (CHUNK_BYTES / (cols.len() * size)).max(MIN_CHUNK)
            };
            // Narrow layers (up to NARROW vectors: the paper's first three) are faster with
            // one-vector tiles over WIDE images — a 4-vector tile there is partly masked, and
            // each row's weights then serve the whole batch at once (paper model, AVX-512,
            // batch 16: layers 1 and 2 −13 %; wider layers lose).
            let narrow = batch >= WIDE && cols.len().div_ceil(L) <= NARROW;
            let (vectors, group) = if narrow { (1, WIDE) } else { (T, 4) };
            let calls = cols.len().div_ceil(vectors * L) * batch.div_ceil(group);
            if cols.len() < width {
                // A range of columns is a thread's share of a layer with few positions (the
                // paper's last layer and readout): no earlier call streamed its first chunk, and
                // its rows are too far apart for the hardware prefetcher, so ask for all of it
                // now (paper model, batch 16: readout 1.0 → 0.65 ms, last layer 2.25 → 1.8).
                let mut first = Stripe::new(
                    w.wrapping_add(cols.start).cast(),
                    cols.len() * size,
                    width * size,
                    chunk.min(k),
                );
                while let Some(line) = first.next() {
                    prefetch_l2(line.cast());
                }
            }
            for j0 in (0..k).step_by(chunk) {
                let rows = j0..(j0 + chunk).min(k);
                // The same columns of the rows that follow this chunk: the next chunk or, past
                // the block, the next position's (blocks of a layer are stored in order). Every
                // tile call of this chunk fetches its share of them into L2, so the stream from
                // memory overlaps the arithmetic instead of preceding it. (A prefetch never
                // faults, so the last block's overrun is harmless.)
                let start = w.wrapping_add(rows.end * width + cols.start).cast();
                let next = if cols.len() == width {
                    // Whole rows: one run, without the lines that rows share.
                    Stripe::new(start, chunk * width * size, 0, 1)
                } else {
                    Stripe::new(start, cols.len() * size, width * size, chunk)
                };
                let share = next.lines().div_ceil(calls);
                let mut call = 0;
                let mut c = cols.start;
                while c < cols.end {
                    let n = (cols.end - c).min(vectors * L);
                    let mut b = 0;
                    while b < batch {
                        let r = rows.clone();
                        let pf = next.part(call * share, share);
                        call += 1;
                        // SAFETY: the tile lies inside the caller's bounds.
                        b += unsafe {
                            let xb = x.data.as_ptr().add(x.base + b * x.batch_stride);
                            let ob = out.add(b * out_stride + c);
                            let wc = w.add(c);
                            match (narrow, batch - b) {
                                (true, WIDE..) => {
                                    $tile::<1, WIDE>(wc, width, n, &x, r, pf, xb, ob, out_stride)
                                }
                                (_, 1) => {
                                    $tile::<T, 1>(wc, width, n, &x, r, pf, xb, ob, out_stride)
                                }
                                (_, 2) => {
                                    $tile::<T, 2>(wc, width, n, &x, r, pf, xb, ob, out_stride)
                                }
                                (_, 3) => {
                                    $tile::<T, 3>(wc, width, n, &x, r, pf, xb, ob, out_stride)
                                }
                                _ => $tile::<T, 4>(wc, width, n, &x, r, pf, xb, ob, out_stride),
                            }
                        };
                    }
                    c += n;
                }
            }
        }

        /// `n` columns of one image, the block streamed row by row (sequential reads, which
        /// is what a memory-bound small batch needs): four rows with non-zero inputs at a time
        /// update the outputs, which stay in L1.
        #[target_feature(enable = $features)]
        unsafe fn $rows(
            w: *const $t,
            width: usize,
            n: usize,
            x: &Inputs<'_, $x>,
            xb: *const $x,
            out: *mut f32,
        ) {
            let mut pending = [(<$xe>::default(), 0usize); 4];
            let mut count = 0;
            for row in 0..x.rows {
                for i in 0..x.row_len {
                    // SAFETY: inside the image's inputs.
                    let xv = unsafe { $read(xb.add(row * x.row_stride), i) };
                    if $skip && xv == <$xe>::default() {
                        continue;
                    }
                    let j = row * x.row_len + i;
                    // Int8 and f16 rows are a quarter and a half of the bytes for the same work,
                    // too few lines in flight for the hardware prefetcher to keep up: ask for a
                    // row further down the block now (measured on the paper model: int8 8.4 →
                    // 4.5 ms/image, f16 13.2 → 11.1; it slowed f32).
                    let size = core::mem::size_of::<$t>();
                    if size <= 2 {
                        for t in (0..n).step_by(LINE / size) {
                            // A prefetch never faults, even past the block.
                            prefetch_l1(w.wrapping_add((j + ahead(size)) * width + t).cast());
                        }
                    }
                    pending[count] = (xv, j);
                    count += 1;
                    if count == 4 {
                        // SAFETY: rows `j` of the block, `n` columns.
                        unsafe { $quad(w, width, n, &pending, out) };
                        count = 0;
                    }
                }
            }
            // The last rows: the missing terms get a zero input (no term) and repeat a real row.
            if count > 0 {
                for p in count..4 {
                    pending[p] = (<$xe>::default(), pending[0].1);
                }
                // SAFETY: as above.
                unsafe { $quad(w, width, n, &pending, out) };
            }
        }

        /// `out[c] += Σ x_r · w[j_r, c]` over the four `(x_r, j_r)`, in order, for `n` columns.
        #[target_feature(enable = $features)]
        unsafe fn $quad(
            w: *const $t,
            width: usize,
            n: usize,
            rows: &[($xe, usize); 4],
            out: *mut f32,
        ) {
            let (x0, x1, x2, x3) = (
                splat(rows[0].0),
                splat(rows[1].0),
                splat(rows[2].0),
                splat(rows[3].0),
            );
            // SAFETY: the caller's rows of the block.
            let (w0, w1, w2, w3) = unsafe {
                (
                    w.add(rows[0].1 * width),
                    w.add(rows[1].1 * width),
                    w.add(rows[2].1 * width),
                    w.add(rows[3].1 * width),
                )
            };
            let mut c = 0;
            while c < n {
                let l = (n - c).min(L);
                // SAFETY: columns `c..c + l` of the rows and outputs.
                unsafe {
                    let mut acc = load_out(out.add(c), l);
                    acc = fma(x0, $load(w0.add(c), l), acc);
                    acc = fma(x1, $load(w1.add(c), l), acc);
                    acc = fma(x2, $load(w2.add(c), l), acc);
                    acc = fma(x3, $load(w3.add(c), l), acc);
                    store_out(out.add(c), acc, l);
                }
                c += L;
            }
        }

        /// `n ≤ TV·L` columns for `B` images over the block rows `rows`, prefetching the given
        /// lines into L2 on the way; returns `B`. (At most one line per row: below 16 images a
        /// chunk's tile calls cover only part of the next chunk, and the hardware the rest.)
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $tile<const TV: usize, const B: usize>(
            w: *const $t,
            width: usize,
            n: usize,
            x: &Inputs<'_, $x>,
            rows: Range<usize>,
            mut prefetch: Stripe,
            xb: *const $x,
            out: *mut f32,
            out_stride: usize,
        ) -> usize {
            let lanes = |t: usize| n.saturating_sub(t * L).min(L);
            let mut acc = [[zero(); TV]; B];
            for (b, acc) in acc.iter_mut().enumerate() {
                for (t, a) in acc.iter_mut().enumerate() {
                    if lanes(t) > 0 {
                        // SAFETY: inside the tile.
                        *a = unsafe { load_out(out.add(b * out_stride + t * L), lanes(t)) };
                    }
                }
            }
            // Block row j is input i of patch row j / row_len.
            for row in rows.start / x.row_len..rows.end.div_ceil(x.row_len) {
                // SAFETY: rows and images of the tile lie inside the inputs.
                let xr = unsafe { xb.add(row * x.row_stride) };
                let first = rows.start.saturating_sub(row * x.row_len);
                let last = (rows.end - row * x.row_len).min(x.row_len);
                for i in first..last {
                    let j = row * x.row_len + i;
                    // A single image skips zero inputs (post-ReLU): their weights are never
                    // loaded.
                    if $skip && B == 1 && unsafe { $read(xr, i) } == <$xe>::default() {
                        continue;
                    }
                    if let Some(line) = prefetch.next() {
                        prefetch_l2(line.cast());
                    }
                    let mut wv = [zero(); TV];
                    for (t, v) in wv.iter_mut().enumerate() {
                        if lanes(t) > 0 {
                            // SAFETY: row `j`, columns of the tile.
                            *v = unsafe { $load(w.add(j * width + t * L), lanes(t)) };
                        }
                    }
                    for (b, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: image `b` of the tile.
                        let xv = splat(unsafe { $read(xr.add(b * x.batch_stride), i) });
                        for (a, &v) in acc.iter_mut().zip(&wv) {
                            *a = fma(xv, v, *a);
                        }
                    }
                }
            }
            for (b, acc) in acc.iter().enumerate() {
                for (t, &a) in acc.iter().enumerate() {
                    if lanes(t) > 0 {
                        // SAFETY: inside the tile.
                        unsafe { store_out(out.add(b * out_stride + t * L), a, lanes(t)) };
                    }
                }
            }
            B
        }
    };
}

pub(super) use tiles;
