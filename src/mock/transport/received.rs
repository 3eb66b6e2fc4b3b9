//! The `Received:` trace field a server puts on top of every message it
//! accepts (RFC 5321 section 4.4): who handed the message over (the HELO
//! name and the client's address, from a PROXY header when the array sent
//! one), which server took it (the hub's fqdn and name: the lesson's
//! header test reads which hub carried a message), how, and when.

use std::net::IpAddr;

use crate::mock::format::clock;

/// What a `Received:` field records.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    pub helo: &'a str,
    pub client: IpAddr,
    /// The receiving server's fqdn (`ex1.lab.local`) and what follows it
    /// in parentheses (`EX1 hub transport`).
    pub by_fqdn: &'a str,
    pub comment: &'a str,
    /// EHLO (ESMTP) rather than HELO (SMTP).
    pub esmtp: bool,
    pub tls: bool,
    pub id: &'a str,
    pub recipient: Option<&'a str>,
    /// Unix seconds.
    pub when: i64,
}

/// The field, folded on two lines, CRLF-terminated.
pub fn field(t: &Trace<'_>) -> String {
    let proto = match (t.esmtp, t.tls) {
        (true, true) => "ESMTPS",
        (true, false) => "ESMTP",
        (false, true) => "SMTPS",
        (false, false) => "SMTP",
    };
    let ip = match t.client {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPv6:{v6}"),
    };
    let helo: String = t
        .helo
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect();
    let rcpt = t
        .recipient
        .map(|r| format!(" for <{r}>"))
        .unwrap_or_default();
    let date = clock::http_date(t.when).replace(" GMT", " +0000");
    format!(
        "Received: from {helo} ([{ip}]) by {} ({}) with {proto} id {}{rcpt};\r\n\t{date}\r\n",
        t.by_fqdn, t.comment, t.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_client_and_the_hub() {
        let f = field(&Trace {
            helo: "client.example",
            client: "192.0.2.7".parse().unwrap(),
            by_fqdn: "ex1.lab.local",
            comment: "EX1 hub transport",
            esmtp: true,
            tls: true,
            id: "q1",
            recipient: Some("alice@lab.com"),
            when: 0,
        });
        assert_eq!(
            f,
            "Received: from client.example ([192.0.2.7]) by ex1.lab.local (EX1 hub transport) \
             with ESMTPS id q1 for <alice@lab.com>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
    }
}
