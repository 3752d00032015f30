//! The embedded deployment path: the C program `examples/c/main.c` linked with the no_std
//! `liballtnn.a` (built from `ffi/`) reproduces TensorFlow's probabilities and the reference
//! energy; the C API refuses bad arguments with codes and messages; `alltnn info --memory`
//! reports the engine's arena; inference allocates nothing.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::CStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use alltnn_runtime::capi::*;
use alltnn_runtime::engine::{Engine, Model};
use alltnn_runtime::format::{AlignedBytes, TnnFile};
use support::*;

/// Counts the allocations of the current thread, so that tests running beside it do not count.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn last_error() -> String {
    // SAFETY: the API returns a NUL-terminated static buffer.
    unsafe { CStr::from_ptr(alltnn_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Builds `liballtnn.a` in its own workspace (panic = "abort"), under this test's target
/// directory so that later runs are incremental.
fn build_staticlib() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(repo_root().join("ffi/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // The outer build's flags (coverage, sanitizers) need not suit a no_std library.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building ffi/ failed");
    target.join("release/liballtnn.a")
}

fn c_array<T: std::fmt::Display>(out: &mut String, decl: &str, values: &[T]) {
    writeln!(out, "{decl}[{}] = {{", values.len()).unwrap();
    for row in values.chunks(16) {
        for v in row {
            write!(out, "{v},").unwrap();
        }
        out.push('\n');
    }
    out.push_str("};\n");
}

#[test]
fn c_program_matches_tensorflow() {
    let fixture = fixtures().join("tiny-alltnn");
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(convert_fixture("tiny-alltnn", tmp.path(), &[])).unwrap();
    let mut model_h = String::new();
    c_array(
        &mut model_h,
        "_Alignas(64) static const unsigned char alltnn_model_bytes",
        &bytes,
    );
    std::fs::write(tmp.path().join("model.h"), model_h).unwrap();
    let input = read_npy_f32(&fixture.join("input.npy"));
    let floats: Vec<String> = input.data.iter().map(|v| format!("{v:e}f")).collect();
    let mut input_h = String::new();
    c_array(&mut input_h, "static const float alltnn_input", &floats);
    std::fs::write(tmp.path().join("input.h"), input_h).unwrap();

    let lib = build_staticlib();
    let program = tmp.path().join("main");
    let cc = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(repo_root().join("runtime/include"))
        .arg("-I")
        .arg(tmp.path())
        .arg(repo_root().join("examples/c/main.c"))
        .arg(&lib)
        .args(["-lm", "-o"])
        .arg(&program)
        .output()
        .expect("run cc");
    assert!(
        cc.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let run = Command::new(&program).output().unwrap();
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let values = |key: &str| -> Vec<f64> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().parse().unwrap())
            .collect()
    };
    let want = read_npy_f32(&fixture.join("probs.npy"));
    let got = Array {
        shape: want.shape.clone(),
        data: values("prob ").into_iter().map(|v| v as f32).collect(),
    };
    assert_eq!(got.data.len(), want.data.len(), "{stdout}");
    assert_close(&got, &want, 1e-4, "C program probabilities");

    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("reference.json")).unwrap())
            .unwrap();
    let energy = values("energy ");
    let layers = reference["energy"].as_array().unwrap();
    assert_eq!(energy.len(), layers.len());
    for (l, (got, want)) in energy.iter().zip(layers).enumerate() {
        let want = want["total"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-4 * want,
            "energy of layer {l}: {got} vs {want}"
        );
    }
    let misaligned = stdout
        .lines()
        .find(|l| l.starts_with("misaligned"))
        .unwrap();
    assert!(
        misaligned.starts_with(&format!("misaligned {ALLTNN_ERR_MISALIGNED} ")),
        "{misaligned}"
    );
    assert!(misaligned.contains("64-byte aligned"), "{misaligned}");
}

