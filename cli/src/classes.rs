//! Class names stored with a model, so predictions can print them.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// The 565 ecoset category names of the original project (MIT licence), keyed "1".."565".
const ECOSET: &str = include_str!("../../models/ecoset_id_to_name_mapping.json");

/// How many classes ecoset has.
pub const ECOSET_CLASSES: usize = 565;

/// The mapping from model output to ecoset name is not stated by the original code; we assume
/// output i is key i + 1 and say so wherever names are shown.
pub const ECOSET_NOTE: &str =
    "ecoset names assume model output i = ecoset id i+1 (the original code does not state the offset)";

/// Ecoset names in output order (output i = key i + 1).
pub fn ecoset() -> Vec<String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(ECOSET).expect("the embedded ecoset mapping is valid JSON");
    (1..=ECOSET_CLASSES)
        .map(|id| {
            map[&id.to_string()]
                .as_str()
                .expect("ecoset names are strings")
                .to_string()
        })
        .collect()
}

/// Reads class names from a file: a JSON array, a JSON object keyed by 0- or 1-based ids, or
/// plain text with one name per line.
pub fn read(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let names = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| v.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("{}: class names must be strings", path.display()))?,
        Ok(serde_json::Value::Object(map)) => {
            let mut keyed = map
                .into_iter()
                .map(|(k, v)| Some((k.parse::<usize>().ok()?, v.as_str()?.to_string())))
                .collect::<Option<Vec<_>>>()
                .with_context(|| {
                    format!("{}: expected integer keys and string names", path.display())
                })?;
            keyed.sort();
            let first = keyed.first().map_or(0, |k| k.0);
            if keyed.iter().enumerate().any(|(i, (k, _))| *k != first + i) || first > 1 {
                bail!(
                    "{}: class ids must run contiguously from 0 or 1",
                    path.display()
                );
            }
            keyed.into_iter().map(|(_, v)| v).collect()
        }
        Ok(_) => bail!(
            "{}: expected a JSON array or object of class names",
            path.display()
        ),
        Err(_) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    };
    Ok(names)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ecoset_names_are_in_output_order() {
        let names = super::ecoset();
        assert_eq!(names.len(), 565);
        assert_eq!(&names[..3], ["man", "house", "car"]);
    }
}
