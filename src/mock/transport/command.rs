//! SMTP commands (RFC 5321 section 4.1) as the hub and the external system
//! read them: one line in, one [`Command`] or the reason it is refused.

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    /// `MAIL FROM:<path>`; the reverse path (empty for `<>`) and the
    /// declared `SIZE=`.
    Mail {
        from: String,
        size: Option<u64>,
    },
    /// `RCPT TO:<path>`.
    Rcpt(String),
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    StartTls,
    /// `XSHADOW <primary hub> <queue id> [DELIVERED]`: the next message is
    /// a shadow copy of one the primary keeps in its queue, or (with
    /// `DELIVERED`) one it has already delivered into a mailbox database,
    /// kept as Safety Net (hub to hub only).
    XShadow {
        primary: String,
        id: String,
        delivered: bool,
    },
    /// `XDISCARD <primary hub> <queue id>`: the primary delivered it; the
    /// shadow copy goes.
    XDiscard {
        primary: String,
        id: String,
    },
}

/// Why a line is not a command this server takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// `500`: no such command.
    Unknown,
    /// `501`: the arguments are wrong; what is wrong.
    Syntax(&'static str),
    /// `555`: a `MAIL` parameter this server does not know.
    Parameter(String),
}

/// Reads one command line (without its CRLF).
pub fn parse(line: &[u8]) -> Result<Command, Refused> {
    let line = std::str::from_utf8(line).map_err(|_| Refused::Syntax("not UTF-8"))?;
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(Refused::Syntax("no arguments expected"))
        }
    };
    match verb.as_str() {
        "HELO" | "EHLO" => {
            let name = rest.split_whitespace().next().unwrap_or("");
            if name.is_empty() || name.chars().any(|c| c.is_control()) {
                return Err(Refused::Syntax("a domain or address literal is needed"));
            }
            let name = name.to_string();
            Ok(if verb == "HELO" {
                Command::Helo(name)
            } else {
                Command::Ehlo(name)
            })
        }
        "MAIL" => {
            let after =
                strip_keyword(rest, "FROM:").ok_or(Refused::Syntax("MAIL FROM:<address>"))?;
            let (from, params) = path(after, true)?;
            let mut size = None;
            for p in params.split_whitespace() {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                match k.to_ascii_uppercase().as_str() {
                    "SIZE" => size = Some(v.parse().map_err(|_| Refused::Syntax("SIZE=<octets>"))?),
                    "BODY"
                        if v.eq_ignore_ascii_case("8BITMIME") || v.eq_ignore_ascii_case("7BIT") => {
                    }
                    _ => return Err(Refused::Parameter(p.to_string())),
                }
            }
            Ok(Command::Mail { from, size })
        }
        "RCPT" => {
            let after = strip_keyword(rest, "TO:").ok_or(Refused::Syntax("RCPT TO:<address>"))?;
            let (to, params) = path(after, false)?;
            if !params.trim().is_empty() {
                return Err(Refused::Parameter(params.trim().to_string()));
            }
            Ok(Command::Rcpt(to))
        }
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "QUIT" => no_args(Command::Quit),
        "STARTTLS" => no_args(Command::StartTls),
        // NOOP and VRFY take (and ignore) an argument.
        "NOOP" => Ok(Command::Noop),
        "VRFY" => Ok(Command::Vrfy),
        "XSHADOW" | "XDISCARD" => {
            let mut words = rest.split_whitespace();
            let (Some(primary), Some(id), flag, None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(Refused::Syntax("<primary hub> <queue id>"));
            };
            let delivered = match flag {
                None => false,
                Some(f) if verb == "XSHADOW" && f.eq_ignore_ascii_case("DELIVERED") => true,
                Some(_) => return Err(Refused::Syntax("<primary hub> <queue id>")),
            };
            if !safe_name(primary) || !safe_name(id) {
                return Err(Refused::Syntax("names are letters, digits, '-' and '_'"));
            }
            let (primary, id) = (primary.to_string(), id.to_string());
            Ok(if verb == "XSHADOW" {
                Command::XShadow {
                    primary,
                    id,
                    delivered,
                }
            } else {
                Command::XDiscard { primary, id }
            })
        }
        _ => Err(Refused::Unknown),
    }
}

/// Whether `s` can name a hub or a queue file: letters, digits, `-`, `_`,
/// 1 to 64 of them.
pub fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `rest` after a case-insensitive keyword such as `FROM:` (spaces after
/// the colon tolerated, as many clients send them).
fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| rest[keyword.len()..].trim_start())
}

