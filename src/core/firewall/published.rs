//! Published ports: the sockets container runtimes open on the host side of a published port
//! only to reserve it (conmon, docker-proxy, rootlessport, dockerd), recognised for what they
//! are, and what their command lines say about the container behind them.

use std::net::IpAddr;

use serde::Serialize;

use crate::core::model::Process;

/// What a placeholder process says about the container whose port it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placeholder {
    /// `podman` or `docker`.
    pub runtime: &'static str,
    /// The process that holds the port: `conmon`, `docker-proxy`, ...
    pub holder: String,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    /// Where docker-proxy relays connections to.
    pub to: Option<(IpAddr, u16)>,
}

/// The placeholder a process is, if it is one. A process of another name is never taken for
/// one, whatever its command line says.
pub fn placeholder(process: &Process) -> Option<Placeholder> {
    let words: Vec<&str> = process.cmdline.split_whitespace().collect();
    let value = |flags: &[&str]| {
        words
            .windows(2)
            .find(|pair| flags.contains(&pair[0]))
            .map(|pair| pair[1].to_string())
    };
    let (runtime, container_id, container_name, to) = match process.name.as_str() {
        // conmon -c ID -n NAME ...: podman's monitor; it keeps published ports reserved.
        "conmon" => (
            "podman",
            value(&["-c", "--cid"]),
            value(&["-n", "--name"]),
            None,
        ),
        "rootlessport" | "rootlessport-child" => ("podman", None, None, None),
        // docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2
        // -container-port 80
        "docker-proxy" => {
            let address = value(&["-container-ip"]).and_then(|a| a.parse().ok());
            let port = value(&["-container-port"]).and_then(|p| p.parse().ok());
            ("docker", None, None, address.zip(port))
        }
        // With --userland-proxy=false dockerd itself holds the port.
        "dockerd" => ("docker", None, None, None),
        _ => return None,
    };
    Some(Placeholder {
        runtime,
        holder: process.name.clone(),
        container_id,
        container_name,
        to,
    })
}

/// The command that names the docker containers publishing `port`/`proto`, as [`publishing`]
/// reads its answer: docker-proxy's command line names none.
pub fn docker_ps_args(port: u16, proto: &str) -> Vec<String> {
    vec![
        "ps".into(),
        "--filter".into(),
        format!("publish={port}/{proto}"),
        "--format".into(),
        "{{.ID}} {{.Names}}".into(),
    ]
}

/// The containers `docker ps --format '{{.ID}} {{.Names}}'` lists: (id, name), the first name
/// where a container has several (`web,web-alias`).
pub fn publishing(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let (id, names) = line.trim().split_once(' ')?;
            let name = names.trim().split(',').next()?;
            (!id.is_empty() && !name.is_empty()).then(|| (id.to_string(), name.to_string()))
        })
        .collect()
}

/// How to end a container: its runtime's stop command, by name where known, else by id.
pub fn stop_command(runtime: &str, name: Option<&str>, id: Option<&str>) -> Option<String> {
    let which = name.or_else(|| id.map(|id| id.get(..12).unwrap_or(id)))?;
    Some(format!("{runtime} stop {which}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(name: &str, cmdline: &str) -> Process {
        Process {
            pid: 10,
            name: name.into(),
            user: None,
            cmdline: cmdline.into(),
            started: None,
            ppid: None,
        }
    }

    #[test]
    fn conmon_names_its_container() {
        let conmon = process(
            "conmon",
            "/usr/bin/conmon --api-version 1 -c 2b2536aa -u 2b2536aa -r /usr/bin/runc -b /x \
             -p /x/pidfile -n web --exit-dir /run/libpod/exits",
        );
        let found = placeholder(&conmon).expect("conmon is a placeholder");
        assert_eq!(found.runtime, "podman");
        assert_eq!(found.container_id.as_deref(), Some("2b2536aa"));
        assert_eq!(found.container_name.as_deref(), Some("web"));
        assert_eq!(
            stop_command(found.runtime, found.container_name.as_deref(), None).as_deref(),
            Some("podman stop web")
        );
    }

    #[test]
    fn docker_proxy_says_where_it_relays() {
        // Recorded from a real dockerd 20.10 (fixtures/firewall/iptables/docker.proxy-cmdline).
        let proxy = process(
            "docker-proxy",
            "/usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip \
             172.17.0.2 -container-port 80",
        );
        let found = placeholder(&proxy).expect("docker-proxy is a placeholder");
        assert_eq!(found.runtime, "docker");
        assert_eq!(found.to, Some(("172.17.0.2".parse().unwrap(), 80)));
    }

    #[test]
    fn other_processes_are_not_placeholders_whatever_their_arguments() {
        assert_eq!(placeholder(&process("nginx", "conmon -c x -n y")), None);
        assert_eq!(
            stop_command("docker", None, Some("0123456789abcdef")).as_deref(),
            Some("docker stop 0123456789ab")
        );
        assert_eq!(stop_command("docker", None, None), None);
    }
}
