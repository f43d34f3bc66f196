//! The docs stay true: every TOML snippet in README.md, deploy/README.md, the Kubernetes ConfigMap and
//! the two shipped config files passes `edgesplit check` (the real binary), given only the certificates
//! and environment variables the snippet itself names; the README's demo lines are lines the demo
//! prints; and the README's Testing section names every test file. (The demo's printed lines are run
//! against the real demo by tests/demo.rs with curl and tests/python/test_demo_lines.py with boto3.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_edgesplit");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What an environment variable a snippet names is set to: long enough for a cookie key (32 bytes),
/// printable and without spaces for a metrics token.
const ENV_VALUE: &str = "readme-test-0123456789abcdef-0123456789abcdef";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap()
}

/// A TOML text to check, and where it came from (`FILE:LINE`).
struct Snippet {
    source: String,
    text: String,
}

/// The ```toml blocks of a Markdown file (fences may be indented, as in lists).
fn markdown_toml(path: &str) -> Vec<Snippet> {
    let text = read(path);
    let mut out = Vec::new();
    let mut open: Option<(usize, String, Vec<&str>)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None if trimmed == "```toml" => {
                open = Some((i + 1, line[..line.len() - trimmed.len()].to_string(), vec![]))
            }
            None => {}
            Some((start, indent, body)) => {
                if trimmed == "```" {
                    out.push(Snippet { source: format!("{path}:{start}"), text: body.join("\n") + "\n" });
                    open = None;
                } else {
                    body.push(line.strip_prefix(indent.as_str()).unwrap_or(line));
                }
            }
        }
    }
    assert!(open.is_none(), "{path}: a ```toml block is not closed");
    out
}

/// The `edgesplit.toml: |` block of a Kubernetes ConfigMap.
fn configmap_toml(path: &str) -> Snippet {
    let text = read(path);
    let start = text.lines().position(|l| l.trim() == "edgesplit.toml: |").unwrap();
    let body: Vec<&str> = text
        .lines()
        .skip(start + 1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(""))
        .collect();
    Snippet { source: format!("{path}:{}", start + 2), text: body.join("\n") + "\n" }
}

/// The value of each uncommented `KEY = "value"` line whose key `wanted` accepts.
fn string_values(text: &str, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| wanted(k.trim()))
        .filter_map(|(_, v)| v.trim().strip_prefix('"')?.split('"').next().map(String::from))
        .collect()
}

/// Writes the certificate files a snippet names (`cert`/`key` pairs in order, `ca_file`), relative to
/// `dir` as edgesplit resolves them; the certificate's DNS name is the file's stem.
fn write_certificates(snippet: &Snippet, dir: &Path) {
    let certs = string_values(&snippet.text, |k| k == "cert");
    let keys = string_values(&snippet.text, |k| k == "key");
    assert_eq!(certs.len(), keys.len(), "{}: every cert needs its key", snippet.source);
    let cas = string_values(&snippet.text, |k| k == "ca_file");
    let stem = |p: &str| Path::new(p).file_stem().unwrap().to_string_lossy().into_owned();
    let place = |p: &str| -> PathBuf {
        assert!(Path::new(p).is_relative(), "{}: give snippets relative certificate paths ({p})", snippet.source);
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        path
    };
    for (cert, key) in
        certs.iter().zip(&keys).map(|(c, k)| (c.as_str(), k.as_str())).chain(cas.iter().map(|c| (c.as_str(), "")))
    {
        let made = rcgen::generate_simple_self_signed(vec![stem(cert)]).unwrap();
        std::fs::write(place(cert), made.cert.pem()).unwrap();
        if !key.is_empty() {
            std::fs::write(place(key), made.signing_key.serialize_pem()).unwrap();
        }
    }
}

/// `edgesplit check` on the snippet, in a folder of its own, with only the environment it names.
fn check(snippet: &Snippet) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    write_certificates(snippet, dir.path());
    let path = dir.path().join("edgesplit.toml");
    std::fs::write(&path, &snippet.text).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "--config"]).arg(&path).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for var in string_values(&snippet.text, |k| k.ends_with("_env")) {
        // A database URL must parse as one.
        let value = if var.ends_with("DATABASE_URL") { "postgres://readme@db.invalid/edgesplit" } else { ENV_VALUE };
        cmd.env(var, value);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(0) && stdout.trim_end().ends_with(": ok") {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&format!("{}", path.display()), "snippet");
        Err(format!("{} (exit {:?}):\n{stderr}{}", snippet.source, out.status.code(), snippet.text))
    }
}

