//! Finding files: every path matching an `include` glob and no `exclude`
//! glob, regular files only, sorted and without duplicates. Polled each
//! `poll_interval`, as the Collector does: no inotify, so it works the
//! same on every file system (network mounts included).

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Globs {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
}

impl Globs {
    /// Compiles the globs, or lists each bad one as (field, index, message).
    pub fn new(
        include: &[String],
        exclude: &[String],
    ) -> Result<Globs, Vec<(&'static str, usize, String)>> {
        let mut errors = Vec::new();
        for (i, text) in include.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(text) {
                errors.push(("include", i, format!("`{text}` is not a glob: {e}")));
            }
        }
        let mut compiled = Vec::new();
        for (i, text) in exclude.iter().enumerate() {
            match glob::Pattern::new(text) {
                Ok(p) => compiled.push(p),
                Err(e) => errors.push(("exclude", i, format!("`{text}` is not a glob: {e}"))),
            }
        }
        if errors.is_empty() {
            Ok(Globs {
                include: include.to_vec(),
                exclude: compiled,
            })
        } else {
            Err(errors)
        }
    }

    pub fn find(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = self
            .include
            .iter()
            .filter_map(|pattern| glob::glob(pattern).ok())
            .flatten()
            // An unreadable directory on the way is skipped, not fatal.
            .filter_map(Result::ok)
            .filter(|path| !self.exclude.iter().any(|p| p.matches_path(path)))
            .filter(|path| path.is_file())
            .collect();
        found.sort();
        found.dedup();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_minus_excludes_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.log", "a.log", "a.log.1", "a.log.2.gz", "notes.txt"] {
            std::fs::write(dir.path().join(name), "x\n").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.log")).unwrap();
        let root = dir.path().display();
        let globs = Globs::new(
            &[format!("{root}/*.log*"), format!("{root}/a.log")],
            &[format!("{root}/*.gz")],
        )
        .unwrap();
        let names: Vec<String> = globs
            .find()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.log", "a.log.1", "b.log"]);
        let errors = Globs::new(&["[".into()], &[]).unwrap_err();
        assert_eq!(errors[0].0, "include");
    }
}
