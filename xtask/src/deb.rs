//! `cargo xtask deb`: the Debian package, with cargo-deb. It builds portstat with the `dist`
//! profile (or `--profile`), has the built binary write its man page and completion scripts,
//! packs them with `cargo deb --no-build`, and checks the package's file list: a package that
//! lost its man page or a completion script fails here, not on a user's machine.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(clap::Args, Debug)]
pub struct DebArgs {
    /// The cargo profile to build and pack (`release` packs faster, for a check)
    #[arg(long, default_value = "dist")]
    pub profile: String,
}

/// Where each generated file goes in the package (Debian's paths).
pub const INSTALLED: &[&str] = &[
    "./usr/bin/portstat",
    "./usr/share/man/man1/portstat.1.gz",
    "./usr/share/bash-completion/completions/portstat",
    "./usr/share/zsh/vendor-completions/_portstat",
    "./usr/share/fish/vendor_completions.d/portstat.fish",
    "./usr/share/doc/portstat/copyright",
];

/// What the built binary generates into target/assets: (`portstat generate` argument, file).
const GENERATED: &[(&str, &str)] = &[
    ("man", "portstat.1"),
    ("complete-bash", "portstat.bash"),
    ("complete-zsh", "_portstat"),
    ("complete-fish", "portstat.fish"),
];

pub fn run(args: &DebArgs) -> ExitCode {
    match package(&args.profile) {
        Ok(deb) => {
            println!("{}", deb.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("xtask deb: {error}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run_ok(command: &mut Command, what: &str) -> Result<Vec<u8>, String> {
    let output = command
        .output()
        .map_err(|error| format!("{what}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output.stdout)
}

fn package(profile: &str) -> Result<PathBuf, String> {
    let root = crate::repo_root();
    let has_cargo_deb = cargo()
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_deb {
        eprintln!("xtask deb: installing cargo-deb");
        run_ok(
            cargo().args(["install", "cargo-deb", "--locked"]),
            "cargo install cargo-deb",
        )?;
    }
    let binary = crate::build_portstat(profile)?;
    // cargo-deb reads assets relative to the package, wherever the build went.
    let assets = root.join("target/assets");
    std::fs::create_dir_all(&assets).map_err(|error| format!("{}: {error}", assets.display()))?;
    let generate = |what: &str, file: &str| -> Result<(), String> {
        let text = run_ok(
            Command::new(&binary).args(["generate", what]),
            &format!("portstat generate {what}"),
        )?;
        std::fs::write(assets.join(file), text).map_err(|error| format!("{file}: {error}"))
    };
    for (what, file) in GENERATED {
        generate(what, file)?;
    }
    // Debian ships man pages compressed.
    run_ok(
        Command::new("gzip")
            .args(["-9nf"])
            .arg(assets.join("portstat.1")),
        "gzip the man page",
    )?;
    let out = run_ok(
        cargo().current_dir(&root).args([
            "deb",
            "--no-build",
            "--profile",
            profile,
            "--package",
            "portstat",
        ]),
        "cargo deb",
    )?;
    let deb = PathBuf::from(
        String::from_utf8_lossy(&out)
            .trim()
            .lines()
            .last()
            .unwrap_or(""),
    );
    check(&deb)?;
    Ok(deb)
}

/// Every file [`INSTALLED`] names is in the package.
fn check(deb: &Path) -> Result<(), String> {
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(deb), "dpkg-deb -c")?;
    let listing = String::from_utf8_lossy(&listing);
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .collect();
    let missing: Vec<&&str> = INSTALLED.iter().filter(|f| !files.contains(f)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} lacks {missing:?}; it has:\n{listing}",
            deb.display()
        ));
    }
    eprintln!(
        "xtask deb: {} has {} files, every one expected",
        deb.display(),
        files.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cargo.toml's `[package.metadata.deb]` assets: (source, destination in the package).
    fn assets() -> Vec<(String, String)> {
        let manifest =
            std::fs::read_to_string(crate::repo_root().join("Cargo.toml")).expect("Cargo.toml");
        let manifest: toml::Table = manifest.parse().expect("valid TOML");
        manifest["package"]["metadata"]["deb"]["assets"]
            .as_array()
            .expect("assets")
            .iter()
            .map(|asset| {
                let field = |i: usize| asset[i].as_str().expect("a string").to_string();
                (field(0), field(1))
            })
            .collect()
    }

    /// Where cargo-deb puts a source: into a directory (a destination ending in `/`) under its
    /// own name, else at the destination.
    fn installed(source: &str, destination: &str) -> String {
        match destination.strip_suffix('/') {
            Some(dir) => format!("./{dir}/{}", source.rsplit('/').next().unwrap_or(source)),
            None => format!("./{destination}"),
        }
    }

    #[test]
    fn every_generated_file_is_packed_into_its_debian_path() {
        let assets = assets();
        let packed: Vec<String> = assets.iter().map(|(s, d)| installed(s, d)).collect();
        // cargo-deb writes the copyright file itself, from the license.
        for path in INSTALLED.iter().filter(|p| !p.ends_with("/copyright")) {
            assert!(
                packed.iter().any(|p| p == path),
                "{path} is not packed: {packed:?}"
            );
        }
        for (_, file) in GENERATED {
            let source = match *file {
                "portstat.1" => "target/assets/portstat.1.gz".to_string(),
                other => format!("target/assets/{other}"),
            };
            assert!(
                assets.iter().any(|(s, _)| *s == source),
                "{source} is not an asset"
            );
        }
    }
}
