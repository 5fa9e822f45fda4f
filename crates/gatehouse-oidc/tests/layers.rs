//! The crate's modules import each other in one direction only: each module uses only modules
//! listed before it in [`ORDER`] (ARCHITECTURE.md, "gatehouse-oidc"). No import circle can
//! form, and a new module has to find its place in the order.

use std::path::Path;

/// The modules, lowest first: vocabulary, the pipeline's data, the instance's parts, the
/// instance, the plugin.
const ORDER: &[&str] = &[
    "config",
    "settings",
    "method",
    "cache",
    "authz",
    "consumer",
    "session",
    "pending",
    "claims",
    "provider",
    "node",
    "credentials",
    "location",
    "headers",
    "tokens",
    "respond",
    "outcome",
    "decision",
    "find",
    "grants",
    "failures",
    "sessions",
    "signin",
    "login",
    "logout",
    "authorize",
    "authenticate",
    "fast",
    "instance",
    "plugin",
];

/// The source of `path` up to its test module (which sits at the end and may reach any module),
/// without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable source");
    let lines: Vec<&str> = text.lines().collect();
    let tests = lines.windows(2).position(|w| {
        w[0].trim() == "#[cfg(test)]" && (w[1].starts_with("mod ") || w[1].starts_with("pub(crate) mod "))
    });
    lines[..tests.unwrap_or(lines.len())]
        .iter()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| l.split(" // ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module named after `crate::` in `code`, including those in `use crate::{a, b}` groups.
fn uses(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                out.push(name);
            }
        } else {
            out.push(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// The top-level module each source file belongs to (`headers/tests.rs` → `headers`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_module_imports_only_modules_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut wrong = Vec::new();
    for file in &all {
        let module = module_of(&src, file);
        // The crate root declares the modules; a `tests.rs` file is a test module of its own.
        if module == "lib" || file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let Some(own) = rank(&module) else {
            wrong.push(format!("{module}: not in ORDER (tests/layers.rs); give it its place"));
            continue;
        };
        for used in uses(&code(file)) {
            match rank(&used) {
                Some(r) if r < own || used == module => {}
                Some(_) => wrong.push(format!("{}: uses crate::{used}, which comes after it", file.display())),
                None => wrong.push(format!("{}: uses crate::{used}, which is not in ORDER", file.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "import order broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_plain_grouped_and_inline_paths() {
    let code = "use crate::a::B;\nuse crate::{c, d::E};\nfn f() { crate::g::h(); }";
    assert_eq!(uses(code), ["a", "c", "d", "g"]);
}
