//! Small fake crates in a temporary directory, checked.

use std::path::Path;

use super::{Report, check};

/// A crate named `portstat` with these files (paths from the crate's root).
fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "Cargo.toml", "[package]\nname = \"portstat\"\n");
    for (path, text) in files {
        write(dir.path(), path, text);
    }
    dir
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn run(files: &[(&str, &str)]) -> Report {
    let dir = fake(files);
    let report = check(dir.path()).expect("check");
    assert!(report.broken.is_empty(), "broken: {:?}", report.broken);
    report
}

/// lib.rs declaring `core` (with `x`) and `os` (with `x`), plus `extra` files.
fn layered(core_x: &str, os_x: &str, main: &str) -> Report {
    run(&[
        ("src/lib.rs", "pub mod core;\npub mod os;\n"),
        ("src/core/mod.rs", "pub mod x;\n"),
        ("src/core/x.rs", core_x),
        ("src/os/mod.rs", "pub mod x;\n"),
        ("src/os/x.rs", os_x),
        ("src/main.rs", main),
    ])
}

#[test]
fn use_std_fs_in_core_is_reported_with_its_line() {
    let report = layered("pub fn f() {}\n\nuse std::fs;\n", "", "fn main() {}\n");
    assert_eq!(
        report.forbidden,
        ["src/core/x.rs:3: names `std::fs` (only src/os/ and src/main.rs may)"]
    );
    assert!(!report.is_ok());
}

#[test]
fn os_and_main_may_name_anything() {
    let report = layered(
        "pub fn f() {}\n",
        "use std::fs;\npub fn read() -> Vec<u8> { fs::read(\"x\").unwrap() }\n",
        "use std::fs;\nfn main() { std::process::exit(fs::read(\"x\").is_ok() as i32) }\n",
    );
    assert_eq!(report.forbidden, Vec::<String>::new());
    assert!(report.is_ok(), "{:?}", report.cycles);
}

#[test]
fn grouped_use_is_caught() {
    let report = layered("use std::{fs, io};\n", "", "fn main() {}\n");
    assert_eq!(
        report.forbidden,
        ["src/core/x.rs:1: names `std::fs` (only src/os/ and src/main.rs may)"]
    );
}

#[test]
fn renamed_and_nested_uses_are_caught() {
    let report = layered(
        "use std::{io::{self as sio, Write}, fs::File as F};\nuse libc as c;\n",
        "",
        "fn main() {}\n",
    );
    assert_eq!(
        report.forbidden,
        [
            "src/core/x.rs:1: names `std::fs::File` (only src/os/ and src/main.rs may)",
            "src/core/x.rs:2: names `libc` (only src/os/ and src/main.rs may)",
        ]
    );
}

#[test]
fn expression_path_is_caught() {
    let report = layered(
        "pub fn f() -> bool {\n    std::fs::read(\"x\").is_ok()\n}\n",
        "",
        "fn main() {}\n",
    );
    assert_eq!(
        report.forbidden,
        ["src/core/x.rs:2: names `std::fs` (only src/os/ and src/main.rs may)"]
    );
}

#[test]
fn names_through_imports_and_in_macros_are_caught() {
    let report = layered(
        "use std::io;\n\
         use std::time::Instant;\n\
         pub fn f() {\n\
             let _ = io::stdout();\n\
             println!(\"{:?} {:?}\", Instant::now(), std::env::var(\"HOME\"));\n\
         }\n",
        "",
        "fn main() {}\n",
    );
    assert_eq!(
        report.forbidden,
        [
            "src/core/x.rs:4: names `std::io::stdout` (only src/os/ and src/main.rs may)",
            "src/core/x.rs:5: names `Instant::now` (only src/os/ and src/main.rs may)",
            "src/core/x.rs:5: names `std::env::var` (only src/os/ and src/main.rs may)",
        ]
    );
}

#[test]
fn is_terminal_method_call_is_caught() {
    let report = layered(
        "pub fn tty(out: &std::io::Stdout) -> bool {\n    out.is_terminal()\n}\n",
        "",
        "fn main() {}\n",
    );
    assert_eq!(
        report.forbidden,
        ["src/core/x.rs:2: names `is_terminal` (only src/os/ and src/main.rs may)"]
    );
}

#[test]
fn cfg_test_modules_are_skipped() {
    let report = layered(
        "pub fn f() {}\n\n#[cfg(test)]\nmod tests {\n    use std::fs;\n    #[test]\n    fn t() { fs::read(\"x\").unwrap(); }\n}\n\n#[test]\nfn loose() { std::thread::sleep(std::time::Duration::ZERO) }\n",
        "",
        "fn main() {}\n",
    );
    assert_eq!(report.forbidden, Vec::<String>::new());
    assert!(report.is_ok());
}

#[test]
fn a_local_module_named_like_a_crate_is_not_the_crate() {
    let report = run(&[
        ("src/lib.rs", "pub mod core;\n"),
        (
            "src/core/mod.rs",
            "mod procfs;\npub fn f() { procfs::g() }\n",
        ),
        ("src/core/procfs.rs", "pub fn g() {}\n"),
    ]);
    assert_eq!(report.forbidden, Vec::<String>::new());
}

