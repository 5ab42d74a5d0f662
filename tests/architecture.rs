//! The shape of the code, checked: the module graph has no cycles, and `domain` (the rules)
//! imports nothing from the rest of the crate.
//!
//! Every `.rs` file under `src/` is a module; an edge goes from a module to every module whose
//! items it names (`use crate::…`, `super::…`, paths in code, macro paths), resolved to the
//! file that defines them. `mod` declarations are not edges: a parent declaring its children is
//! structure, not use. Test modules inside a file count like the rest of it. The files are read
//! with `syn`, a Rust parser, not with patterns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// A module path, as segments from the crate root (`["store", "sqlite", "settle"]`).
type ModPath = Vec<String>;

/// Where an edge comes from: the file and line of one reference that makes it.
#[derive(Clone, Debug)]
struct Site {
    file: String,
    line: usize,
}

/// The crate's modules (one per file) and the edges between them, each with one site.
#[derive(Default)]
struct Graph {
    modules: BTreeSet<ModPath>,
    edges: BTreeMap<(ModPath, ModPath), Site>,
}

fn module_of(rel: &Path) -> ModPath {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    match last.as_str() {
        "lib.rs" | "main.rs" | "mod.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// Collects the crate-relative paths a file names.
struct Refs<'a> {
    /// The module the code being visited is in (the file's, plus inline `mod` blocks).
    here: ModPath,
    modules: &'a BTreeSet<ModPath>,
    found: Vec<(ModPath, usize)>,
}

impl Refs<'_> {
    /// The absolute path `segments` names from `here`, if it names something in this crate.
    fn resolve(&self, segments: &[String]) -> Option<ModPath> {
        let first = segments.first()?;
        let mut base: ModPath;
        let mut rest = segments;
        match first.as_str() {
            "crate" => {
                base = Vec::new();
                rest = &segments[1..];
            }
            "self" => {
                base = self.here.clone();
                rest = &segments[1..];
            }
            "super" => {
                base = self.here.clone();
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            _ => {
                // A path that starts with a child module of this one (2018 edition paths).
                let mut child = self.here.clone();
                child.push(first.clone());
                if !self.modules.contains(&child) {
                    return None;
                }
                base = self.here.clone();
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn note(&mut self, segments: Vec<String>, line: usize) {
        if let Some(path) = self.resolve(&segments) {
            self.found.push((path, line));
        }
    }

    fn use_tree(&mut self, prefix: Vec<String>, tree: &syn::UseTree, line: usize) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut prefix = prefix;
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree, line);
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix;
                if n.ident != "self" {
                    path.push(n.ident.to_string());
                }
                self.note(path, line);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix;
                path.push(r.ident.to_string());
                self.note(path, line);
            }
            syn::UseTree::Glob(_) => self.note(prefix, line),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix.clone(), t, line);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let line = u.use_token.span.start().line;
        self.use_tree(Vec::new(), &u.tree, line);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = p.segments.first().map(|s| s.ident.span().start().line).unwrap_or(0);
        self.note(segments, line);
        syn::visit::visit_path(self, p);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // An inline module is part of this file; paths inside it are relative to it.
        if m.content.is_some() {
            self.here.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.here.pop();
        }
    }
}

/// The module of the crate that defines what `path` names: its longest prefix that is a file.
fn owner(path: &ModPath, modules: &BTreeSet<ModPath>) -> ModPath {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

/// The graph of the crate whose files are `files` (path relative to `src/`, text).
fn graph(files: &[(PathBuf, String)]) -> Graph {
    let mut g = Graph::default();
    let lib: Vec<&(PathBuf, String)> = files.iter().filter(|(p, _)| p != Path::new("main.rs")).collect();
    for (rel, _) in &lib {
        g.modules.insert(module_of(rel));
    }
    for (rel, text) in &lib {
        let here = module_of(rel);
        let file = syn::parse_file(text).unwrap_or_else(|e| panic!("src/{} does not parse: {e}", rel.display()));
        let mut refs = Refs {
            here: here.clone(),
            modules: &g.modules,
            found: Vec::new(),
        };
        refs.visit_file(&file);
        for (path, line) in refs.found {
            let to = owner(&path, &g.modules);
            if to != here {
                g.edges.entry((here.clone(), to)).or_insert(Site {
                    file: format!("src/{}", rel.display()),
                    line,
                });
            }
        }
    }
    g
}

fn name(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// The graph's cycles: its strongly connected components of more than one module (Tarjan),
/// each described with the edges inside it.
fn cycles(g: &Graph) -> Vec<String> {
    let nodes: Vec<&ModPath> = g.modules.iter().collect();
    let index_of: BTreeMap<&ModPath, usize> = nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (from, to) in g.edges.keys() {
        if let (Some(&f), Some(&t)) = (index_of.get(from), index_of.get(to)) {
            next[f].push(t);
        }
    }
    struct Tarjan<'a> {
        next: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        components: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.counter);
            self.low[v] = self.counter;
            self.counter += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for i in 0..self.next[v].len() {
                let w = self.next[v][i];
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                self.components.push(component);
            }
        }
    }
    let mut t = Tarjan {
        next: &next,
        index: vec![None; nodes.len()],
        low: vec![0; nodes.len()],
        on_stack: vec![false; nodes.len()],
        stack: Vec::new(),
        counter: 0,
        components: Vec::new(),
    };
    for v in 0..nodes.len() {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let members: BTreeSet<&ModPath> = c.iter().map(|&i| nodes[i]).collect();
            let mut text = format!(
                "cycle among {}:",
                members.iter().map(|m| name(m)).collect::<Vec<_>>().join(", ")
            );
            for ((from, to), site) in &g.edges {
                if members.contains(from) && members.contains(to) {
                    text.push_str(&format!(
                        "\n    {} -> {} ({}:{})",
                        name(from),
                        name(to),
                        site.file,
                        site.line
                    ));
                }
            }
            text
        })
        .collect()
}

