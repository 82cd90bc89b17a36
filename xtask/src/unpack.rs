//! Unpacking plugin archives safely into the build workspace.
//!
//! Only regular files and folders are written, inside a fresh temporary folder that
//! becomes the destination by one rename once the whole archive has passed, so a
//! refused archive leaves nothing behind.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Seek};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use flate2::read::GzDecoder;
use tar::EntryType;

/// Caps on what one archive may unpack to.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// The total size its entries may declare; 512 MiB by default.
    pub(crate) max_unpacked_bytes: u64,
    /// How many entries it may hold, folders included; 20 000 by default.
    pub(crate) max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked_bytes: 512 * 1024 * 1024,
            max_entries: 20_000,
        }
    }
}

/// Unpacks the archive at `archive` (gzip-compressed tar — `.tar.gz`, `.tgz`, `.crate` —
/// or a plain `.tar`, told apart by their first bytes) into a new folder `destination`
/// (which must not exist yet), and returns the crate's root folder inside it: the
/// archive's single top-level folder, or `destination` itself when the crate's
/// `Cargo.toml` sits at the archive's top.
pub(crate) fn unpack(
    archive: &Path,
    destination: &Path,
    limits: &Limits,
) -> anyhow::Result<PathBuf> {
    let name = archive
        .file_name()
        .unwrap_or(archive.as_os_str())
        .to_string_lossy();
    unpack_through_temporary_folder(archive, destination, limits)
        .with_context(|| format!("plugin archive {name}"))
}

/// Room in the tar stream for each entry beyond its contents: its header and padding,
/// and any long name or pax records before it. Bounds what inflating an archive may
/// cost, including metadata that the tar reader holds in memory.
const METADATA_BYTES_PER_ENTRY: u64 = 16 * 1024;

/// The first bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Tar's block size: every header is one block, and contents are padded to whole blocks.
const BLOCK_SIZE: u64 = 512;

/// The file that makes a folder a crate root.
const MANIFEST: &str = "Cargo.toml";

/// Unpacks into a temporary folder beside `destination`, renamed to it on success.
fn unpack_through_temporary_folder(
    archive: &Path,
    destination: &Path,
    limits: &Limits,
) -> anyhow::Result<PathBuf> {
    if destination.symlink_metadata().is_ok() {
        bail!("its destination {} already exists", destination.display());
    }

    // Beside the destination, so that the final rename stays on one file system. It is
    // removed when dropped, which covers every early return below.
    let parent = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a temporary folder in {}", parent.display()))?;

    let root = extract(archive, temporary.path(), limits)?;

    fs::rename(temporary.path(), destination).with_context(|| {
        format!(
            "cannot move the unpacked crate to {}",
            destination.display()
        )
    })?;
    // The folder now lives at `destination`; there is nothing left to remove.
    temporary.disable_cleanup(true);

    Ok(root.map_or_else(|| destination.to_owned(), |folder| destination.join(folder)))
}

/// Unpacks every entry into `folder`, and returns the crate root's name within it (none
/// when the crate sits at the top).
fn extract(archive: &Path, folder: &Path, limits: &Limits) -> anyhow::Result<Option<OsString>> {
    let stream_cap = limits
        .max_unpacked_bytes
        .saturating_add(limits.max_entries.saturating_mul(METADATA_BYTES_PER_ENTRY));
    let stream = CappedReader {
        inner: open_tar_stream(archive)?,
        read: 0,
        cap: stream_cap,
    };
    let mut tar = tar::Archive::new(stream);

    let mut extraction = Extraction::new(folder, limits);
    for entry in tar.entries().context("cannot read it")? {
        let mut entry = entry.map_err(unreadable)?;
        extraction.add(&mut entry)?;
    }

    // The tar reader takes a clean end of file for the end of the archive; only the
    // marker tells a complete archive from one cut at a block boundary.
    let mut stream = tar.into_inner();
    if stream.read == extraction.end_of_entries {
        bail!("it ends without the end-of-archive marker, so it is truncated");
    }

    // Reading the rest makes gzip check its trailer, which catches a cut-off tail.
    io::copy(&mut stream, &mut io::sink()).map_err(unreadable)?;

    extraction.crate_root()
}

