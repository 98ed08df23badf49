//! One walk over every file's syntax tree: the paths it names, each resolved as far as
//! `use` declarations and the module tree allow, checked against the names only
//! `src/os/` and `src/main.rs` may use, and (when they lead into the crate) kept as
//! references for the cycle check.
//!
//! Paths are read from `use` trees (grouped and renamed ones too), from every path in
//! expressions, types and patterns, and from macro invocations, whose arguments are only
//! tokens: there any `a::b::c` run of identifiers counts as a path. `.is_terminal()` is
//! caught as a method call. `#[cfg(test)]` and `#[test]` items are not read at all.

use std::collections::{BTreeSet, HashMap};

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Attribute, Item, UseTree};

use super::tree::{ModPath, SourceFile, Tree, ident_string, is_test};

/// Crates that are the OS: naming one outside src/os and src/main.rs is a layering
/// violation. Any crate named `netlink_*` is one too.
pub const FORBIDDEN_CRATES: &[&str] = &[
    "rustix",
    "libc",
    "procfs",
    "sysinfo",
    "if_addrs",
    "socket2",
    "netstat2",
    "ctrlc",
    "nix",
    "terminal_size",
    "tokio",
    "hyper",
    "hyper_util",
    "crossterm",
];

/// A forbidden name at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub file: String,
    pub line: usize,
    pub name: String,
}

/// A path into the crate, named in module `from`.
#[derive(Debug, Clone)]
pub struct RawRef {
    pub from: ModPath,
    /// The path from the crate root, resolved: `["commands", "watch", "parse_interval"]`.
    pub path: Vec<String>,
    pub file: String,
    pub line: usize,
}

pub struct Scanned {
    pub forbidden: Vec<Hit>,
    pub references: Vec<RawRef>,
}

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Into this crate: the segments after `crate::`.
    Crate(Vec<String>),
    /// Anywhere else (`std::fs::read`, `libc::getuid`), or a local name (`x`, `Self::new`).
    External(Vec<String>),
}

impl Resolved {
    fn join(&self, rest: &[String]) -> Resolved {
        let extend = |base: &Vec<String>| base.iter().chain(rest).cloned().collect();
        match self {
            Resolved::Crate(p) => Resolved::Crate(extend(p)),
            Resolved::External(p) => Resolved::External(extend(p)),
        }
    }
}

/// The names `use` brings into each module: `fs` -> `std::fs`, `Socket` ->
/// `crate::model::Socket`.
type Aliases = HashMap<ModPath, HashMap<String, Resolved>>;

pub fn scan(tree: &Tree) -> Scanned {
    let mut aliases = Aliases::new();
    for file in &tree.files {
        let mut collector = AliasCollector {
            tree,
            module: file.module.clone(),
            aliases: &mut aliases,
        };
        collector.visit_file(&file.ast);
    }

    let mut hits = BTreeSet::new();
    let mut references = Vec::new();
    for file in &tree.files {
        let mut scanner = Scanner {
            tree,
            aliases: &aliases,
            file,
            allowed: file.rel.starts_with("src/os/") || file.rel == "src/main.rs",
            module: file.module.clone(),
            hits: &mut hits,
            references: &mut references,
        };
        scanner.visit_file(&file.ast);
    }
    Scanned {
        forbidden: hits.into_iter().collect(),
        references,
    }
}

/// Where `segs` (after a leading `::` if `leading`) leads when named in `module`.
/// `aliases`: the names `use` brought into that module, for paths that are not `use`
/// paths themselves.
fn resolve(
    tree: &Tree,
    aliases: Option<&HashMap<String, Resolved>>,
    module: &[String],
    leading: bool,
    segs: &[String],
) -> Resolved {
    let Some(first) = segs.first() else {
        return Resolved::External(Vec::new());
    };
    let rest = &segs[1..];
    if leading {
        return if *first == tree.crate_name {
            Resolved::Crate(rest.to_vec())
        } else {
            Resolved::External(segs.to_vec())
        };
    }
    match first.as_str() {
        "crate" => Resolved::Crate(rest.to_vec()),
        "self" => Resolved::Crate(module.iter().chain(rest).cloned().collect()),
        "super" => {
            let ups = segs.iter().take_while(|s| *s == "super").count();
            let base = &module[..module.len().saturating_sub(ups)];
            Resolved::Crate(base.iter().chain(&segs[ups..]).cloned().collect())
        }
        name if name == tree.crate_name => Resolved::Crate(rest.to_vec()),
        name => {
            if let Some(target) = aliases.and_then(|a| a.get(name)) {
                target.join(rest)
            } else if tree.has_child(module, name) {
                Resolved::Crate(module.iter().chain(segs).cloned().collect())
            } else {
                Resolved::External(segs.to_vec())
            }
        }
    }
}

