//! A minimal, in-memory Typst [`World`] for rendering session reports.
//!
//! Typst asks its `World` for everything it reads: the standard library, fonts,
//! the main source file and any other file. We split that into two parts:
//!
//! * [`Shared`]: the expensive, immutable state (library, font book, loaded
//!   fonts, parsed template) built once by `ReportRenderer::new` and reused for
//!   every render. Fonts are parsed lazily by Typst but their bytes are kept in
//!   memory, so no render ever touches the file system.
//! * [`ReportWorld`]: a cheap per-render view that borrows `Shared` and adds the
//!   report's data as virtual files (`/data.json`, `/logo.*`). Visitor text only
//!   ever reaches Typst through those files, never through markup, so it cannot
//!   be interpreted as Typst code.

use std::path::{Path, PathBuf};

use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime, Duration};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};

use super::RenderError;

/// Virtual path of the template inside the world.
pub(crate) const MAIN_PATH: &str = "/session_report.typ";
/// Virtual path of the JSON document the template reads with `json(..)`.
pub(crate) const DATA_PATH: &str = "/data.json";

/// State shared by all renders; built once, read-only afterwards (Send + Sync).
pub(crate) struct Shared {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
    main: Source,
}

impl Shared {
    /// Loads fonts from `fonts_dir` (plus Typst's embedded fonts) and parses
    /// the template text once.
    pub(crate) fn new(template: String, fonts_dir: &Path) -> Result<Self, RenderError> {
        let mut fonts = load_font_dir(fonts_dir)?;
        if fonts.is_empty() {
            // Without our fonts Indic scripts and emoji would print as boxes;
            // refuse to start rather than silently produce broken reports.
            return Err(RenderError::NoFonts(fonts_dir.to_path_buf()));
        }
        // Typst's embedded fonts (Libertinus, New Computer Modern, DejaVu Sans
        // Mono) are a Latin fallback and used for math; ours come first.
        fonts.extend(typst_assets::fonts().flat_map(|data| Font::iter(Bytes::new(data))));
        let book = FontBook::from_fonts(&fonts);
        Ok(Self {
            library: LazyHash::new(Library::default()),
            book: LazyHash::new(book),
            fonts,
            main: Source::new(file_id(MAIN_PATH)?, template),
        })
    }

    /// Number of font faces available (ours + embedded).
    pub(crate) fn font_count(&self) -> usize {
        self.fonts.len()
    }
}

/// Reads every `.ttf`, `.otf`, `.ttc` and `.otc` file directly in `dir`.
fn load_font_dir(dir: &Path) -> Result<Vec<Font>, RenderError> {
    let io_err = |path: &Path, source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "ttf" | "otf" | "ttc" | "otc"
                )
            })
        })
        .collect();
    // Sorted so font fallback order does not depend on directory order.
    paths.sort();
    let mut fonts = Vec::new();
    for path in paths {
        let data = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        fonts.extend(Font::iter(Bytes::new(data)));
    }
    Ok(fonts)
}

/// Interns a project-rooted virtual path as a Typst file id.
pub(crate) fn file_id(path: &str) -> Result<FileId, RenderError> {
    let vpath = VirtualPath::new(path)
        .map_err(|e| RenderError::Template(format!("invalid virtual path {path}: {e:?}")))?;
    Ok(RootedPath::new(VirtualRoot::Project, vpath).intern())
}

/// The per-render world: shared state plus this report's virtual files.
pub(crate) struct ReportWorld<'a> {
    shared: &'a Shared,
    /// Virtual files (`/data.json`, optionally `/logo.png|svg`).
    files: Vec<(FileId, Bytes)>,
    today: Option<Datetime>,
}

impl<'a> ReportWorld<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        files: Vec<(FileId, Bytes)>,
        today: Option<Datetime>,
    ) -> Self {
        Self {
            shared,
            files,
            today,
        }
    }

    /// The template source, used to turn error spans into line numbers.
    pub(crate) fn main_source(&self) -> &Source {
        &self.shared.main
    }
}

impl World for ReportWorld<'_> {
    fn library(&self) -> &LazyHash<Library> {
        &self.shared.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &self.shared.book
    }

    fn main(&self) -> FileId {
        self.shared.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.shared.main.id() {
            // Source is reference counted: this clone is cheap and lets comemo
            // reuse the parse and evaluation caches across renders.
            Ok(self.shared.main.clone())
        } else {
            Err(FileError::NotSource)
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.shared.main.id() {
            return Ok(Bytes::from_string(self.shared.main.clone()));
        }
        self.files
            .iter()
            .find(|(fid, _)| *fid == id)
            .map(|(_, bytes)| bytes.clone())
            // Nothing else exists: a template cannot read the host file system.
            .ok_or_else(|| FileError::NotFound(id.vpath().get_with_slash().into()))
    }

    fn font(&self, index: usize) -> Option<Font> {
        self.shared.fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        // The report's generation date, not the wall clock, so renders are
        // reproducible.
        self.today
    }
}