#[test]
fn every_toml_snippet_in_the_docs_passes_check() {
    let readme = markdown_toml("README.md");
    let deploy = markdown_toml("deploy/README.md");
    assert!(readme.len() >= 4, "found only {} ```toml blocks in README.md", readme.len());
    assert!(deploy.len() >= 2, "found only {} ```toml blocks in deploy/README.md", deploy.len());
    let files = ["config/edgesplit.toml", "config/demo.toml"].map(|f| Snippet { source: f.to_string(), text: read(f) });
    let all: Vec<Snippet> = readme
        .into_iter()
        .chain(deploy)
        .chain(["deploy/kubernetes/configmap.yaml", "deploy/kubernetes-fleet/configmap.yaml"].map(configmap_toml))
        .chain(files)
        .collect();
    let failures: Vec<String> = all.iter().filter_map(|s| check(s).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} snippets fail `edgesplit check`:\n\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn a_snippet_that_does_not_check_is_caught() {
    // The harness itself: a snippet missing what it needs fails, with its source.
    let missing_env = Snippet {
        source: "here:1".into(),
        text: "[admin]\naccess_key_id = \"a\"\nsecret_access_key_env = \"X\"\n".into(),
    };
    assert!(check(&missing_env).is_ok(), "the named variable is filled in");
    let unnamed = Snippet { source: "here:2".into(), text: "[store]\n".into() };
    let err = check(&unnamed).unwrap_err();
    assert!(err.starts_with("here:2 (exit Some(2)):\nsnippet:"), "{err}");
    assert!(err.contains("the admin API checks AWS SigV4 signatures but has no key"), "{err}");
}

/// The section of README.md that starts with the heading `title`, up to the next heading of its level.
fn section<'a>(readme: &'a str, title: &str) -> &'a str {
    let level = title.split(' ').next().unwrap();
    let start = readme.find(&format!("\n{title}\n")).unwrap_or_else(|| panic!("no {title:?} in README.md"));
    let rest = &readme[start + 1..];
    let end = rest[1..].find(&format!("\n{level} ")).map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

/// The lines of the first fenced block of `lang` in `text`.
fn first_block<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let start = text.find(&format!("```{lang}\n")).unwrap_or_else(|| panic!("no ```{lang} block")) + lang.len() + 4;
    text[start..].split("\n```").next().unwrap().lines().collect()
}

#[test]
fn the_readme_demo_lines_are_what_the_demo_prints() {
    let readme = read("README.md");
    let demo = section(&readme, "## The demo");
    let origins = edgesplit::demo::Origins {
        primary: edgesplit::demo::PRIMARY_ORIGIN.parse().unwrap(),
        staging: edgesplit::demo::STAGING_ORIGIN.parse().unwrap(),
    };
    let banner = edgesplit::demo::instructions("127.0.0.1:8080", "127.0.0.1:9901", "POLICY", origins, "edgesplit");
    let printed: Vec<&str> = banner.lines().map(|l| l.split("  #").next().unwrap().trim()).collect();
    let shell = first_block(demo, "sh");
    assert!(shell.len() >= 5, "{shell:?}");
    for line in shell {
        let command = line.split(" #").next().unwrap().trim();
        assert!(printed.contains(&command), "README's demo line is not in the banner: {command}\n{banner}");
    }
    let python = first_block(demo, "python");
    assert!(python.len() >= 6, "{python:?}");
    for line in python {
        assert!(banner.lines().any(|l| l == line), "README's demo boto3 line is not in the banner: {line}\n{banner}");
    }
}

#[test]
fn the_testing_section_names_every_test_file() {
    let readme = read("README.md");
    let testing = section(&readme, "## Testing");
    let names = |dir: &str, ext: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(Path::new(ROOT).join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(ext) && !n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    let mut wanted: Vec<String> = Vec::new();
    wanted.extend(names("tests", ".rs").into_iter().map(|n| format!("`tests/{n}`")));
    wanted.push("`tests/support/`".into());
    wanted.extend(names("tests/python", ".py").into_iter().map(|n| format!("`tests/python/{n}`")));
    wanted.extend(names("tests/python", ".txt").into_iter().map(|n| format!("`tests/python/{n}`")));
    wanted.extend(names("scripts", "").into_iter().map(|n| format!("`scripts/{n}`")));
    wanted.extend(names("benches", ".rs").into_iter().map(|n| format!("`benches/{n}`")));
    wanted.extend(names("fuzz/fuzz_targets", ".rs").into_iter().map(|n| format!("`{}`", n.trim_end_matches(".rs"))));
    let missing: Vec<&String> = wanted.iter().filter(|w| !testing.contains(w.as_str())).collect();
    assert!(missing.is_empty(), "README's Testing section does not name {missing:?}");
    assert!(wanted.len() > 30, "{wanted:?}");
}