/// Opens the archive's tar stream, inflating it when it starts with the gzip magic.
fn open_tar_stream(archive: &Path) -> anyhow::Result<Box<dyn Read>> {
    let mut file = File::open(archive).context("cannot open it")?;
    let mut magic = Vec::with_capacity(GZIP_MAGIC.len());
    file.by_ref()
        .take(GZIP_MAGIC.len() as u64)
        .read_to_end(&mut magic)
        .context("cannot read it")?;
    if magic.is_empty() {
        bail!("it is empty");
    }
    file.rewind().context("cannot read it")?;

    if magic == GZIP_MAGIC {
        return Ok(Box::new(GzDecoder::new(file)));
    }
    Ok(Box::new(BufReader::new(file)))
}

/// The error for a tar stream that could not be read: a damaged or foreign file, unless
/// the stream passed its cap, whose message says so itself.
fn unreadable(error: io::Error) -> anyhow::Error {
    if error.kind() == ErrorKind::FileTooLarge {
        return error.into();
    }
    anyhow::Error::new(error)
        .context("it is truncated, corrupt or not a tar archive (plain or gzip-compressed)")
}

/// A reader that fails once more than `cap` bytes have come through, and counts them.
struct CappedReader<R> {
    inner: R,
    read: u64,
    cap: u64,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.read += count as u64;
        if self.read > self.cap {
            return Err(io::Error::new(
                ErrorKind::FileTooLarge,
                format!("it inflates to more than {} bytes of tar data", self.cap),
            ));
        }
        Ok(count)
    }
}

/// What has been unpacked so far, and what the archive's top level holds.
struct Extraction<'a> {
    folder: &'a Path,
    limits: &'a Limits,
    entries: u64,
    declared_bytes: u64,
    /// Where the tar stream's last entry ends, contents padding included.
    end_of_entries: u64,
    top_folders: BTreeSet<OsString>,
    top_files: BTreeSet<OsString>,
}

impl<'a> Extraction<'a> {
    fn new(folder: &'a Path, limits: &'a Limits) -> Self {
        Extraction {
            folder,
            limits,
            entries: 0,
            declared_bytes: 0,
            end_of_entries: 0,
            top_folders: BTreeSet::new(),
            top_files: BTreeSet::new(),
        }
    }

    /// Checks one entry against the caps and the rules, and writes it if it is a file or
    /// a folder.
    fn add(&mut self, entry: &mut tar::Entry<'_, impl Read>) -> anyhow::Result<()> {
        let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();

        self.entries += 1;
        if self.entries > self.limits.max_entries {
            bail!(
                "it holds more than {} entries, the cap",
                self.limits.max_entries
            );
        }
        self.declared_bytes = self.declared_bytes.saturating_add(entry.size());
        if self.declared_bytes > self.limits.max_unpacked_bytes {
            bail!(
                "its entries declare more than {} bytes, the cap (passed at entry {shown:?})",
                self.limits.max_unpacked_bytes
            );
        }
        self.end_of_entries = entry
            .raw_file_position()
            .saturating_add(entry.size().div_ceil(BLOCK_SIZE).saturating_mul(BLOCK_SIZE));

        let is_folder = match entry.header().entry_type() {
            // Old tars mark a folder by the trailing slash of its name alone.
            EntryType::Regular => shown.ends_with('/'),
            EntryType::Directory => true,
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => return Ok(()),
            refused => bail!(
                "entry {shown:?} is {}; only regular files and folders may be unpacked",
                describe(refused)
            ),
        };

        let path = entry
            .path()
            .with_context(|| format!("entry {shown:?} has a path this system cannot represent"))?;
        let relative = relative_path(&path, &shown)?;
        if is_folder {
            return self.create_folder(&relative, &shown);
        }
        self.write_file(entry, &relative, &shown)
    }

    fn create_folder(&mut self, relative: &Path, shown: &str) -> anyhow::Result<()> {
        // `./` names the archive's own top, which already exists.
        let Some(top) = relative.components().next() else {
            return Ok(());
        };
        self.top_folders.insert(top.as_os_str().to_owned());

        fs::create_dir_all(self.folder.join(relative))
            .with_context(|| format!("cannot create the folder of entry {shown:?}"))
    }