#[test]
fn c_api_refuses_bad_arguments() {
    use std::ptr::{null, null_mut};
    let tmp = tempfile::tempdir().unwrap();
    let bytes = AlignedBytes::from_slice(
        &std::fs::read(convert_fixture("tiny-alltnn", tmp.path(), &[])).unwrap(),
    );
    let open = |b: &[u8]| {
        let mut model = null_mut();
        // SAFETY: `b` outlives every model opened here (freed below).
        let status = unsafe { alltnn_model_open_bytes(b.as_ptr(), b.len(), &mut model) };
        (status, model)
    };
    let refused = |status: i32, code: i32, what: &str| {
        assert_eq!(status, code, "{what}: {}", last_error());
        assert!(!last_error().is_empty(), "{what}: no message");
    };

    let (status, model) = open(&bytes[..bytes.len() - 1]);
    refused(status, ALLTNN_ERR_FORMAT, "truncated");
    assert!(model.is_null() && last_error().contains("truncated"));
    let mut corrupt = AlignedBytes::from_slice(&bytes);
    let last = corrupt.len() - 100;
    corrupt[last] ^= 0x10;
    let (status, _) = open(&corrupt);
    refused(status, ALLTNN_ERR_FORMAT, "corrupted byte");
    assert!(last_error().contains("checksum"), "{}", last_error());
    let shifted = AlignedBytes::from_slice(&[&[0][..], &bytes[..]].concat());
    let (status, _) = open(&shifted[1..]);
    refused(status, ALLTNN_ERR_MISALIGNED, "misaligned");
    let mut model = null_mut();
    // SAFETY: null pointers are what is tested; nothing is dereferenced.
    let status = unsafe { alltnn_model_open_bytes(null(), bytes.len(), &mut model) };
    refused(status, ALLTNN_ERR_NULL, "null bytes");
    // SAFETY: as above.
    let status = unsafe { alltnn_model_open_bytes(bytes.as_ptr(), bytes.len(), null_mut()) };
    refused(status, ALLTNN_ERR_NULL, "null output");

    let (status, model) = open(&bytes);
    assert_eq!(status, ALLTNN_OK, "{}", last_error());
    let mut info = AlltnnModelInfo::default();
    // SAFETY: a live model and writable outputs, here and below.
    unsafe {
        assert_eq!(alltnn_model_get_info(model, &mut info), ALLTNN_OK);
        refused(
            alltnn_model_get_info(null(), &mut info),
            ALLTNN_ERR_NULL,
            "null model",
        );
        let mut size = 0;
        refused(
            alltnn_arena_size(model, 0, &mut size),
            ALLTNN_ERR_ARGUMENT,
            "batch 0",
        );
        refused(
            alltnn_arena_size(model, usize::MAX / 2, &mut size),
            ALLTNN_ERR_ARGUMENT,
            "huge batch",
        );
        assert_eq!(alltnn_arena_size(model, 2, &mut size), ALLTNN_OK);
        let mut arena = vec![0f32; size / 4];
        let mut session = null_mut();
        refused(
            alltnn_session_new(model, 2, arena.as_mut_ptr().cast(), size - 4, &mut session),
            ALLTNN_ERR_ARENA,
            "arena too small",
        );
        assert!(session.is_null());
        refused(
            alltnn_session_new(
                model,
                2,
                arena.as_mut_ptr().cast::<u8>().add(1).cast(),
                size,
                &mut session,
            ),
            ALLTNN_ERR_MISALIGNED,
            "misaligned arena",
        );
        refused(
            alltnn_session_new(model, 2, null_mut(), size, &mut session),
            ALLTNN_ERR_NULL,
            "null arena",
        );
        assert_eq!(
            alltnn_session_new(model, 2, arena.as_mut_ptr().cast(), size, &mut session),
            ALLTNN_OK
        );
        let input = vec![0.5f32; 3 * info.input_len];
        let mut probs = vec![0f32; 3 * info.classes];
        let mut energy = vec![0f64; info.layers];
        refused(
            alltnn_energy(
                session,
                input.as_ptr(),
                info.input_len,
                energy.as_mut_ptr(),
                info.layers,
            ),
            ALLTNN_ERR_STATE,
            "energy before a run",
        );
        for (len, what) in [
            (info.input_len - 1, "partial image"),
            (3 * info.input_len, "batch over capacity"),
            (0, "empty input"),
        ] {
            refused(
                alltnn_run(
                    session,
                    input.as_ptr(),
                    len,
                    probs.as_mut_ptr(),
                    info.classes,
                ),
                ALLTNN_ERR_INPUT,
                what,
            );
        }
        refused(
            alltnn_run(
                session,
                input.as_ptr(),
                info.input_len,
                probs.as_mut_ptr(),
                2 * info.classes,
            ),
            ALLTNN_ERR_OUTPUT,
            "output length",
        );
        refused(
            alltnn_run(
                session,
                null(),
                info.input_len,
                probs.as_mut_ptr(),
                info.classes,
            ),
            ALLTNN_ERR_NULL,
            "null input",
        );
        refused(
            alltnn_run(
                null_mut(),
                input.as_ptr(),
                info.input_len,
                probs.as_mut_ptr(),
                info.classes,
            ),
            ALLTNN_ERR_NULL,
            "null session",
        );
        assert_eq!(
            alltnn_run(
                session,
                input.as_ptr(),
                2 * info.input_len,
                probs.as_mut_ptr(),
                2 * info.classes,
            ),
            ALLTNN_OK
        );
        let sum: f32 = probs[..info.classes].iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        refused(
            alltnn_energy(
                session,
                input.as_ptr(),
                info.input_len,
                energy.as_mut_ptr(),
                info.layers,
            ),
            ALLTNN_ERR_INPUT,
            "energy input length",
        );
        refused(
            alltnn_energy(
                session,
                input.as_ptr(),
                2 * info.input_len,
                energy.as_mut_ptr(),
                info.layers - 1,
            ),
            ALLTNN_ERR_OUTPUT,
            "energy output length",
        );
        assert_eq!(alltnn_session_free(session), ALLTNN_OK);
        assert_eq!(alltnn_model_free(model), ALLTNN_OK);
        assert_eq!(alltnn_session_free(null_mut()), ALLTNN_OK);
    }
}

