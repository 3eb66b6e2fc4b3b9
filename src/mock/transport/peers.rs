//! Where hubs find each other: a directory they share (`--transport-dir`;
//! the lab's `DIR/transport`), in which each hub writes `hubs/<NAME>`
//! holding its SMTP address when it starts. A hub's peers are the other
//! names there (the send connector of the lesson lists every hub).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The registry directory.
#[derive(Debug, Clone)]
pub struct Peers {
    dir: PathBuf,
    me: String,
}

impl Peers {
    /// Registers hub `me` at `addr` under `dir`. Blocking.
    pub fn register(dir: &Path, me: &str, addr: SocketAddr) -> std::io::Result<Peers> {
        let dir = dir.join("hubs");
        std::fs::create_dir_all(&dir)?;
        crate::atomic_file::write_atomically(&dir.join(me), addr.to_string().as_bytes())?;
        Ok(Peers {
            dir,
            me: me.to_string(),
        })
    }

    /// The other hubs and their SMTP addresses, by name. Blocking.
    pub fn others(&self) -> Vec<(String, SocketAddr)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, SocketAddr)> = dir
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                if name == self.me || name.starts_with('.') {
                    return None;
                }
                let addr = std::fs::read_to_string(e.path())
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((name, addr))
            })
            .collect();
        out.sort();
        out
    }

    /// The address of hub `name`. Blocking.
    pub fn address(&self, name: &str) -> Option<SocketAddr> {
        self.others()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubs_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let a = Peers::register(dir.path(), "EX1", "127.0.0.1:25".parse().unwrap()).unwrap();
        let b = Peers::register(dir.path(), "EX2", "127.0.0.1:26".parse().unwrap()).unwrap();
        assert_eq!(
            a.others(),
            vec![("EX2".to_string(), "127.0.0.1:26".parse().unwrap())]
        );
        assert_eq!(b.address("EX1"), Some("127.0.0.1:25".parse().unwrap()));
        assert_eq!(b.address("EX2"), None);
    }
}