/// Edges from `domain` to anything outside it.
fn domain_leaks(g: &Graph) -> Vec<String> {
    let in_domain = |m: &ModPath| m.first().is_some_and(|s| s == "domain");
    g.edges
        .iter()
        .filter(|((from, to), _)| in_domain(from) && !in_domain(to))
        .map(|((from, to), site)| format!("{} uses {} ({}:{})", name(from), name(to), site.file, site.line))
        .collect()
}

fn crate_files() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file is readable");
                out.push((path.strip_prefix(root).expect("under src/").to_path_buf(), text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    files
}

#[test]
fn the_module_graph_has_no_cycles() {
    let g = graph(&crate_files());
    assert!(g.modules.len() > 40, "src/ was not read: {} modules", g.modules.len());
    assert!(
        g.edges.len() > 100,
        "too few edges ({}): the reader has stopped seeing references",
        g.edges.len()
    );
    let found = cycles(&g);
    assert!(found.is_empty(), "the module graph has cycles:\n{}", found.join("\n"));
}

#[test]
fn the_domain_imports_nothing_else_from_the_crate() {
    let g = graph(&crate_files());
    assert!(
        g.modules
            .iter()
            .filter(|m| m.first().is_some_and(|s| s == "domain"))
            .count()
            > 5
    );
    let leaks = domain_leaks(&g);
    assert!(leaks.is_empty(), "domain must stay pure:\n{}", leaks.join("\n"));
}

/// The checks themselves find what they look for, in every way a reference is written.
#[test]
fn the_checks_see_cycles_and_leaks() {
    let file = |p: &str, text: &str| (PathBuf::from(p), text.to_owned());
    let base = vec![
        file("lib.rs", "pub mod a; pub mod b; pub mod domain; pub mod store;"),
        file("domain/mod.rs", "pub mod money;"),
        file("domain/money.rs", "pub fn f() {}"),
        file("store/mod.rs", "pub mod sqlite; pub struct Port;"),
        file("store/sqlite/mod.rs", "mod settle; use crate::store::Port;"),
        file("store/sqlite/settle.rs", "use super::super::Port;"),
        file("a.rs", "use crate::domain::money; pub fn g() { crate::b::h(); }"),
        file("b.rs", "pub fn h() {}"),
    ];
    let g = graph(&base);
    assert!(cycles(&g).is_empty(), "{:?}", cycles(&g));
    assert!(domain_leaks(&g).is_empty());
    assert!(g.edges.contains_key(&(vec!["a".into()], vec!["b".into()])));
    assert!(g.edges.contains_key(&(
        vec!["store".into(), "sqlite".into(), "settle".into()],
        vec!["store".into()]
    )));

    let with = |replaced: &str, text: &str| {
        let mut files = base.clone();
        files.retain(|(p, _)| p != Path::new(replaced));
        files.push(file(replaced, text));
        graph(&files)
    };
    // A cycle through a `use` in a test module, and one through a path in an expression.
    let g = with("b.rs", "pub fn h() {} #[cfg(test)] mod tests { use crate::a::g; }");
    assert_eq!(cycles(&g).len(), 1, "{:?}", cycles(&g));
    assert!(cycles(&g)[0].contains("a -> b"));
    let g = with("b.rs", "pub fn h() { let _ = crate::a::g; }");
    assert_eq!(cycles(&g).len(), 1);
    // A parent and its child through a relative path and a glob.
    let g = with(
        "store/sqlite/mod.rs",
        "mod settle; use crate::store::Port; fn x() { settle::y(); }",
    );
    let g2 = with("store/sqlite/settle.rs", "use super::*; pub fn y() {}");
    assert!(cycles(&g).is_empty(), "settle does not use its parent here");
    assert!(cycles(&g2).is_empty(), "nor does the parent use settle here");
    let mut both = base.clone();
    both.retain(|(p, _)| !p.starts_with("store/sqlite"));
    both.push(file("store/sqlite/mod.rs", "mod settle; fn x() { settle::y(); }"));
    both.push(file("store/sqlite/settle.rs", "use super::*; pub fn y() {}"));
    assert_eq!(cycles(&graph(&both)).len(), 1);
    // The domain reaching out, by `use` and by a macro path.
    let g = with("domain/money.rs", "use crate::store::Port;");
    assert_eq!(domain_leaks(&g).len(), 1);
    let g = with("domain/money.rs", "fn f() { crate::store::log!(); }");
    assert_eq!(domain_leaks(&g).len(), 1);
    let g = with("domain/money.rs", "use super::super::a::g;");
    assert_eq!(domain_leaks(&g).len(), 1);
}
