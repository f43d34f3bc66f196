//! Fuzz target `config`: the config file (`edgesplit::config::parse`, what `config::load` runs on a
//! file's text).
//!
//! Invariants, checked on every input:
//! 1. `parse` never panics: a text is `Ok(Config)` or a non-empty list of errors.
//! 2. Every error names the file it was given and a position inside the text: a line from 1 to the
//!    number of lines, a column (in characters) from 1 to one past the end of that line.
//! 3. The errors come sorted by position, as `edgesplit check` prints them.
//!
//! Input: the file text (UTF-8; `load` refuses anything else before parsing).
//!
//! Paths in a config (certificates, CA file) are read from disk. Relative ones resolve from a folder
//! that does not exist; inputs naming a device or kernel file system (`/dev`, `/proc`, `/sys`, `/run`),
//! or holding a TOML `\u`/`\U` escape that could spell one, are skipped, so that a fuzzer never blocks on
//! a FIFO or reads /dev/zero forever.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.toml";
const BASE_DIR: &str = "/nonexistent/edgesplit-fuzz";

fn touches_special_files(text: &str) -> bool {
    ["/dev", "/proc", "/sys", "/run", "\\u", "\\U"].iter().any(|s| text.contains(s))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if touches_special_files(text) {
        return;
    }
    let Err(errors) = edgesplit::config::parse(text, FILE, Path::new(BASE_DIR)) else { return };
    assert!(!errors.0.is_empty(), "Err with no errors");
    let lines: Vec<&str> = text.split('\n').collect();
    for e in &errors.0 {
        assert_eq!(e.file, FILE, "{e}");
        assert!((1..=lines.len()).contains(&e.line), "{e}: line outside the text ({} lines)", lines.len());
        let width = lines[e.line - 1].chars().count();
        assert!((1..=width + 1).contains(&e.col), "{e}: column outside line {} ({width} characters)", e.line);
        assert!(!e.message.is_empty(), "{e}: no message");
    }
    assert!(
        errors.0.windows(2).all(|w| (w[0].line, w[0].col) <= (w[1].line, w[1].col)),
        "errors out of order: {errors}"
    );
});