#[test]
fn info_memory_is_the_engine_arena() {
    let tmp = tempfile::tempdir().unwrap();
    let path = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let bytes = AlignedBytes::from_slice(&std::fs::read(&path).unwrap());
    let file = TnnFile::parse_verified(&bytes).unwrap();
    let model = Model::from_file(&file).unwrap();
    let json: serde_json::Value = serde_json::from_str(&alltnn_ok(&[
        &"info",
        &path,
        &"--memory",
        &"--batch",
        &"6",
        &"--json",
    ]))
    .unwrap();
    let text = alltnn_ok(&[&"info", &path, &"--memory", &"--batch", &"6"]);
    for (batch, entry) in [1, 6].into_iter().zip(json["arena"].as_array().unwrap()) {
        let floats = Engine::arena_len(&model, batch);
        assert_eq!(entry["batch"], batch);
        assert_eq!(entry["bytes"], 4 * floats);
        assert!(
            text.contains(&format!("batch {batch}: {} bytes", 4 * floats)),
            "{text}"
        );
        // Exactly enough: the engine runs in that many floats and refuses one fewer.
        let mut arena = vec![0f32; floats];
        assert!(Engine::in_arena(&model, batch, &mut arena[..floats - 1]).is_err());
        let mut engine = Engine::in_arena(&model, batch, &mut arena).unwrap();
        engine
            .run(&vec![0.25; batch * model.spec().input_len()])
            .unwrap();
    }
}

#[test]
fn inference_allocates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = AlignedBytes::from_slice(
        &std::fs::read(convert_fixture("tiny-alltnn", tmp.path(), &[])).unwrap(),
    );
    let file = TnnFile::parse_verified(&bytes).unwrap();
    let model = Model::from_file(&file).unwrap();
    let input = read_npy_f32(&fixtures().join("tiny-alltnn/input.npy")).data;
    // One thread: the `parallel` kernels' task lists are the only allocations of a run.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        // The instruction set is chosen once per process (reading ALLTNN_ISA).
        alltnn_runtime::kernels::block::isa();
        let mut arena = vec![0f32; Engine::arena_len(&model, 6)];
        let mut engines = [
            Engine::new(&model, 6).unwrap(),
            Engine::in_arena(&model, 6, &mut arena).unwrap(),
        ];
        for engine in &mut engines {
            for images in [6, 1, 6] {
                let before = allocations();
                engine
                    .run(&input[..images * model.spec().input_len()])
                    .unwrap();
                assert_eq!(allocations(), before, "allocations in a run of {images}");
            }
        }
    });
}

/// `examples/static_model.rs` embeds a model at build time (`include_tnn!`) and runs it in an
/// arena with the core API only; its probabilities equal this process's on the same bytes.
#[test]
fn static_example_embeds_and_runs_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let model_path = convert_fixture("tiny-alltnn", tmp.path(), &[]);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--release", "-q", "-p", "alltnn-runtime"])
        .args(["--features", "static-example", "--example", "static_model"])
        .arg("--manifest-path")
        .arg(repo_root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("static-example"))
        .env("ALLTNN_MODEL", &model_path)
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let bytes = AlignedBytes::from_slice(&std::fs::read(&model_path).unwrap());
    let file = TnnFile::parse_verified(&bytes).unwrap();
    let model = Model::from_file(&file).unwrap();
    assert_eq!(
        lines.next(),
        Some(format!("arena values: {}", Engine::arena_len(&model, 1)).as_str())
    );
    let got: Vec<f32> = lines.map(|l| l.parse().unwrap()).collect();
    let mut engine = Engine::new(&model, 1).unwrap();
    let want = engine.run(&vec![0f32; model.spec().input_len()]).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6, "{g} vs {w}");
    }
}
