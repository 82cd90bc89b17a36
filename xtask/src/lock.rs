//! `plugins.lock`, next to the config: the sha256 of every plugin archive a build used,
//! so that the next build fetches the same bytes (and `--locked` refuses any change).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The lock file's name.
pub(crate) const LOCK_FILE: &str = "plugins.lock";

/// The lock file as read or to be written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lock {
    /// Archive URL -> sha256.
    entries: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct LockFile {
    #[serde(default, rename = "source")]
    sources: Vec<LockEntry>,
}

#[derive(Serialize, Deserialize)]
struct LockEntry {
    url: String,
    sha256: String,
}

const HEADER: &str = "# Written by `cargo xtask build-with-plugins`: the sha256 of each plugin archive.\n# Commit it; `--locked` refuses any build that would change it.\n\n";

impl Lock {
    /// Reads the lock file in `folder`; an absent file is an empty lock.
    pub(crate) fn read(folder: &Path) -> anyhow::Result<Lock> {
        let path = folder.join(LOCK_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Lock::default());
            }
            Err(error) => return Err(error).with_context(|| format!("read {}", path.display())),
        };

        let file: LockFile = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid lock file", path.display()))?;
        let entries = file
            .sources
            .into_iter()
            .map(|entry| (entry.url, entry.sha256))
            .collect();
        Ok(Lock { entries })
    }

    /// The sha256 recorded for `url`.
    pub(crate) fn get(&self, url: &str) -> Option<&str> {
        self.entries.get(url).map(String::as_str)
    }

    /// Records `sha256` for `url`.
    pub(crate) fn insert(&mut self, url: &str, sha256: &str) {
        self.entries.insert(url.to_owned(), sha256.to_owned());
    }

    /// What would change from `self` to `next`, one line each; empty when nothing would.
    pub(crate) fn changes(&self, next: &Lock) -> Vec<String> {
        let mut changes = Vec::new();
        for (url, sha256) in &next.entries {
            match self.entries.get(url) {
                None => changes.push(format!("{url} would be added (sha256 {sha256})")),
                Some(old) if old != sha256 => {
                    changes.push(format!("{url} would change from sha256 {old} to {sha256}"));
                }
                Some(_) => {}
            }
        }
        for url in self
            .entries
            .keys()
            .filter(|url| !next.entries.contains_key(*url))
        {
            changes.push(format!("{url} would be removed"));
        }
        changes
    }

    /// Writes the lock file into `folder` atomically, unless it would not change.
    pub(crate) fn write_if_changed(
        &self,
        folder: &Path,
        previous: &Lock,
    ) -> anyhow::Result<Option<PathBuf>> {
        if self == previous {
            return Ok(None);
        }
        let file = LockFile {
            sources: self
                .entries
                .iter()
                .map(|(url, sha256)| LockEntry {
                    url: url.clone(),
                    sha256: sha256.clone(),
                })
                .collect(),
        };
        let text = format!("{HEADER}{}", toml::to_string(&file)?);

        let path = folder.join(LOCK_FILE);
        let temporary = folder.join(format!(".{LOCK_FILE}.{}", std::process::id()));
        std::fs::write(&temporary, text)
            .with_context(|| format!("write {}", temporary.display()))?;
        std::fs::rename(&temporary, &path).with_context(|| format!("write {}", path.display()))?;
        Ok(Some(path))
    }
}

/// Fails with every change, when `--locked` forbids them.
pub(crate) fn refuse_changes(previous: &Lock, next: &Lock) -> anyhow::Result<()> {
    let changes = previous.changes(next);
    if changes.is_empty() {
        return Ok(());
    }
    bail!(
        "{LOCK_FILE} would change, and --locked forbids it:\n  {}",
        changes.join("\n  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_round_trips_and_is_written_only_when_it_changes() {
        let folder = tempfile::tempdir().unwrap();
        let empty = Lock::read(folder.path()).unwrap();
        assert_eq!(empty, Lock::default());

        let mut lock = Lock::default();
        lock.insert("https://example.org/a.tar.gz", &"a".repeat(64));
        assert!(
            lock.write_if_changed(folder.path(), &empty)
                .unwrap()
                .is_some()
        );
        let read = Lock::read(folder.path()).unwrap();
        assert_eq!(read, lock);
        assert!(
            lock.write_if_changed(folder.path(), &read)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn locked_refuses_added_changed_and_removed_sources() {
        let mut before = Lock::default();
        before.insert("https://a/x.tgz", &"1".repeat(64));
        before.insert("https://a/gone.tgz", &"2".repeat(64));
        let mut after = Lock::default();
        after.insert("https://a/x.tgz", &"3".repeat(64));
        after.insert("https://a/new.tgz", &"4".repeat(64));

        let message = refuse_changes(&before, &after).unwrap_err().to_string();
        assert!(
            message.contains("https://a/x.tgz would change"),
            "{message}"
        );
        assert!(
            message.contains("https://a/new.tgz would be added"),
            "{message}"
        );
        assert!(
            message.contains("https://a/gone.tgz would be removed"),
            "{message}"
        );
        assert!(refuse_changes(&before, &before).is_ok());
    }
}
