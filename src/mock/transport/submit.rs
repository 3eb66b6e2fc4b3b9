//! Submission: a message a mailbox server's own client sends to another
//! domain (EWS `CreateItem` to carol@test.com) is written as an RFC 5322
//! message and handed to the server's hub transport by SMTP, as Exchange's
//! mailbox transport submission hands it to the transport service. The hub
//! queues it (with a shadow copy) before its `250`; its send connector
//! delivers it.

use std::net::SocketAddr;

use super::client::{Client, STEP_TIMEOUT};
use super::command::domain_of;
use super::LAB_DOMAIN;
use crate::mock::format::clock;
use crate::mock::store::{BodyType, NewMessage};

/// The recipients of other domains than the lab's (each once), and the
/// message with only the lab's recipients left.
pub fn split(msg: &NewMessage) -> (Vec<String>, NewMessage) {
    let outside = |a: &String| a.contains('@') && domain_of(a) != LAB_DOMAIN;
    let mut external: Vec<String> = Vec::new();
    for a in msg.to.iter().chain(&msg.cc).chain(&msg.bcc) {
        if outside(a) && !external.iter().any(|e| e.eq_ignore_ascii_case(a)) {
            external.push(a.clone());
        }
    }
    let keep = |list: &[String]| list.iter().filter(|a| !outside(a)).cloned().collect();
    let internal = NewMessage {
        to: keep(&msg.to),
        cc: keep(&msg.cc),
        bcc: keep(&msg.bcc),
        ..msg.clone()
    };
    (external, internal)
}

/// The message as RFC 5322 text (Bcc left out), CRLF line ends.
pub fn render(msg: &NewMessage, message_id: &str, when: i64) -> String {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let mut out = format!(
        "From: \"{}\" <{}>\r\n",
        clean(&msg.from.display_name).replace('"', "'"),
        msg.from.address
    );
    if !msg.to.is_empty() {
        out.push_str(&format!("To: {}\r\n", msg.to.join(", ")));
    }
    if !msg.cc.is_empty() {
        out.push_str(&format!("Cc: {}\r\n", msg.cc.join(", ")));
    }
    let kind = match msg.body_type {
        BodyType::Html => "text/html",
        BodyType::Text => "text/plain",
    };
    out.push_str(&format!(
        "Subject: {}\r\nDate: {}\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: {kind}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        clean(&msg.subject),
        clock::http_date(when).replace(" GMT", " +0000"),
    ));
    for line in msg.body.replace("\r\n", "\n").split('\n') {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// Hands `msg` for `rcpts` to the hub at `hub`; `fqdn` names this server
/// (EHLO, the Message-ID).
pub async fn submit(
    hub: SocketAddr,
    fqdn: &str,
    msg: &NewMessage,
    rcpts: &[String],
    when: i64,
) -> Result<(), String> {
    let message_id = msg
        .message_id
        .clone()
        .unwrap_or_else(|| format!("<{}@{fqdn}>", super::new_id()));
    let text = render(msg, &message_id, when);
    let result = async {
        let mut c = Client::connect(hub, STEP_TIMEOUT).await?;
        c.ehlo(fqdn).await?;
        let refused = c
            .send_reader(&msg.from.address, rcpts, text.as_bytes())
            .await?;
        c.quit().await;
        Ok::<_, super::client::ClientError>(refused)
    }
    .await
    .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    match result.first() {
        None => Ok(()),
        Some((rcpt, reply)) => Err(format!("{rcpt} refused: {} {}", reply.code, reply.text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_renders() {
        let alice = crate::mock::directory::lab()
            .find("alice@lab.com")
            .unwrap()
            .clone();
        let msg = NewMessage {
            from: alice,
            to: vec!["carol@test.com".into(), "bob@lab.com".into()],
            cc: vec!["Carol@Test.com".into()],
            bcc: vec![],
            subject: "Hi\r\nBcc: x".into(),
            body: "one\ntwo".into(),
            body_type: BodyType::Text,
            message_id: None,
            headers: String::new(),
        };
        let (external, internal) = split(&msg);
        assert_eq!(external, ["carol@test.com"]);
        assert_eq!(internal.to, ["bob@lab.com"]);
        assert!(internal.cc.is_empty());
        let text = render(&msg, "<m@x>", 0);
        assert!(text.starts_with(
            "From: \"Alice Anderson\" <alice@lab.com>\r\nTo: carol@test.com, bob@lab.com\r\n"
        ));
        assert!(
            text.contains("Subject: Hi  Bcc: x\r\n"),
            "no header injection: {text}"
        );
        assert!(text.ends_with("\r\n\r\none\r\ntwo\r\n"));
    }
}
