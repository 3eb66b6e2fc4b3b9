//! Asking a running array for its members' health (`GET /api/members`
//! through the admin API client), bounded in time, from sync code.

use std::net::SocketAddr;
use std::time::Duration;

use crate::api::client::{block_on, AdminClient};
pub(crate) use crate::api::MemberView as MemberHealth;

/// How long `array get` waits for the admin API: 1 s.
pub(crate) const HEALTH_WAIT: Duration = Duration::from_secs(1);

/// Why there is no health to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// Nothing answers on the admin address (or not in time).
    NotRunning,
    /// Something answered, but not with the members' health.
    BadAnswer(String),
}

/// The members' health from the admin API at `admin` (a listen address),
/// waiting at most `limit`.
pub(crate) fn fetch_member_health(
    admin: SocketAddr,
    limit: Duration,
) -> Result<Vec<MemberHealth>, Unknown> {
    if admin.port() == 0 {
        return Err(Unknown::NotRunning);
    }
    let client = AdminClient::new(admin, limit);
    match block_on(async move { client.get::<Vec<MemberHealth>>("/api/members").await }) {
        Ok(Ok(members)) => Ok(members),
        Ok(Err(e)) if e.is_not_running() => Err(Unknown::NotRunning),
        Ok(Err(e)) => Err(Unknown::BadAnswer(crate::errors::error_chain(&e))),
        Err(e) => Err(Unknown::BadAnswer(format!("cannot start a runtime: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_listening_is_not_running() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert_eq!(
            fetch_member_health(addr, Duration::from_secs(10)),
            Err(Unknown::NotRunning)
        );
    }

    #[test]
    fn a_bad_answer_is_reported() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).unwrap();
            let _ =
                s.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}");
        });
        let got = fetch_member_health(addr, Duration::from_secs(10));
        assert!(matches!(got, Err(Unknown::BadAnswer(_))), "{got:?}");
    }
}
