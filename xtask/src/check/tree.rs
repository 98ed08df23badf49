//! The module tree: every `src/**/*.rs` parsed, each placed at its module path.
//!
//! `src/lib.rs` and `src/main.rs` are crate roots (both the module `crate`; main.rs
//! reaches the library through the crate's name, which resolves to the same tree).
//! `mod a;` in a root or a `mod.rs` is `a.rs` or `a/mod.rs` beside it, in `x.rs` it is
//! `x/a.rs` or `x/a/mod.rs`; `#[path = "..."]` is honoured; inline `mod a { ... }` is a
//! module too. A file that no `mod` reaches still gets the module its path names
//! (`src/core/x.rs` is `core::x`), so a file not yet wired in is checked all the same.
//! `#[cfg(test)]` modules are not part of the tree.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use syn::punctuated::Punctuated;
use syn::{Attribute, Item, Meta, Token};

/// A module path below the crate root: `["core", "audit"]` is `crate::core::audit`.
pub type ModPath = Vec<String>;

pub struct SourceFile {
    /// The path from the workspace root, with `/`: `src/core/x.rs`.
    pub rel: String,
    /// The module the file is.
    pub module: ModPath,
    pub ast: syn::File,
}

pub struct Tree {
    pub crate_name: String,
    pub files: Vec<SourceFile>,
    pub modules: BTreeSet<ModPath>,
    /// Files that could not be read or parsed, `mod` declarations without a file.
    pub broken: Vec<String>,
}

impl Tree {
    /// The longest prefix of `path` that is a module (the crate root at least).
    pub fn module_of(&self, path: &[String]) -> ModPath {
        (0..=path.len())
            .rev()
            .map(|n| &path[..n])
            .find(|prefix| self.modules.contains(*prefix))
            .unwrap_or(&[])
            .to_vec()
    }

    pub fn has_child(&self, module: &[String], name: &str) -> bool {
        let mut child = module.to_vec();
        child.push(name.to_string());
        self.modules.contains(&child)
    }
}

struct Pending {
    path: PathBuf,
    module: ModPath,
    /// Where the files of this module's `mod x;` children are.
    child_dir: PathBuf,
}

struct Loader<'a> {
    root: &'a Path,
    tree: Tree,
    queue: VecDeque<Pending>,
    seen: HashSet<PathBuf>,
    /// Directories of `#[cfg(test)] mod x;` files: whatever is below them is test code.
    test_dirs: Vec<PathBuf>,
}

pub fn load(root: &Path, crate_name: &str) -> Result<Tree> {
    let src = root.join("src");
    let mut loader = Loader {
        root,
        tree: Tree {
            crate_name: crate_name.to_string(),
            files: Vec::new(),
            modules: BTreeSet::from([Vec::new()]),
            broken: Vec::new(),
        },
        queue: VecDeque::new(),
        seen: HashSet::new(),
        test_dirs: Vec::new(),
    };
    for crate_root in ["lib.rs", "main.rs"] {
        let path = src.join(crate_root);
        if path.is_file() {
            loader.queue.push_back(Pending {
                path,
                module: Vec::new(),
                child_dir: src.clone(),
            });
        }
    }
    loader.drain();

    let mut all = Vec::new();
    rust_files(&src, &mut all)?;
    all.sort();
    for path in all {
        let canonical_path = canonical(&path);
        if loader.seen.contains(&canonical_path)
            || loader
                .test_dirs
                .iter()
                .any(|d| canonical_path.starts_with(d))
        {
            continue;
        }
        let Some(module) = module_from_path(&src, &path) else {
            continue;
        };
        for n in 1..=module.len() {
            loader.tree.modules.insert(module[..n].to_vec());
        }
        let child_dir = child_dir_of(&path);
        loader.queue.push_back(Pending {
            path,
            module,
            child_dir,
        });
        loader.drain();
    }
    loader.tree.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(loader.tree)
}

