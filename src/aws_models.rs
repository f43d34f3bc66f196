//! `edgesplit install-models`: the AWS service models edgesplit serves but today's SDKs no longer ship.
//!
//! AWS removed CloudWatch Evidently from botocore after 1.42.50, so a current boto3 or AWS CLI raises
//! `UnknownServiceError: Unknown service: 'evidently'`. botocore (and so boto3, the AWS CLI v1 and v2)
//! also loads models from `~/.aws/models` (what `aws configure add-model` writes) and from the folders in
//! `AWS_DATA_PATH`, laid out as `<root>/<service>/<api version>/<file>`. This module writes the Evidently
//! model and its paginators there. The files are embedded in the binary (see `models/README.md` for where
//! they came from and their licence), so an installed `edgesplit` needs no copy of the repository.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// One file of a service model, relative to the models root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModelFile {
    /// `<service>/<api version>/<file>`, botocore's layout.
    pub path: &'static str,
    pub contents: &'static [u8],
}

/// Every file `install` writes.
pub(crate) const FILES: &[ModelFile] = &[
    ModelFile {
        path: "evidently/2021-02-01/service-2.json",
        contents: include_bytes!("../models/evidently/2021-02-01/service-2.json"),
    },
    ModelFile {
        path: "evidently/2021-02-01/paginators-1.json",
        contents: include_bytes!("../models/evidently/2021-02-01/paginators-1.json"),
    },
];

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created, or replaced a file with other contents.
    Written,
    /// Already there with the same bytes; left alone.
    Unchanged,
}

/// One file `install` handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub path: PathBuf,
    pub bytes: usize,
    pub outcome: Outcome,
}

/// Why the models could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot find the home folder (HOME is not set): name a folder with --dir DIR and set AWS_DATA_PATH to it")]
    NoHome,
    #[error("cannot create the folder {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// `~/.aws/models`: where `aws configure add-model` writes and botocore, the AWS CLI v1 and v2 look.
pub fn default_root() -> Result<PathBuf, InstallError> {
    match std::env::home_dir() {
        Some(home) if !home.as_os_str().is_empty() => Ok(home.join(".aws").join("models")),
        _ => Err(InstallError::NoHome),
    }
}

/// Writes every file of `FILES` under `root` (created if missing). A file already there with the same
/// bytes is left alone; one with other bytes is replaced, through a temporary file and a rename, so a
/// client loading the model at that moment reads either the old file or the new one.
pub fn install(root: &Path) -> Result<Vec<Installed>, InstallError> {
    let mut done = Vec::with_capacity(FILES.len());
    for file in FILES {
        let path = root.join(file.path);
        let dir = path.parent().unwrap_or(root);
        std::fs::create_dir_all(dir).map_err(|source| InstallError::CreateDir { path: dir.to_path_buf(), source })?;
        let outcome = if std::fs::read(&path).is_ok_and(|have| have == file.contents) {
            Outcome::Unchanged
        } else {
            write_atomically(&path, file.contents)
                .map_err(|source| InstallError::Write { path: path.clone(), source })?;
            Outcome::Written
        };
        done.push(Installed { path, bytes: file.contents.len(), outcome });
    }
    Ok(done)
}

fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.edgesplit-{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, contents).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What `edgesplit install-models` prints: each file, then the next step. `explicit` is true when the
/// root came from `--dir` (then clients find it only through `AWS_DATA_PATH`).
pub fn report(root: &Path, installed: &[Installed], explicit: bool) -> String {
    let mut out = String::new();
    for f in installed {
        let what = match f.outcome {
            Outcome::Written => "wrote    ",
            Outcome::Unchanged => "unchanged",
        };
        let _ = writeln!(out, "{what} {} ({} bytes)", f.path.display(), f.bytes);
    }
    out.push('\n');
    if explicit {
        let listed =
            std::env::var_os("AWS_DATA_PATH").is_some_and(|v| std::env::split_paths(&v).any(|p| same_folder(&p, root)));
        if listed {
            let _ = writeln!(
                out,
                "AWS_DATA_PATH already lists {}: boto3 and the AWS CLI will find the models.",
                root.display()
            );
        } else {
            let _ = writeln!(
                out,
                "Next: export AWS_DATA_PATH={} (botocore, boto3 and the AWS CLI read extra models from the \
                 folders listed there), then use the `evidently` client with edgesplit's admin listener as \
                 its endpoint_url.",
                root.display()
            );
        }
    } else {
        let _ = writeln!(
            out,
            "boto3, botocore and the AWS CLI (v1 and v2) of this user now know the `evidently` service. Next: \
             use it with edgesplit's admin listener as the endpoint, e.g. boto3.client(\"evidently\", \
             endpoint_url=\"http://127.0.0.1:9901\", ...) or aws evidently list-projects --endpoint-url \
             http://127.0.0.1:9901."
        );
    }
    out
}