    fn write_file(
        &mut self,
        entry: &mut tar::Entry<'_, impl Read>,
        relative: &Path,
        shown: &str,
    ) -> anyhow::Result<()> {
        let mut components = relative.components();
        let Some(top) = components.next() else {
            bail!("entry {shown:?} is a file without a name");
        };
        let top = top.as_os_str().to_owned();
        if components.next().is_some() {
            self.top_folders.insert(top);
        } else {
            self.top_files.insert(top);
        }

        let path = self.folder.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the folder of entry {shown:?}"))?;
        }

        let mut file = create_file(&path, entry, shown)?;

        // Never more than the entry declared, which the size cap has counted.
        let declared = entry.size();
        let written = io::copy(&mut entry.take(declared), &mut file)
            .with_context(|| format!("cannot unpack entry {shown:?}"))?;
        if written < declared {
            bail!(
                "entry {shown:?} is cut short ({written} of its {declared} bytes), so the archive \
                 is truncated"
            );
        }
        Ok(())
    }

    /// The crate root's name inside the folder, once every entry is in: none when the
    /// crate sits at the top.
    fn crate_root(&self) -> anyhow::Result<Option<OsString>> {
        if self.top_files.is_empty() && self.top_folders.is_empty() {
            bail!("it holds no files");
        }
        if self.top_files.contains(OsStr::new(MANIFEST)) {
            return Ok(None);
        }
        if self.top_folders.is_empty() {
            bail!("it has no {MANIFEST} at its top");
        }

        let folder = match self.top_folders.first() {
            Some(folder) if self.top_folders.len() == 1 && self.top_files.is_empty() => folder,
            _ => bail!(
                "it holds {} at its top and no {MANIFEST} there; a plugin archive holds one \
                 crate, at its top or in a single folder",
                self.top_level_names()
            ),
        };
        let manifest = self.folder.join(folder).join(MANIFEST);
        if !fs::symlink_metadata(manifest).is_ok_and(|metadata| metadata.is_file()) {
            bail!(
                "it has no {MANIFEST} in its top-level folder {:?}",
                folder.to_string_lossy()
            );
        }
        Ok(Some(folder.clone()))
    }

    /// The top level's folders (shown with a trailing `/`), then its files, quoted.
    fn top_level_names(&self) -> String {
        let folders = self
            .top_folders
            .iter()
            .map(|name| format!("{:?}", format!("{}/", name.to_string_lossy())));
        let files = self
            .top_files
            .iter()
            .map(|name| format!("{:?}", name.to_string_lossy()));
        folders.chain(files).collect::<Vec<_>>().join(", ")
    }
}

/// The path an entry unpacks to, relative to the destination; `.` components dropped.
fn relative_path(path: &Path, shown: &str) -> anyhow::Result<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => bail!("entry {shown:?} leaves the archive"),
            Component::RootDir | Component::Prefix(_) => {
                bail!("entry {shown:?} has an absolute path")
            }
        }
    }
    Ok(relative)
}

/// What an entry that may not be unpacked is, for its error message.
fn describe(kind: EntryType) -> String {
    match kind {
        EntryType::Symlink => "a symbolic link".to_owned(),
        EntryType::Link => "a hard link".to_owned(),
        EntryType::Char => "a character device".to_owned(),
        EntryType::Block => "a block device".to_owned(),
        EntryType::Fifo => "a fifo".to_owned(),
        other => format!("of tar type {:?}", char::from(other.as_byte())),
    }
}

/// Creates the file of an entry. `create_new` never follows a link at the path, and
/// refuses to overwrite what an earlier entry wrote.
fn create_file(
    path: &Path,
    entry: &tar::Entry<'_, impl Read>,
    shown: &str,
) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, creation_mode(entry, shown)?);

    match options.open(path) {
        Ok(file) => Ok(file),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            bail!("entry {shown:?} would overwrite an earlier entry")
        }
        Err(error) => {
            Err(error).with_context(|| format!("cannot create the file of entry {shown:?}"))
        }
    }
}

