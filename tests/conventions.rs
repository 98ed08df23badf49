//! Issue 20: what a modern CLI is expected to have: a man page, completion scripts, colour that
//! follows `--color` and the environment, and `ss -s`'s habit.

use std::net::TcpListener;
use std::process::{Command, Stdio};

use clap::CommandFactory;
use portstat::cli::Cli;

use crate::common::portstat;

fn stdout_of(command: &mut Command) -> String {
    let output = command.output().expect("portstat runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Every subcommand a user sees, with the long flags it takes.
fn subcommands() -> Vec<(String, Vec<String>)> {
    let mut command = Cli::command();
    command.build();
    command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
        .map(|sub| {
            let flags = sub
                .get_arguments()
                .filter(|arg| !arg.is_hide_set())
                .filter_map(|arg| arg.get_long().map(str::to_string))
                .collect();
            (sub.get_name().to_string(), flags)
        })
        .collect()
}

#[test]
fn the_man_page_has_a_section_for_every_subcommand_with_every_flag() {
    let page = stdout_of(portstat().args(["generate", "man"]));
    assert!(
        page.starts_with(".ie") || page.contains(".TH portstat 1"),
        "{}",
        &page[..200]
    );
    let subs = subcommands();
    assert!(subs.len() >= 7, "{subs:?}");
    for (name, flags) in subs {
        let heading = format!(".SH \"PORTSTAT {}\"", name.to_uppercase());
        let at = page
            .find(&heading)
            .unwrap_or_else(|| panic!("no {heading}"));
        let section = &page[at..];
        for flag in flags {
            // roff escapes the dashes: \-\-json
            let escaped = format!("\\-\\-{}", flag.replace('-', "\\-"));
            assert!(
                section.contains(&escaped),
                "{name}: no --{flag} in its section"
            );
        }
    }
}

#[test]
fn generate_man_dir_writes_one_page_per_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listed = stdout_of(
        portstat()
            .args(["generate", "man", "--dir"])
            .arg(dir.path()),
    );
    let mut expected = vec!["portstat.1".to_string()];
    expected.extend(
        subcommands()
            .into_iter()
            .map(|(n, _)| format!("portstat-{n}.1")),
    );
    for file in &expected {
        let path = dir.path().join(file);
        let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(page.contains(".TH "), "{file}");
        assert!(listed.contains(&path.display().to_string()), "{listed}");
    }
}

#[test]
#[ignore = "needs man"]
fn man_renders_the_page_and_names_every_subcommand() {
    let page = stdout_of(portstat().args(["generate", "man"]));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("portstat.1");
    std::fs::write(&file, page).expect("page");
    let output = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .stderr(Stdio::piped())
        .output()
        .expect("man runs");
    assert!(output.status.success(), "{output:?}");
    let rendered = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    for (name, _) in subcommands() {
        assert!(
            rendered.contains(&format!("PORTSTAT {}", name.to_uppercase())),
            "{name} in\n{rendered}"
        );
    }
}

#[test]
fn every_completion_script_names_every_subcommand_and_flag() {
    let subs = subcommands();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(portstat().args(["generate", &format!("complete-{shell}")]));
        for (name, flags) in &subs {
            assert!(script.contains(name.as_str()), "{shell}: no {name}");
            for flag in flags {
                // fish writes `-l json`, the others `--json`.
                let named =
                    script.contains(&format!("--{flag}")) || script.contains(&format!("-l {flag}"));
                assert!(named, "{shell}: no --{flag} of {name}");
            }
        }
    }
}

fn listing(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = portstat();
    command
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE");
    for (key, value) in env {
        command.env(key, value);
    }
    stdout_of(&mut command)
}

#[test]
fn color_follows_the_flag_then_the_environment_and_never_reaches_json() {
    let _listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let colored = |text: &str| text.contains("\x1b[");
    let always = listing(&["-l", "--color", "always"], &[]);
    assert!(colored(&always), "{always}");
    // A listener's state is green.
    assert!(
        always
            .lines()
            .any(|l| l.contains("LISTEN") && l.contains("\x1b[38;5;10m")),
        "{always}"
    );
    assert!(!colored(&listing(
        &["-l", "--color", "never"],
        &[("CLICOLOR_FORCE", "1")]
    )));
    // Piped, auto: none; CLICOLOR_FORCE forces it; NO_COLOR wins over it, as in anstream.
    assert!(!colored(&listing(&["-l"], &[])));
    assert!(colored(&listing(&["-l"], &[("CLICOLOR_FORCE", "1")])));
    assert!(!colored(&listing(
        &["-l"],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    )));
    assert!(
        colored(&listing(&["-l", "--color", "always"], &[("NO_COLOR", "1")])),
        "the flag wins"
    );
    for args in [
        &["-l", "--json", "--color", "always"][..],
        &["-l", "--format", "csv", "--color", "always"][..],
        &["metrics", "--color", "always"][..],
        &["audit", "--json", "--fail-on", "never", "--color", "always"][..],
    ] {
        assert!(!colored(&listing(args, &[])), "{args:?}");
    }
    let audit = listing(&["audit", "--fail-on", "never", "--color", "always"], &[]);
    assert!(audit.contains("\x1b[1m\x1b[32mpass\x1b[0m"), "{audit}");
}

#[test]
fn dash_s_is_the_summary() {
    let short = stdout_of(portstat().args(["-s", "--json"]));
    let long = stdout_of(portstat().args(["summary", "--json"]));
    let keys = |text: &str| {
        let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&short), keys(&long));
    assert!(keys(&short).contains(&"ephemeral".to_string()));
    let text = stdout_of(portstat().arg("-s"));
    assert!(text.starts_with("Sockets: "), "{text}");
}
