//! Where a process sits in the cgroup tree says who manages it: a systemd unit
//! (`/system.slice/nginx.service`) or a container (`/system.slice/docker-<id>.scope`,
//! `/kubepods/.../<id>`, `libpod-<id>.scope`). Parsed from the text of `/proc/PID/cgroup`.

use serde::Serialize;

use crate::core::model::ContainerLabel;

/// What manages a process, as far as its cgroup path tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Manager {
    /// The systemd service the process runs in (`nginx.service`), if any.
    pub unit: Option<String>,
    pub container: Option<Container>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    /// `docker`, `containerd`, `podman`, `cri-o` or `kubepods`.
    pub runtime: &'static str,
    /// The full container id (64 hex digits).
    pub id: String,
}

impl From<Container> for ContainerLabel {
    fn from(container: Container) -> ContainerLabel {
        ContainerLabel {
            runtime: container.runtime.to_string(),
            id: container.id,
        }
    }
}

/// Lines are `hierarchy:controllers:path`; the cgroup v2 line (`0::path`) or the systemd one
/// (`N:name=systemd:path`) is preferred, any other v1 line serves for containers.
pub fn parse(text: &str) -> Manager {
    let mut paths: Vec<(bool, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let preferred = controllers.is_empty() || controllers == "name=systemd";
            Some((preferred, path))
        })
        .collect();
    paths.sort_by_key(|&(preferred, _)| !preferred);
    let container = paths.iter().find_map(|&(_, path)| container_in(path));
    let unit = if container.is_some() {
        None
    } else {
        paths
            .first()
            .and_then(|&(_, path)| path.rsplit('/').find(|part| part.ends_with(".service")))
            .map(str::to_string)
    };
    Manager { unit, container }
}

fn container_in(path: &str) -> Option<Container> {
    let kubernetes = path.contains("kubepods");
    path.split('/').rev().find_map(|part| {
        let (prefix, id) = split_id(part)?;
        let runtime = if kubernetes {
            "kubepods"
        } else {
            match prefix {
                "docker" | "" => "docker",
                "cri-containerd" | "containerd" => "containerd",
                "libpod" => "podman",
                "crio" => "cri-o",
                _ => return None,
            }
        };
        Some(Container {
            runtime,
            id: id.to_string(),
        })
    })
}

/// `docker-<id>.scope` -> ("docker", id); a bare `<id>` -> ("", id).
fn split_id(part: &str) -> Option<(&str, &str)> {
    let part = part.strip_suffix(".scope").unwrap_or(part);
    let (prefix, id) = part.rsplit_once('-').unwrap_or(("", part));
    let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then_some((prefix, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f3c1d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";

    #[test]
    fn systemd_service_is_found_on_cgroup_v2() {
        let manager = parse("0::/system.slice/nginx.service\n");
        assert_eq!(manager.unit.as_deref(), Some("nginx.service"));
        assert_eq!(manager.container, None);
    }

    #[test]
    fn systemd_service_is_found_on_cgroup_v1() {
        let text = "12:cpu,cpuacct:/system.slice/sshd.service\n1:name=systemd:/system.slice/sshd.service\n";
        assert_eq!(parse(text).unit.as_deref(), Some("sshd.service"));
    }

    #[test]
    fn user_services_and_sessions() {
        let user = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/syncthing.service\n";
        assert_eq!(parse(user).unit.as_deref(), Some("syncthing.service"));
        let session = "0::/user.slice/user-1000.slice/session-3.scope\n";
        assert_eq!(parse(session), Manager::default());
    }

    #[test]
    fn containers_are_named_with_their_runtime() {
        let cases = [
            (format!("0::/system.slice/docker-{ID}.scope"), "docker"),
            (format!("12:memory:/docker/{ID}"), "docker"),
            (
                format!("0::/machine.slice/libpod-{ID}.scope/container"),
                "podman",
            ),
            (
                format!("0::/system.slice/containerd-{ID}.scope"),
                "containerd",
            ),
            (format!("0::/system.slice/crio-{ID}.scope"), "cri-o"),
            (
                format!(
                    "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-{ID}.scope"
                ),
                "kubepods",
            ),
            (format!("11:pids:/kubepods/burstable/pod7/{ID}"), "kubepods"),
        ];
        for (text, runtime) in cases {
            let manager = parse(&text);
            let container = manager.container.unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                (container.runtime, container.id.as_str()),
                (runtime, ID),
                "{text}"
            );
            assert_eq!(manager.unit, None, "{text}");
        }
    }

    #[test]
    fn odd_text_gives_nothing() {
        assert_eq!(parse(""), Manager::default());
        assert_eq!(parse("garbage\n::\n0::/\n"), Manager::default());
        assert_eq!(
            parse("0::/system.slice/docker-abc.scope"),
            Manager::default()
        );
    }
}
