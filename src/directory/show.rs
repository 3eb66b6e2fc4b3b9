//! What `array get` and `database get` print.

use super::databases::DatabaseInfo;
use super::health::{MemberHealth, Unknown};
use super::table;
use crate::config::Config;

/// `Get-ClientAccessArray`: the array, then its members in a table, with
/// their health when the running array told it.
pub(crate) fn render_array(cfg: &Config, health: &Result<Vec<MemberHealth>, Unknown>) -> String {
    let a = &cfg.array;
    let members: Vec<&str> = cfg.members.iter().map(|m| m.name.as_str()).collect();
    let mut out = format!(
        "Name        : {}\nFqdn        : {}\nSite        : {}\nPublicNames : {}\nMembers     : {}\n\n",
        a.name,
        a.fqdn,
        a.site,
        a.public_names.join(", "),
        members.join(", ")
    );
    let base = |m: &crate::config::MemberConfig| {
        vec![
            m.name.clone(),
            m.address_text.clone(),
            m.fqdn.clone(),
            m.weight.to_string(),
        ]
    };
    match health {
        Ok(live) => {
            let rows: Vec<Vec<String>> = cfg
                .members
                .iter()
                .map(|m| {
                    let mut row = base(m);
                    match live.iter().find(|h| h.name.eq_ignore_ascii_case(&m.name)) {
                        Some(h) => {
                            row.push(h.state.to_string());
                            row.push(if h.healthy { "yes" } else { "no" }.to_string());
                            row.push(services_summary(cfg, h));
                        }
                        None => row.extend(
                            ["unknown", "unknown", "not in the running array"].map(String::from),
                        ),
                    }
                    row
                })
                .collect();
            out.push_str(&table::render(
                &[
                    "Name", "Address", "Fqdn", "Weight", "State", "Healthy", "Services",
                ],
                &rows,
            ));
        }
        Err(why) => {
            let rows: Vec<Vec<String>> = cfg.members.iter().map(base).collect();
            out.push_str(&table::render(
                &["Name", "Address", "Fqdn", "Weight"],
                &rows,
            ));
            out.push('\n');
            match why {
                Unknown::NotRunning => out.push_str("array not running: health unknown\n"),
                Unknown::BadAnswer(e) => out.push_str(&format!("{e}: health unknown\n")),
            }
        }
    }
    out
}

/// `all up`, `all down`, or `down: ecp, ews` (in the config's service order,
/// then any others the array reported).
fn services_summary(cfg: &Config, h: &MemberHealth) -> String {
    if h.services.is_empty() {
        return "none reported".to_string();
    }
    let mut names: Vec<&str> = cfg
        .services
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| h.services.contains_key(*n))
        .collect();
    for n in h.services.keys() {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let down: Vec<&str> = names
        .into_iter()
        .filter(|n| h.services.get(*n) == Some(&false))
        .collect();
    if down.is_empty() {
        "all up".to_string()
    } else if down.len() == h.services.len() {
        "all down".to_string()
    } else {
        format!("down: {}", down.join(", "))
    }
}

/// `Get-MailboxDatabase | ft Name, RpcClientAccessServer`.
pub(crate) fn render_databases(dbs: &[DatabaseInfo]) -> String {
    let rows: Vec<Vec<String>> = dbs
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.rpc_client_access_server.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::render(&["Name", "RpcClientAccessServer"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{exchange_profile, Profile};

    fn config() -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.pem"), "x").unwrap();
        let text = "[array]\nname = \"CAS1\"\nfqdn = \"outlook.lab.com\"\npublic_names = [\"mail.lab.com\", \"autodiscover.lab.com\"]\n\
            [listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"b.pem\"\n\
            [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\nfqdn = \"ex1.lab.local\"\n\
            [[member]]\nname = \"EX2\"\naddress = \"127.0.0.1:9002\"\nweight = 2\n";
        crate::config::parse(text, &dir.path().join("c.toml")).unwrap()
    }

    fn health(name: &str, down: &[&str]) -> MemberHealth {
        MemberHealth {
            name: name.into(),
            address: String::new(),
            fqdn: String::new(),
            weight: None,
            tls: false,
            state: crate::api::MemberState::Active,
            in_flight: 0,
            last_checks: Default::default(),
            healthy: down.is_empty(),
            services: exchange_profile(Profile::Exchange2013)
                .into_iter()
                .map(|s| {
                    let up = !down.contains(&s.name.as_str());
                    (s.name, up)
                })
                .collect(),
        }
    }

    #[test]
    fn array_without_health() {
        assert_eq!(
            render_array(&config(), &Err(Unknown::NotRunning)),
            "Name        : CAS1\n\
             Fqdn        : outlook.lab.com\n\
             Site        : Default-First-Site-Name\n\
             PublicNames : mail.lab.com, autodiscover.lab.com\n\
             Members     : EX1, EX2\n\
             \n\
             Name Address        Fqdn          Weight\n\
             ---- -------        ----          ------\n\
             EX1  127.0.0.1:9001 ex1.lab.local 1\n\
             EX2  127.0.0.1:9002 ex2           2\n\
             \n\
             array not running: health unknown\n"
        );
    }

    #[test]
    fn array_with_health() {
        let live = vec![health("ex1", &[]), health("EX2", &["ews", "ecp"])];
        let out = render_array(&config(), &Ok(live));
        let table: Vec<&str> = out.lines().skip(6).collect();
        assert_eq!(
            table,
            [
                "Name Address        Fqdn          Weight State  Healthy Services",
                "---- -------        ----          ------ -----  ------- --------",
                "EX1  127.0.0.1:9001 ex1.lab.local 1      active yes     all up",
                "EX2  127.0.0.1:9002 ex2           2      active no      down: ecp, ews",
            ]
        );
        let out = render_array(&config(), &Ok(vec![]));
        assert!(
            out.contains(
                "EX1  127.0.0.1:9001 ex1.lab.local 1      unknown unknown not in the running array"
            ),
            "{out}"
        );
    }

    #[test]
    fn databases_table() {
        let dbs = [
            DatabaseInfo::configured("DB01", Some("mail.lab.com")),
            DatabaseInfo::configured("DB02", None),
        ];
        assert_eq!(
            render_databases(&dbs),
            "Name RpcClientAccessServer\n---- ---------------------\nDB01 mail.lab.com\nDB02\n"
        );
    }
}
