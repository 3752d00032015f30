//! `include/alltnn.h` is written by hand: it must declare every function the C API exports
//! (`src/capi.rs` and the static library's heap in `ffi/`) and every status code with its value.

use std::path::Path;

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn header_declares_every_export() {
    let header = read("include/alltnn.h");
    let mut functions = 0;
    for source in ["src/capi.rs", "../ffi/src/heap.rs"] {
        let source = read(source);
        for line in source.lines() {
            if let Some(rest) = line.split("extern \"C\" fn ").nth(1) {
                let name = &rest[..rest.find('(').unwrap()];
                assert!(
                    header.contains(&format!(" {name}(")) || header.contains(&format!("*{name}(")),
                    "alltnn.h does not declare {name}"
                );
                functions += 1;
            }
            if let Some(rest) = line.strip_prefix("pub const ALLTNN_") {
                let (name, value) = rest.split_once(": c_int = ").unwrap();
                let value = value.trim_end_matches(';');
                let value = if value.starts_with('-') {
                    format!("({value})")
                } else {
                    value.to_string()
                };
                let define = format!("#define ALLTNN_{name} {value}\n");
                assert!(
                    header.contains(&define),
                    "alltnn.h lacks `{}`",
                    define.trim()
                );
            }
        }
    }
    assert_eq!(functions, 11, "exports counted");
}