impl Loader<'_> {
    fn drain(&mut self) {
        while let Some(pending) = self.queue.pop_front() {
            self.load_file(pending);
        }
    }

    fn load_file(&mut self, pending: Pending) {
        if !self.seen.insert(canonical(&pending.path)) {
            return;
        }
        let rel = rel_path(self.root, &pending.path);
        let text = match std::fs::read_to_string(&pending.path) {
            Ok(text) => text,
            Err(e) => {
                self.tree.broken.push(format!("{rel}: cannot read: {e}"));
                return;
            }
        };
        let ast = match syn::parse_file(&text) {
            Ok(ast) => ast,
            Err(e) => {
                let line = e.span().start().line;
                self.tree
                    .broken
                    .push(format!("{rel}:{line}: cannot parse: {e}"));
                return;
            }
        };
        if is_test(&ast.attrs) {
            return;
        }
        let file_dir = pending
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        self.declare(
            &rel,
            &ast.items,
            &pending.module,
            &pending.child_dir,
            &file_dir,
            false,
        );
        self.tree.files.push(SourceFile {
            rel,
            module: pending.module,
            ast,
        });
    }

    /// Every `mod` in `items` (of module `module`, in a file in `file_dir`): a module of
    /// the tree, and for `mod x;` a file to load.
    fn declare(
        &mut self,
        rel: &str,
        items: &[Item],
        module: &[String],
        child_dir: &Path,
        file_dir: &Path,
        inline: bool,
    ) {
        for item in items {
            let Item::Mod(m) = item else { continue };
            let name = ident_string(&m.ident);
            if is_test(&m.attrs) {
                // Not part of the tree, and not to be picked up as a file no `mod` reaches.
                if m.content.is_none() {
                    let files = mod_files(&m.attrs, &name, child_dir, file_dir, inline);
                    for candidate in files.into_iter().filter(|c| c.is_file()) {
                        self.test_dirs.push(canonical(&child_dir_of(&candidate)));
                        self.seen.insert(canonical(&candidate));
                    }
                }
                continue;
            }
            let mut sub = module.to_vec();
            sub.push(name.clone());
            self.tree.modules.insert(sub.clone());
            if let Some((_, items)) = &m.content {
                self.declare(rel, items, &sub, &child_dir.join(&name), file_dir, true);
                continue;
            }
            let candidates = mod_files(&m.attrs, &name, child_dir, file_dir, inline);
            match candidates.iter().find(|c| c.is_file()) {
                Some(path) => self.queue.push_back(Pending {
                    path: path.clone(),
                    module: sub,
                    child_dir: child_dir_of(path),
                }),
                None => {
                    let line = m.ident.span().start().line;
                    let looked: Vec<_> =
                        candidates.iter().map(|c| rel_path(self.root, c)).collect();
                    self.tree.broken.push(format!(
                        "{rel}:{line}: `mod {name};` has no file (looked for {})",
                        looked.join(", ")
                    ));
                }
            }
        }
    }
}

/// The files `mod name;` may be, in the order Rust looks.
fn mod_files(
    attrs: &[Attribute],
    name: &str,
    child_dir: &Path,
    file_dir: &Path,
    inline: bool,
) -> Vec<PathBuf> {
    match path_attr(attrs) {
        // Inside an inline module a #[path] is relative to that module's directory,
        // outside one to the directory of the file that declares it.
        Some(p) if inline => vec![child_dir.join(p)],
        Some(p) => vec![file_dir.join(p)],
        None => vec![
            child_dir.join(format!("{name}.rs")),
            child_dir.join(name).join("mod.rs"),
        ],
    }
}

/// Where the `mod x;` children of the module in `path` live: beside a `mod.rs`, in a
/// directory named after any other file.
fn child_dir_of(path: &Path) -> PathBuf {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    match path.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") => dir,
        _ => match path.file_stem() {
            Some(stem) => dir.join(stem),
            None => dir,
        },
    }
}

/// The module a file not reached by any `mod` would be: `src/a/b.rs` and
/// `src/a/b/mod.rs` are `a::b`. None for the crate roots and names that are no idents.
fn module_from_path(src: &Path, path: &Path) -> Option<ModPath> {
    let rel = path.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    if last != "mod.rs" {
        parts.push(last.strip_suffix(".rs")?.to_string());
    }
    if parts.is_empty() || parts == ["lib"] || parts == ["main"] {
        return None;
    }
    parts
        .iter()
        .all(|p| syn::parse_str::<syn::Ident>(p).is_ok())
        .then_some(parts)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

pub fn rel_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// An identifier as code names it elsewhere: `r#type` is `type`.
pub fn ident_string(ident: &syn::Ident) -> String {
    let s = ident.to_string();
    match s.strip_prefix("r#") {
        Some(raw) => raw.to_string(),
        None => s,
    }
}

fn path_attr(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| match &attr.meta {
        Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Whether these attributes make an item test-only: `#[cfg(test)]`,
/// `#[cfg(all(test, ...))]`, `#[test]` (and `#[tokio::test]` and the like).
pub fn is_test(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let path = attr.path();
        if path.segments.last().is_some_and(|s| s.ident == "test") {
            return true;
        }
        path.is_ident("cfg")
            && attr
                .parse_args::<Meta>()
                .is_ok_and(|meta| cfg_needs_test(&meta))
    })
}

/// Whether a cfg predicate holds only when `test` does.
fn cfg_needs_test(meta: &Meta) -> bool {
    match meta {
        Meta::Path(path) => path.is_ident("test"),
        Meta::List(list) if list.path.is_ident("all") => list
            .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            .is_ok_and(|preds| preds.iter().any(cfg_needs_test)),
        _ => false,
    }
}
