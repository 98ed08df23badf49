//! The boundary between portstat and the operating system's socket tables. Everything past this
//! module sees only [`Socket`]s, whichever backend produced them.

use std::path::PathBuf;

use crate::model::{Proto, Socket};

#[cfg(target_os = "linux")]
pub mod procfs;

/// Which of the four tables a query needs; the others are not read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tables {
    pub tcp: bool,
    pub udp: bool,
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Tables {
    pub const ALL: Tables = Tables {
        tcp: true,
        udp: true,
        ipv4: true,
        ipv6: true,
    };

    pub fn wants(self, proto: Proto, ipv6: bool) -> bool {
        let proto_wanted = match proto {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
        };
        proto_wanted && if ipv6 { self.ipv6 } else { self.ipv4 }
    }
}

/// What a backend read: the sockets, and what it could not read (said to the user, not fatal).
#[derive(Debug, Default)]
pub struct TableRead {
    pub sockets: Vec<Socket>,
    pub warnings: Vec<String>,
}

/// Where the socket tables come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The running kernel, in the tool's own network namespace.
    Live,
    /// Recorded `/proc/net` tables in a directory (files named tcp, tcp6, udp, udp6).
    Recorded(PathBuf),
}

/// Reads the wanted tables from `source`.
pub fn read(source: &Source, wanted: Tables) -> anyhow::Result<TableRead> {
    #[cfg(target_os = "linux")]
    {
        let dir = match source {
            Source::Live => std::path::Path::new("/proc/net"),
            Source::Recorded(dir) => dir.as_path(),
        };
        procfs::read(dir, wanted)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (source, wanted);
        anyhow::bail!("portstat has no socket-table backend for this operating system")
    }
}