/// `<address>` and what follows it. The address is a mailbox
/// (`local@domain`, no spaces or controls, at most 254 octets) or, for a
/// reverse path, empty (`<>`); `<postmaster>` is taken too.
fn path(s: &str, reverse: bool) -> Result<(String, &str), Refused> {
    let inner = s
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .ok_or(Refused::Syntax("the address goes in angle brackets"))?;
    let (addr, params) = inner;
    // A source route (`<@a,@b:user@c>`) is read as its mailbox.
    let addr = addr.rsplit_once(':').map_or(addr, |(_, m)| m);
    if addr.is_empty() {
        return if reverse {
            Ok((String::new(), params))
        } else {
            Err(Refused::Syntax("an empty recipient"))
        };
    }
    if addr.eq_ignore_ascii_case("postmaster") {
        return Ok(("postmaster".into(), params));
    }
    let ok = addr.len() <= 254
        && !addr
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<')
        && addr
            .rsplit_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if !ok {
        return Err(Refused::Syntax("not a mailbox address"));
    }
    Ok((addr.to_string(), params))
}

/// The domain of `address`, lower case (empty for `postmaster`).
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, Refused> {
        parse(s.as_bytes())
    }

    #[test]
    fn commands() {
        assert_eq!(
            p("ehlo client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            p("HELO [192.0.2.1]"),
            Ok(Command::Helo("[192.0.2.1]".into()))
        );
        assert_eq!(
            p("MAIL FROM:<a@b.c> SIZE=100 BODY=8BITMIME"),
            Ok(Command::Mail {
                from: "a@b.c".into(),
                size: Some(100)
            })
        );
        assert_eq!(
            p("mail from: <>"),
            Ok(Command::Mail {
                from: String::new(),
                size: None
            })
        );
        assert_eq!(
            p("RCPT TO:<Alice@Lab.com>"),
            Ok(Command::Rcpt("Alice@Lab.com".into()))
        );
        assert_eq!(
            p("RCPT TO:<@relay:bob@lab.com>"),
            Ok(Command::Rcpt("bob@lab.com".into()))
        );
        assert_eq!(
            p("RCPT TO:<Postmaster>"),
            Ok(Command::Rcpt("postmaster".into()))
        );
        assert_eq!(p("DATA"), Ok(Command::Data));
        assert_eq!(p("noop hello"), Ok(Command::Noop));
        assert_eq!(p("VRFY alice"), Ok(Command::Vrfy));
        assert_eq!(
            p("XSHADOW EX1 q-12"),
            Ok(Command::XShadow {
                primary: "EX1".into(),
                id: "q-12".into(),
                delivered: false,
            })
        );
        assert!(matches!(
            p("XSHADOW EX1 q-12 delivered"),
            Ok(Command::XShadow {
                delivered: true,
                ..
            })
        ));
        assert!(matches!(
            p("XDISCARD EX1 q-12 DELIVERED"),
            Err(Refused::Syntax(_))
        ));
    }

    #[test]
    fn refusals() {
        assert_eq!(p("HELLO x"), Err(Refused::Unknown));
        assert_eq!(p(""), Err(Refused::Unknown));
        assert!(matches!(p("EHLO"), Err(Refused::Syntax(_))));
        assert!(matches!(p("MAIL TO:<a@b>"), Err(Refused::Syntax(_))));
        assert!(matches!(p("MAIL FROM:a@b"), Err(Refused::Syntax(_))));
        assert!(matches!(
            p("MAIL FROM:<a@b> SIZE=x"),
            Err(Refused::Syntax(_))
        ));
        assert_eq!(
            p("MAIL FROM:<a@b> AUTH=<>"),
            Err(Refused::Parameter("AUTH=<>".into()))
        );
        assert!(matches!(p("RCPT TO:<>"), Err(Refused::Syntax(_))));
        assert!(matches!(p("RCPT TO:<no domain>"), Err(Refused::Syntax(_))));
        assert!(matches!(p("DATA now"), Err(Refused::Syntax(_))));
        assert!(matches!(p("XSHADOW ../x 1"), Err(Refused::Syntax(_))));
        assert!(matches!(parse(b"\xff\xfe"), Err(Refused::Syntax(_))));
        assert_eq!(domain_of("a@Test.COM"), "test.com");
    }
}
