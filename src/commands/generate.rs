//! `portstat generate`: the man page and the shells' completion scripts, from the same clap
//! definition the command line is parsed with, so they never fall behind it.

use std::path::Path;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

use super::{Context, Outcome};
use crate::cli::{Cli, GenerateArgs, Generated};
use crate::core::error::UsageError;

pub fn run(args: &GenerateArgs, context: &mut Context) -> Result<Outcome> {
    let mut command = Cli::command();
    command.build();
    let shell = match args.what {
        Generated::Man => {
            match &args.dir {
                Some(dir) => write_pages(&command, dir, context)?,
                None => context.output.out.write_all(&whole_page(&command)?)?,
            }
            return Ok(Outcome::Pass);
        }
        Generated::CompleteBash => Shell::Bash,
        Generated::CompleteZsh => Shell::Zsh,
        Generated::CompleteFish => Shell::Fish,
        Generated::CompletePowershell => Shell::PowerShell,
        Generated::CompleteElvish => Shell::Elvish,
    };
    if args.dir.is_some() {
        return Err(UsageError("--dir is for `generate man` only".into()).into());
    }
    clap_complete::generate(shell, &mut command, "portstat", context.output.out);
    Ok(Outcome::Pass)
}

/// The subcommands a user sees (not clap's `help`).
fn subcommands(command: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
}

/// One page: portstat's own, then a section per subcommand with its synopsis, description and
/// options (their headings one level down).
fn whole_page(command: &clap::Command) -> Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    for sub in subcommands(command) {
        let name = format!("PORTSTAT {}", sub.get_name().to_uppercase());
        page.extend(format!(".SH \"{name}\"\n").bytes());
        let man = clap_mangen::Man::new(sub.clone());
        let mut sections = Vec::new();
        man.render_synopsis_section(&mut sections)?;
        man.render_description_section(&mut sections)?;
        man.render_options_section(&mut sections)?;
        if sub.get_after_help().is_some() || sub.get_after_long_help().is_some() {
            man.render_extra_section(&mut sections)?;
        }
        for line in String::from_utf8_lossy(&sections).lines() {
            let line = match line.strip_prefix(".SH ") {
                Some(heading) => format!(".SS {heading}"),
                None => line.to_string(),
            };
            page.extend(line.bytes());
            page.push(b'\n');
        }
    }
    Ok(page)
}

/// portstat.1 and portstat-SUBCOMMAND.1 in `dir`.
fn write_pages(command: &clap::Command, dir: &Path, context: &mut Context) -> Result<()> {
    let mut pages = vec![(
        "portstat.1".to_string(),
        clap_mangen::Man::new(command.clone()),
    )];
    for sub in subcommands(command) {
        let name = format!("portstat-{}", sub.get_name());
        let man = clap_mangen::Man::new(sub.clone());
        pages.push((format!("{name}.1"), man));
    }
    for (file, man) in pages {
        let mut page = Vec::new();
        man.render(&mut page)?;
        let path = dir.join(&file);
        context
            .os
            .replace_file(&path, &page)
            .map_err(|error| UsageError(format!("cannot write {}: {error}", path.display())))?;
        writeln!(context.output.out, "{}", path.display())?;
    }
    Ok(())
}