/// The forbidden name a path is, if it is one: the most specific that matches.
pub fn forbidden_name(resolved: &Resolved) -> Option<String> {
    let Resolved::External(segs) = resolved else {
        return None;
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let window = |pair: [&str; 2]| s.windows(2).any(|w| w == pair);
    let found = |name: &str| Some(name.to_string());
    if s.starts_with(&["std", "fs", "File"]) {
        return found("std::fs::File");
    }
    if s.starts_with(&["std", "fs"]) {
        return found("std::fs");
    }
    if window(["fs", "File"]) {
        return found("fs::File");
    }
    if window(["File", "open"]) {
        return found("File::open");
    }
    if let Some(first) = s.first()
        && (FORBIDDEN_CRATES.contains(first) || first.starts_with("netlink_"))
    {
        return found(first);
    }
    if let Some(name) = s
        .iter()
        .find(|n| **n == "IsTerminal" || **n == "is_terminal")
    {
        return found(name);
    }
    for clock in ["SystemTime", "Instant"] {
        if window([clock, "now"]) {
            return Some(format!("{clock}::now"));
        }
    }
    let std_fns: &[(&str, &[&str])] = &[
        ("env", &["var", "var_os", "vars", "vars_os"]),
        ("thread", &["sleep"]),
        ("io", &["stdin", "stdout", "stderr"]),
        ("process", &["exit"]),
    ];
    for (module, fns) in std_fns {
        if s.len() >= 3 && s[0] == "std" && s[1] == *module && fns.contains(&s[2]) {
            return Some(format!("std::{module}::{}", s[2]));
        }
    }
    None
}

/// One leaf of a `use` tree: `use std::{fs, io::{self as sio}}` has `std::fs` (named
/// `fs`) and `std::io` (named `sio`).
struct Leaf {
    segs: Vec<String>,
    /// The name it is known by, None for a glob.
    local: Option<String>,
    line: usize,
}

fn use_leaves(tree: &UseTree, prefix: &mut Vec<String>, out: &mut Vec<Leaf>) {
    let mut leaf = |ident: &syn::Ident, local: &syn::Ident| {
        let name = ident_string(ident);
        let mut segs = prefix.clone();
        let local = ident_string(local);
        if name != "self" {
            segs.push(name);
        }
        let local = if local == "self" {
            prefix.last().cloned()
        } else {
            Some(local)
        };
        out.push(Leaf {
            segs,
            local,
            line: ident.span().start().line,
        });
    };
    match tree {
        UseTree::Path(p) => {
            prefix.push(ident_string(&p.ident));
            use_leaves(&p.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(n) => leaf(&n.ident, &n.ident),
        UseTree::Rename(r) => leaf(&r.ident, &r.rename),
        UseTree::Glob(g) => out.push(Leaf {
            segs: prefix.clone(),
            local: None,
            line: g.star_token.spans[0].start().line,
        }),
        UseTree::Group(g) => {
            for item in &g.items {
                use_leaves(item, prefix, out);
            }
        }
    }
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// First pass: what each module's `use` declarations name.
struct AliasCollector<'a> {
    tree: &'a Tree,
    module: ModPath,
    aliases: &'a mut Aliases,
}

impl<'ast> Visit<'ast> for AliasCollector<'_> {
    fn visit_item(&mut self, item: &'ast Item) {
        if !is_test(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if let Some((_, items)) = &m.content {
            self.module.push(ident_string(&m.ident));
            for item in items {
                self.visit_item(item);
            }
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut leaves = Vec::new();
        use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
        for leaf in leaves {
            let Some(local) = leaf.local.filter(|l| l != "_") else {
                continue;
            };
            let target = resolve(
                self.tree,
                None,
                &self.module,
                u.leading_colon.is_some(),
                &leaf.segs,
            );
            self.aliases
                .entry(self.module.clone())
                .or_default()
                .insert(local, target);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if !impl_item_is_test(item) {
            visit::visit_impl_item(self, item);
        }
    }
}

fn impl_item_is_test(item: &syn::ImplItem) -> bool {
    match item {
        syn::ImplItem::Const(i) => is_test(&i.attrs),
        syn::ImplItem::Fn(i) => is_test(&i.attrs),
        syn::ImplItem::Type(i) => is_test(&i.attrs),
        syn::ImplItem::Macro(i) => is_test(&i.attrs),
        _ => false,
    }
}

fn trait_item_is_test(item: &syn::TraitItem) -> bool {
    match item {
        syn::TraitItem::Const(i) => is_test(&i.attrs),
        syn::TraitItem::Fn(i) => is_test(&i.attrs),
        syn::TraitItem::Type(i) => is_test(&i.attrs),
        syn::TraitItem::Macro(i) => is_test(&i.attrs),
        _ => false,
    }
}

/// Second pass: every path, checked and kept.
struct Scanner<'a> {
    tree: &'a Tree,
    aliases: &'a Aliases,
    file: &'a SourceFile,
    /// src/os/** and src/main.rs may name anything.
    allowed: bool,
    module: ModPath,
    hits: &'a mut BTreeSet<Hit>,
    references: &'a mut Vec<RawRef>,
}

impl Scanner<'_> {
    fn path(&mut self, leading: bool, segs: &[String], line: usize, is_use: bool) {
        let aliases = if is_use {
            None
        } else {
            self.aliases.get(&self.module)
        };
        let resolved = resolve(self.tree, aliases, &self.module, leading, segs);
        if let Some(name) = forbidden_name(&resolved) {
            self.hit(line, name);
        }
        if let Resolved::Crate(path) = resolved {
            self.references.push(RawRef {
                from: self.tree.module_of(&self.module),
                path,
                file: self.file.rel.clone(),
                line,
            });
        }
    }

    fn hit(&mut self, line: usize, name: String) {
        if !self.allowed {
            self.hits.insert(Hit {
                file: self.file.rel.clone(),
                line,
                name,
            });
        }
    }

    /// A macro's arguments: runs of `a::b::c` are paths, `.is_terminal` a method call.
    fn tokens(&mut self, stream: TokenStream) {
        let toks: Vec<TokenTree> = stream.into_iter().collect();
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Punct(p) if matches!(p.as_char(), '.' | '$' | '\'') => {
                    // A field or method after `.`, a macro variable, a lifetime: no path.
                    if let Some(TokenTree::Ident(id)) = toks.get(i + 1) {
                        if p.as_char() == '.' && id == "is_terminal" {
                            self.hit(id.span().start().line, "is_terminal".to_string());
                        }
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                TokenTree::Punct(_) if colon2(&toks, i) && ident_at(&toks, i + 2) => {
                    i = self.token_path(&toks, i + 2, true);
                }
                TokenTree::Ident(_) => i = self.token_path(&toks, i, false),
                _ => i += 1,
            }
        }
    }

    /// The path starting at ident `start`; returns the index after it.
    fn token_path(&mut self, toks: &[TokenTree], start: usize, leading: bool) -> usize {
        let TokenTree::Ident(first) = &toks[start] else {
            return start + 1;
        };
        let line = first.span().start().line;
        let mut segs = vec![ident_string(first)];
        let mut j = start + 1;
        while colon2(toks, j) {
            let Some(TokenTree::Ident(next)) = toks.get(j + 2) else {
                break;
            };
            segs.push(ident_string(next));
            j += 3;
        }
        self.path(leading, &segs, line, false);
        j
    }
}

fn colon2(toks: &[TokenTree], i: usize) -> bool {
    matches!(
        (toks.get(i), toks.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
    )
}

fn ident_at(toks: &[TokenTree], i: usize) -> bool {
    matches!(toks.get(i), Some(TokenTree::Ident(_)))
}

impl<'ast> Visit<'ast> for Scanner<'_> {
    fn visit_item(&mut self, item: &'ast Item) {
        if !is_test(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if let Some((_, items)) = &m.content {
            self.module.push(ident_string(&m.ident));
            for item in items {
                self.visit_item(item);
            }
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut leaves = Vec::new();
        use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
        for leaf in leaves {
            self.path(u.leading_colon.is_some(), &leaf.segs, leaf.line, true);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if !impl_item_is_test(item) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        if !trait_item_is_test(item) {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if !is_test(&local.attrs) {
            visit::visit_local(self, local);
        }
    }

    fn visit_field(&mut self, field: &'ast syn::Field) {
        if !is_test(&field.attrs) {
            visit::visit_field(self, field);
        }
    }

    fn visit_variant(&mut self, variant: &'ast syn::Variant) {
        if !is_test(&variant.attrs) {
            visit::visit_variant(self, variant);
        }
    }

    // `#[derive(..)]`, `#[serde(..)]`, `pub(crate)`: no references, no OS.
    fn visit_attribute(&mut self, _: &'ast Attribute) {}

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segs: Vec<String> = path
            .segments
            .iter()
            .map(|s| ident_string(&s.ident))
            .collect();
        if let Some(first) = path.segments.first() {
            let line = first.ident.span().start().line;
            self.path(path.leading_colon.is_some(), &segs, line, false);
        }
        // The paths inside generic arguments.
        visit::visit_path(self, path);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if call.method == "is_terminal" {
            self.hit(call.method.span().start().line, "is_terminal".to_string());
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.tokens(mac.tokens.clone());
    }
}