fn same_folder(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_embedded_files_are_the_evidently_model_and_its_paginators() {
        let model: serde_json::Value = serde_json::from_slice(FILES[0].contents).unwrap();
        assert_eq!(model["metadata"]["uid"], "evidently-2021-02-01");
        assert_eq!(model["metadata"]["protocol"], "rest-json");
        assert_eq!(model["metadata"]["signingName"], "evidently");
        for op in ["EvaluateFeature", "BatchEvaluateFeature", "PutProjectEvents", "ListProjects", "CreateLaunch"] {
            assert!(model["operations"][op].is_object(), "{op} missing");
        }
        let pages: serde_json::Value = serde_json::from_slice(FILES[1].contents).unwrap();
        assert!(pages["pagination"]["ListFeatures"].is_object());
        // botocore's layout: <service>/<api version>/<file>, the version being the model's.
        assert_eq!(FILES[0].path, "evidently/2021-02-01/service-2.json");
        assert_eq!(FILES[1].path, "evidently/2021-02-01/paginators-1.json");
        assert_eq!(model["metadata"]["apiVersion"], "2021-02-01");
    }

    #[test]
    fn install_writes_botocores_layout_then_leaves_identical_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("models"); // created by install
        let first = install(&root).unwrap();
        assert_eq!(first.len(), 2);
        for (f, want) in first.iter().zip(FILES) {
            assert_eq!(f.outcome, Outcome::Written);
            assert_eq!(f.path, root.join(want.path));
            assert_eq!(std::fs::read(&f.path).unwrap(), want.contents);
            assert_eq!(f.bytes, want.contents.len());
        }
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(root.join("evidently/2021-02-01"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        let again = install(&root).unwrap();
        assert!(again.iter().all(|f| f.outcome == Outcome::Unchanged), "{again:?}");

        // A stale or damaged copy is replaced.
        std::fs::write(&first[0].path, b"{}").unwrap();
        let fixed = install(&root).unwrap();
        assert_eq!((fixed[0].outcome, fixed[1].outcome), (Outcome::Written, Outcome::Unchanged));
        assert_eq!(std::fs::read(&first[0].path).unwrap(), FILES[0].contents);
    }

    #[test]
    fn a_root_that_cannot_be_created_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a folder").unwrap();
        let err = install(&file.join("models")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, InstallError::CreateDir { .. }), "{text}");
        assert!(text.starts_with(&format!("cannot create the folder {}", file.join("models").display())), "{text}");
    }

    #[test]
    fn a_file_in_the_way_of_a_model_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where service-2.json should go: the rename cannot replace it.
        std::fs::create_dir_all(dir.path().join("evidently/2021-02-01/service-2.json")).unwrap();
        let err = install(dir.path()).unwrap_err();
        assert!(matches!(err, InstallError::Write { .. }), "{err}");
        assert!(err.to_string().contains("service-2.json"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("evidently/2021-02-01")).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file is removed");
    }

    #[test]
    fn the_report_names_each_file_and_the_next_step() {
        let dir = tempfile::tempdir().unwrap();
        let installed = install(dir.path()).unwrap();
        let text = report(dir.path(), &installed, true);
        assert!(text.contains(&format!("wrote     {}", dir.path().join(FILES[0].path).display())), "{text}");
        // Unless AWS_DATA_PATH already lists the folder, the next step is to set it.
        assert!(text.contains(&format!("AWS_DATA_PATH={}", dir.path().display())), "{text}");
        let text = report(&default_root().unwrap(), &install(dir.path()).unwrap(), false);
        assert!(text.starts_with("unchanged "), "{text}");
        assert!(text.contains("now know the `evidently` service"), "{text}");
    }

    #[test]
    fn the_default_root_is_dot_aws_models_in_the_home_folder() {
        let root = default_root().unwrap();
        assert!(root.ends_with(".aws/models"), "{}", root.display());
    }
}