/// The mode a file is created with: the archive's executable bit at most, so never
/// setuid, setgid or sticky; the umask applies as to any new file.
#[cfg(unix)]
fn creation_mode(entry: &tar::Entry<'_, impl Read>, shown: &str) -> anyhow::Result<u32> {
    let archived = entry
        .header()
        .mode()
        .with_context(|| format!("entry {shown:?} has an unreadable mode"))?;
    if archived & 0o111 == 0 {
        return Ok(0o666);
    }
    Ok(0o777)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::{Duration, SystemTime};

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use tempfile::TempDir;

    use super::*;

    /// The mtime every test entry carries: long ago, so that a kept one would show.
    const OLD_MTIME: u64 = 1_000_000;

    /// One entry of a test archive.
    struct Item {
        name: String,
        kind: EntryType,
        data: Vec<u8>,
        link: String,
        mode: u32,
    }

    fn file(name: &str, data: &str) -> Item {
        Item {
            name: name.to_owned(),
            kind: EntryType::Regular,
            data: data.as_bytes().to_vec(),
            link: String::new(),
            mode: 0o644,
        }
    }

    fn folder(name: &str) -> Item {
        Item {
            kind: EntryType::Directory,
            mode: 0o755,
            ..file(name, "")
        }
    }

    /// A link, device or fifo; `target` is the link's, empty for the others.
    fn special(kind: EntryType, name: &str, target: &str) -> Item {
        Item {
            kind,
            link: target.to_owned(),
            ..file(name, "")
        }
    }

    /// A plain tar of `items`. Names go into the header byte by byte, as `set_path`
    /// refuses the malicious ones these tests need.
    fn tar(items: &[Item]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(item.kind);
            header.set_size(item.data.len() as u64);
            header.set_mode(item.mode);
            header.set_mtime(OLD_MTIME);
            let old = header.as_old_mut();
            old.name[..item.name.len()].copy_from_slice(item.name.as_bytes());
            old.linkname[..item.link.len()].copy_from_slice(item.link.as_bytes());
            header.set_cksum();
            builder.append(&header, item.data.as_slice()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A small crate under the top-level folder `weather/`, with folder entries.
    fn weather_crate() -> Vec<Item> {
        vec![
            folder("weather/"),
            file("weather/Cargo.toml", "[package]\nname = \"weather\"\n"),
            folder("weather/src/"),
            file("weather/src/lib.rs", "//! Weather.\n"),
        ]
    }

    /// An archive that was unpacked, kept until the test ends.
    #[derive(Debug)]
    struct Unpacked {
        _folder: TempDir,
        destination: PathBuf,
        root: PathBuf,
    }

    /// Unpacks `bytes`, saved as `file_name`, into a new destination in an empty folder.
    /// On failure, checks that nothing was left behind (no destination, nothing new
    /// beside it or above it) and gives the message with its causes.
    fn check(file_name: &str, bytes: &[u8], limits: &Limits) -> Result<Unpacked, String> {
        let folder = tempfile::tempdir().unwrap();
        let archive = folder.path().join(file_name);
        fs::write(&archive, bytes).unwrap();
        let work = folder.path().join("work");
        fs::create_dir(&work).unwrap();
        let destination = work.join("plugin");

        let error = match unpack(&archive, &destination, limits) {
            Ok(root) => {
                return Ok(Unpacked {
                    _folder: folder,
                    destination,
                    root,
                });
            }
            Err(error) => format!("{error:#}"),
        };

        assert!(destination.symlink_metadata().is_err(), "{error}");
        assert!(names_in(&work).is_empty(), "{error}");
        assert_eq!(names_in(folder.path()), [file_name, "work"], "{error}");
        assert!(
            error.starts_with(&format!("plugin archive {file_name}: ")),
            "{error}"
        );
        Err(error)
    }

    /// Checks that the plain tar of `items` is refused with a message holding `reason`.
    fn assert_refused(items: &[Item], reason: &str) {
        let message = check("plugin.tar", &tar(items), &Limits::default()).unwrap_err();
        assert!(message.contains(reason), "{message}");
    }

    fn names_in(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Every file below `root`, as a relative path with `/`, sorted.
    fn files_below(root: &Path) -> Vec<String> {
        let mut files = Vec::new();
        let mut folders = vec![root.to_owned()];
        while let Some(folder) = folders.pop() {
            for entry in fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                    continue;
                }
                let relative = path.strip_prefix(root).unwrap();
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
        files.sort();
        files
    }

    #[test]
    fn an_entry_with_dot_dot_is_refused_even_after_good_entries() {
        let mut items = weather_crate();
        items.push(file("../x", "outside"));
        assert_refused(&items, r#"entry "../x" leaves the archive"#);

        assert_refused(
            &[file("weather/../../x", "outside")],
            r#"entry "weather/../../x" leaves the archive"#,
        );
    }

    #[test]
    fn an_absolute_path_is_refused() {
        assert_refused(
            &[file("/plugin/Cargo.toml", "")],
            r#"entry "/plugin/Cargo.toml" has an absolute path"#,
        );
    }

    #[test]
    fn a_symlink_pointing_out_is_refused() {
        let mut items = weather_crate();
        items.push(special(EntryType::Symlink, "weather/out", "../../.."));
        assert_refused(&items, r#"entry "weather/out" is a symbolic link"#);
    }

    #[test]
    fn a_hard_link_pointing_out_is_refused() {
        let mut items = weather_crate();
        items.push(special(EntryType::Link, "weather/out", "../outside"));
        assert_refused(&items, r#"entry "weather/out" is a hard link"#);
    }

    #[test]
    fn a_symlink_followed_by_a_file_of_its_name_is_refused_at_the_link() {
        let items = [
            special(EntryType::Symlink, "weather", ".."),
            file("weather/Cargo.toml", "written through the link"),
        ];
        assert_refused(&items, r#"entry "weather" is a symbolic link"#);
    }

    #[test]
    fn devices_and_fifos_are_refused() {
        for (kind, reason) in [
            (EntryType::Char, "a character device"),
            (EntryType::Block, "a block device"),
            (EntryType::Fifo, "a fifo"),
        ] {
            let mut items = weather_crate();
            items.push(special(kind, "weather/dev", ""));
            assert_refused(&items, &format!(r#"entry "weather/dev" is {reason}"#));
        }
    }

    #[test]
    fn a_file_without_a_name_is_refused() {
        assert_refused(&[file(".", "")], r#"entry "." is a file without a name"#);
    }

    #[test]
    fn a_second_entry_of_the_same_name_is_refused() {
        let mut items = weather_crate();
        items.push(file("weather/src/lib.rs", "//! Again.\n"));
        assert_refused(
            &items,
            r#"entry "weather/src/lib.rs" would overwrite an earlier entry"#,
        );
    }

    #[test]
    fn more_entries_than_the_cap_are_refused() {
        let mut items = weather_crate();
        items.extend((0..10).map(|index| file(&format!("weather/{index}.txt"), "")));
        let limits = Limits {
            max_entries: 10,
            ..Limits::default()
        };

        let message = check("plugin.tar", &tar(&items), &limits).unwrap_err();
        assert!(
            message.contains("it holds more than 10 entries, the cap"),
            "{message}"
        );
    }

    #[test]
    fn a_tiny_gzip_archive_that_inflates_past_the_size_cap_is_refused() {
        let mut items = weather_crate();
        items.push(Item {
            data: vec![0; 1024 * 1024],
            ..file("weather/zeros", "")
        });
        let archive = gzip(&tar(&items));
        assert!(archive.len() < 16 * 1024, "{} bytes", archive.len());
        let limits = Limits {
            max_unpacked_bytes: 512 * 1024,
            ..Limits::default()
        };

        let message = check("plugin.tar.gz", &archive, &limits).unwrap_err();
        assert!(
            message.contains(
                r#"declare more than 524288 bytes, the cap (passed at entry "weather/zeros")"#
            ),
            "{message}"
        );
    }

    #[test]
    fn metadata_that_inflates_past_the_stream_cap_is_refused() {
        // A GNU long name is held in memory by the tar reader, and counts toward no
        // file's size: only the cap on the whole stream stops it.
        let mut items = vec![Item {
            kind: EntryType::GNULongName,
            data: vec![b'a'; 1024 * 1024],
            ..file("././@LongLink", "")
        }];
        items.extend(weather_crate());
        let limits = Limits {
            max_unpacked_bytes: 512 * 1024,
            max_entries: 10,
        };

        let message = check("plugin.tar.gz", &gzip(&tar(&items)), &limits).unwrap_err();
        assert!(
            message.contains("it inflates to more than 688128 bytes of tar data"),
            "{message}"
        );
    }

    #[test]
    fn one_top_level_folder_is_the_crate_root() {
        // As GitHub makes them: a pax global header first, which is metadata.
        let mut items = vec![Item {
            kind: EntryType::XGlobalHeader,
            ..file("pax_global_header", "18 comment=abcdef\n")
        }];
        items.extend(weather_crate());

        let unpacked = check("plugin.tar.gz", &gzip(&tar(&items)), &Limits::default()).unwrap();
        assert_eq!(unpacked.root, unpacked.destination.join("weather"));
        assert_eq!(
            files_below(&unpacked.destination),
            ["weather/Cargo.toml", "weather/src/lib.rs"]
        );
    }

    #[test]
    fn an_archive_without_folder_entries_unpacks_like_one_with_them() {
        let items: Vec<Item> = weather_crate()
            .into_iter()
            .filter(|item| item.kind != EntryType::Directory)
            .collect();

        let unpacked = check("plugin.crate", &gzip(&tar(&items)), &Limits::default()).unwrap();
        assert_eq!(unpacked.root, unpacked.destination.join("weather"));
        assert_eq!(files_below(&unpacked.root), ["Cargo.toml", "src/lib.rs"]);
    }

    #[test]
    fn a_regular_entry_whose_name_ends_in_a_slash_is_a_folder() {
        let items: Vec<Item> = weather_crate()
            .into_iter()
            .map(|item| Item {
                kind: EntryType::Regular,
                ..item
            })
            .collect();

        let unpacked = check("plugin.tar", &tar(&items), &Limits::default()).unwrap();
        assert_eq!(unpacked.root, unpacked.destination.join("weather"));
        assert_eq!(files_below(&unpacked.root), ["Cargo.toml", "src/lib.rs"]);
    }

    #[test]
    fn entries_at_the_top_level_make_the_destination_the_root() {
        let bare = vec![file("Cargo.toml", "[package]\n"), file("src/lib.rs", "")];
        let dotted = vec![
            folder("./"),
            file("./Cargo.toml", "[package]\n"),
            folder("./src/"),
            file("./src/lib.rs", ""),
        ];

        for items in [bare, dotted] {
            let unpacked = check("plugin.tar", &tar(&items), &Limits::default()).unwrap();
            assert_eq!(unpacked.root, unpacked.destination);
            assert_eq!(files_below(&unpacked.root), ["Cargo.toml", "src/lib.rs"]);
        }
    }

    #[test]
    fn several_top_level_entries_without_a_manifest_are_refused_naming_them() {
        assert_refused(
            &[file("a/Cargo.toml", ""), file("b/Cargo.toml", "")],
            r#"it holds "a/", "b/" at its top and no Cargo.toml there"#,
        );
        assert_refused(
            &[file("a/Cargo.toml", ""), file("README", "")],
            r#"it holds "a/", "README" at its top and no Cargo.toml there"#,
        );
    }

    #[test]
    fn a_crate_root_without_a_manifest_is_refused() {
        assert_refused(
            &[file("weather/src/lib.rs", "")],
            r#"it has no Cargo.toml in its top-level folder "weather""#,
        );
        assert_refused(&[file("README", "")], "it has no Cargo.toml at its top");
    }

    #[test]
    fn an_empty_archive_is_refused() {
        for (file_name, bytes, reason) in [
            ("plugin.tar.gz", Vec::new(), "it is empty"),
            ("plugin.tar", tar(&[]), "it holds no files"),
            ("plugin.tar.gz", gzip(&tar(&[])), "it holds no files"),
        ] {
            let message = check(file_name, &bytes, &Limits::default()).unwrap_err();
            assert!(message.ends_with(reason), "{message}");
        }
    }

    #[test]
    fn bytes_that_are_not_an_archive_are_refused() {
        let page = "<!DOCTYPE html><html><body>404 Not Found</body></html>\n";
        for html in [page.to_owned(), page.repeat(20)] {
            let message = check("plugin.tar.gz", html.as_bytes(), &Limits::default()).unwrap_err();
            assert!(
                message.contains("it is truncated, corrupt or not a tar archive"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_truncated_gzip_archive_is_refused() {
        let archive = gzip(&tar(&weather_crate()));
        // In the gzip header, in the middle, and in the trailer after the tar's end.
        for length in [5, archive.len() / 2, archive.len() - 4] {
            let message =
                check("plugin.tar.gz", &archive[..length], &Limits::default()).unwrap_err();
            assert!(message.contains("it is truncated"), "{message}");
        }
    }

    #[test]
    fn a_truncated_tar_archive_is_refused() {
        let archive = tar(&weather_crate());
        for (length, reason) in [
            (100, "it is truncated, corrupt or not a tar archive"),
            (
                2 * 512 + 10,
                r#"entry "weather/Cargo.toml" is cut short (10 of its 27 bytes)"#,
            ),
            (6 * 512, "it ends without the end-of-archive marker"),
        ] {
            let message = check("plugin.tar", &archive[..length], &Limits::default()).unwrap_err();
            assert!(message.contains(reason), "{message}");
        }
    }

    #[test]
    fn plain_and_gzip_archives_are_told_apart_by_content_not_name() {
        let plain = tar(&weather_crate());
        let compressed = gzip(&plain);
        for (file_name, bytes) in [
            ("plugin.tar", &plain),
            ("plugin.tgz", &plain),
            ("plugin.tar", &compressed),
            ("plugin.crate", &compressed),
        ] {
            let unpacked = check(file_name, bytes, &Limits::default()).unwrap();
            assert_eq!(files_below(&unpacked.root), ["Cargo.toml", "src/lib.rs"]);
        }
    }

    #[test]
    fn an_existing_destination_is_refused_and_left_alone() {
        let folder = tempfile::tempdir().unwrap();
        let archive = folder.path().join("plugin.tar");
        fs::write(&archive, tar(&weather_crate())).unwrap();
        let destination = folder.path().join("plugin");
        fs::create_dir(&destination).unwrap();
        fs::write(destination.join("kept"), "").unwrap();

        let message = format!(
            "{:#}",
            unpack(&archive, &destination, &Limits::default()).unwrap_err()
        );
        assert!(message.contains("already exists"), "{message}");
        assert_eq!(names_in(&destination), ["kept"]);
    }

    #[test]
    fn unpacked_files_get_the_current_mtime() {
        let started = SystemTime::now() - Duration::from_secs(60);
        let unpacked = check("plugin.tar", &tar(&weather_crate()), &Limits::default()).unwrap();

        for file in ["Cargo.toml", "src/lib.rs"] {
            let modified = fs::metadata(unpacked.root.join(file))
                .unwrap()
                .modified()
                .unwrap();
            assert!(modified > started, "{file} is dated {modified:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn only_the_executable_bit_of_a_mode_is_kept() {
        use std::os::unix::fs::PermissionsExt;

        let mut items = weather_crate();
        items.push(Item {
            mode: 0o4755,
            ..file("weather/run.sh", "#!/bin/sh\n")
        });
        items.push(Item {
            mode: 0o2644,
            ..file("weather/README", "")
        });
        let unpacked = check("plugin.tar", &tar(&items), &Limits::default()).unwrap();

        let mode = |name: &str| {
            let metadata = fs::metadata(unpacked.root.join(name)).unwrap();
            metadata.permissions().mode() & 0o7777
        };
        assert_eq!(mode("run.sh") & 0o7100, 0o100, "{:o}", mode("run.sh"));
        assert_eq!(mode("README") & 0o7111, 0, "{:o}", mode("README"));
    }
}
