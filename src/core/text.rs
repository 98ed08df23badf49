//! Words for counts and lists, the same in every sentence portstat prints.

/// A value the user gave, quoted for an error line: whole when short, else its first 80
/// characters and how long it was, so a 100 KB argument does not make a 200 KB line.
pub fn quoted(value: &str) -> String {
    const SHOWN: usize = 80;
    match value.char_indices().nth(SHOWN) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}... ({} bytes)", &value[..end], value.len()),
    }
}

/// `1 socket`, `2 sockets`.
pub fn count(count: usize, word: &str) -> String {
    format!("{count} {}", plural(count, word))
}

/// `socket` or `sockets`, as `count` needs.
pub fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// Processes named once per name: `1201/socat` for one, `socat x85 (pids 1201, 1202, 1203, ...)`
/// for many, so 85 forks of one program take one line, not 85.
pub fn processes_by_name<'a>(processes: impl IntoIterator<Item = (u32, &'a str)>) -> String {
    const PIDS_SHOWN: usize = 3;
    let mut names: Vec<(&str, Vec<u32>)> = Vec::new();
    for (pid, name) in processes {
        match names.iter_mut().find(|(known, _)| *known == name) {
            Some((_, pids)) => pids.push(pid),
            None => names.push((name, vec![pid])),
        }
    }
    names
        .into_iter()
        .map(|(name, mut pids)| {
            pids.sort_unstable();
            match pids.as_slice() {
                [pid] => format!("{pid}/{name}"),
                _ => {
                    let mut shown: Vec<String> =
                        pids.iter().take(PIDS_SHOWN).map(u32::to_string).collect();
                    if pids.len() > PIDS_SHOWN {
                        shown.push("...".into());
                    }
                    format!("{name} x{} (pids {})", pids.len(), shown.join(", "))
                }
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_quoted_short() {
        assert_eq!(quoted("abc"), "\"abc\"");
        let long = "9".repeat(100_000);
        let shown = quoted(&long);
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.ends_with("... (100000 bytes)"), "{shown}");
        // Never cut inside a character.
        assert!(quoted(&"é".repeat(200)).starts_with("\"éé"));
    }

    #[test]
    fn counts_take_the_right_number() {
        assert_eq!(count(1, "socket"), "1 socket");
        assert_eq!(count(0, "socket"), "0 sockets");
        assert_eq!(count(2, "connection"), "2 connections");
    }

    #[test]
    fn many_forks_of_one_program_take_one_entry() {
        let mut forks: Vec<(u32, &str)> = (0..85).map(|i| (1300 - i, "socat")).collect();
        forks.push((7, "curl"));
        assert_eq!(
            processes_by_name(forks),
            "socat x85 (pids 1216, 1217, 1218, ...), 7/curl"
        );
        assert_eq!(processes_by_name([(9, "nginx")]), "9/nginx");
        assert_eq!(processes_by_name([]), "");
    }
}
