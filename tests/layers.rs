//! The layering of `src/` stays true (issue 15): every top-level module belongs to one layer, imports
//! only from its own layer and the layers below it, and no import cycle joins top-level modules. The
//! imports are read from the source (`crate::x` paths, `crate::{x, y}` groups included), so a new module
//! or a new upward import fails here, with the file that made it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first, and the top-level modules in each. A layer may import from the layers
/// listed before it, and from its own (but see `SIDEWAYS`).
const LAYERS: &[(&str, &[&str])] = &[
    // Pure rules and types: no I/O.
    ("domain", &["domain", "cd", "evidently", "limits", "rollout"]),
    // Small services every layer may use: OS files and randomness, TLS material, counters.
    ("support", &["files", "random", "tls", "metrics", "aws_models"]),
    // The file to a validated Config.
    ("config", &["config"]),
    // The state, its store, and the snapshot it compiles to.
    ("control", &["plane", "store", "routing"]),
    // The request path, reading the snapshot only.
    ("data plane", &["server", "proxy", "edge_evidently"]),
    // The admin listener: decode, run, encode.
    ("wire", &["admin"]),
    // Wiring it all together.
    ("app", &["app", "demo", "telemetry", "cli"]),
];

/// Layers that share a rank: neither may import the other.
const SIDEWAYS: &[(&str, &str)] = &[("data plane", "wire"), ("wire", "data plane")];

/// Imports that break the rules today, each with the reason and the plan; the list may only shrink.
/// Empty since the file's Evidently declarations became typed commands (`plane::declare`), no longer
/// the restJson handlers run on fake requests.
const KNOWN: &[(&str, &str, &str)] = &[];
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names through `crate::`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        // `$crate::` (macros) and `edgesplit_crate::` are not ours.
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first identifier of each top-level item.
            let (mut depth, mut item_start) = (0, true);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        found.insert(ident(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Every top-level module of `src/` and, for each module it imports, the files that do.
fn graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = g.entry(module.clone()).or_default();
        for dep in imports(&text) {
            if dep != module {
                edges.entry(dep).or_default().insert(rel.display().to_string());
            }
        }
    }
    g
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS.iter().enumerate().find(|(_, (_, ms))| ms.contains(&module)).map(|(i, (name, _))| (i, *name))
}

#[test]
fn the_import_parser_reads_paths_and_groups() {
    let text = "use crate::a::b;\nuse crate::{c, d::e, f::{g, h}};\nlet x = crate::i::j();\n$crate::k;\nmy_crate::l;";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "f", "i"]);
}

#[test]
fn every_module_has_a_layer_and_imports_only_downward() {
    let g = graph();
    let mut problems = Vec::new();
    for (module, deps) in &g {
        let Some((rank, layer)) = layer_of(module) else {
            problems.push(format!("src/{module}: in no layer; add it to LAYERS in tests/layers.rs"));
            continue;
        };
        for (dep, files) in deps {
            let Some((dep_rank, dep_layer)) = layer_of(dep) else { continue };
            let upward = dep_rank > rank || SIDEWAYS.contains(&(layer, dep_layer));
            let known = KNOWN.iter().any(|(a, b, _)| a == module && b == dep);
            if upward && !known {
                problems.push(format!("{module} ({layer}) imports {dep} ({dep_layer}), in {files:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "layering broken:\n{}", problems.join("\n"));
}

#[test]
fn the_known_exceptions_are_still_needed() {
    // When one goes away, take it off the list, so it cannot come back unnoticed.
    let g = graph();
    for (a, b, why) in KNOWN {
        assert!(g.get(*a).is_some_and(|d| d.contains_key(*b)), "{a} no longer imports {b}: drop it from KNOWN ({why})");
    }
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let g = graph();
    // Depth-first search for a back edge; the known exceptions are left out.
    fn visit<'a>(
        m: &'a str,
        g: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| *p == m) {
            cycles.push(format!("{} -> {m}", path[i..].join(" -> ")));
            return;
        }
        path.push(m);
        for dep in g.get(m).into_iter().flat_map(|d| d.keys()) {
            if KNOWN.iter().any(|(a, b, _)| *a == m && b == dep) {
                continue;
            }
            visit(dep, g, path, done, cycles);
        }
        path.pop();
        done.insert(m);
    }
    let (mut done, mut cycles) = (BTreeSet::new(), Vec::new());
    for m in g.keys() {
        visit(m, &g, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles between top-level modules:\n{}", cycles.join("\n"));
}