#[test]
fn two_module_cycle_between_siblings_is_reported() {
    let report = run(&[
        ("src/lib.rs", "pub mod cli;\npub mod commands;\n"),
        (
            "src/cli/mod.rs",
            "pub struct WatchArgs;\n\npub fn f() {\n    crate::commands::watch::parse_interval();\n}\n",
        ),
        ("src/commands/mod.rs", "pub mod watch;\n"),
        (
            "src/commands/watch.rs",
            "//! Watch.\nuse crate::cli::WatchArgs;\npub fn parse_interval() {}\n",
        ),
    ]);
    assert_eq!(
        report.cycles,
        [
            "cycle: cli -> commands (src/cli/mod.rs:4 uses crate::commands::watch::parse_interval) \
          -> cli (src/commands/watch.rs:2 uses crate::cli::WatchArgs)"
        ]
    );
    assert_eq!(report.forbidden, Vec::<String>::new());
}

#[test]
fn nested_cycle_is_between_the_siblings_under_their_common_parent() {
    let report = run(&[
        ("src/lib.rs", "pub mod core;\n"),
        ("src/core/mod.rs", "pub mod audit;\n"),
        ("src/core/audit/mod.rs", "pub mod drift;\npub mod render;\n"),
        (
            "src/core/audit/drift/mod.rs",
            "pub mod inner;\npub struct Drift;\n",
        ),
        (
            "src/core/audit/drift/inner.rs",
            "use super::super::render::show;\n",
        ),
        (
            "src/core/audit/render.rs",
            "pub fn show(_: &crate::core::audit::drift::Drift) {}\n",
        ),
    ]);
    assert_eq!(
        report.cycles,
        ["cycle: core::audit::drift -> core::audit::render \
          (src/core/audit/drift/inner.rs:1 uses crate::core::audit::render::show) \
          -> core::audit::drift (src/core/audit/render.rs:1 uses crate::core::audit::drift::Drift)"]
    );
}

#[test]
fn parent_and_child_using_each_other_is_no_cycle() {
    let report = run(&[
        (
            "src/lib.rs",
            "pub mod core;\npub struct Config;\npub fn run() { core::audit::go() }\n",
        ),
        (
            "src/core/mod.rs",
            "pub mod audit;\nuse crate::Config;\npub fn f() { self::audit::go() }\n",
        ),
        (
            "src/core/audit.rs",
            "use super::f;\npub fn go() { crate::core::f(); let _ = crate::Config; }\n",
        ),
        (
            "src/main.rs",
            "use portstat::core::audit;\nfn main() { audit::go(); portstat::run() }\n",
        ),
    ]);
    assert_eq!(report.cycles, Vec::<String>::new());
    assert!(report.is_ok());
    assert!(report.references > 0);
}

#[test]
fn three_module_cycle_is_reported_once() {
    let report = run(&[
        ("src/lib.rs", "mod a;\nmod b;\nmod c;\n"),
        ("src/a.rs", "pub fn a() { crate::b::b() }\n"),
        ("src/b.rs", "use crate::c::c;\npub fn b() { c() }\n"),
        ("src/c.rs", "pub fn c() { super::a::a() }\n"),
    ]);
    assert_eq!(
        report.cycles,
        [
            "cycle: a -> b (src/a.rs:1 uses crate::b::b) -> c (src/b.rs:1 uses crate::c::c) \
          -> a (src/c.rs:1 uses crate::a::a)"
        ]
    );
}

#[test]
fn inline_modules_are_modules() {
    let report = run(&[(
        "src/lib.rs",
        "mod a {\n    pub fn f() { crate::b::g() }\n}\nmod b {\n    pub fn g() {}\n    pub fn h() { super::a::f() }\n}\n",
    )]);
    assert_eq!(
        report.cycles,
        ["cycle: a -> b (src/lib.rs:2 uses crate::b::g) -> a (src/lib.rs:6 uses crate::a::f)"]
    );
    assert_eq!(report.modules, 3);
}

#[test]
fn cfg_test_references_are_no_edges() {
    let report = run(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        ("src/a.rs", "pub fn f() { crate::b::g() }\n"),
        (
            "src/b.rs",
            "pub fn g() {}\n#[cfg(test)]\nmod tests {\n    use crate::a::f;\n}\n",
        ),
    ]);
    assert_eq!(report.cycles, Vec::<String>::new());
}

#[test]
fn missing_module_file_is_reported() {
    let dir = fake(&[("src/lib.rs", "pub mod gone;\n")]);
    let report = check(dir.path()).expect("check");
    assert_eq!(
        report.broken,
        ["src/lib.rs:1: `mod gone;` has no file (looked for src/gone.rs, src/gone/mod.rs)"]
    );
}

#[test]
fn cfg_test_module_files_are_skipped() {
    let report = run(&[
        ("src/lib.rs", "pub mod core;\n"),
        ("src/core/mod.rs", "#[cfg(test)]\nmod tests;\n"),
        ("src/core/tests.rs", "mod helper;\nuse std::fs;\n"),
        ("src/core/tests/helper.rs", "use libc;\n"),
    ]);
    assert_eq!(report.forbidden, Vec::<String>::new());
    assert_eq!(report.modules, 2);
}

#[test]
fn files_no_mod_reaches_are_checked_at_the_module_their_path_names() {
    let report = run(&[
        ("src/lib.rs", "pub mod core;\n"),
        ("src/core/mod.rs", "pub fn f() { crate::render::g() }\n"),
        (
            "src/render/mod.rs",
            "use crate::core::f;\nuse sysinfo::System;\n",
        ),
    ]);
    assert_eq!(
        report.forbidden,
        ["src/render/mod.rs:2: names `sysinfo` (only src/os/ and src/main.rs may)"]
    );
    assert_eq!(
        report.cycles,
        [
            "cycle: core -> render (src/core/mod.rs:1 uses crate::render::g) \
          -> core (src/render/mod.rs:1 uses crate::core::f)"
        ]
    );
}
