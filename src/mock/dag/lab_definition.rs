//! The `dag.toml` that `casarray lab` writes on its first run.

use std::fmt::Write as _;

/// The `dag.toml` of a lab of `servers` servers (EX1..EXn) and the lab's
/// databases: database number k (from 0) prefers server k mod n, and has
/// copies on up to 3 servers from there (with 2 servers: DB01 on EX1 then
/// EX2, DB02 on EX2 then EX1).
pub fn lab_text(servers: usize, databases: &[(&str, &str)]) -> String {
    let n = servers.max(1);
    let mut s = String::from(
        "# casarray lab: the database availability group (DAG) of the mock servers.\n\
         # Written by `casarray lab` on its first run. Each server records its address\n\
         # here when it starts; `copy add` and `copy remove` edit the copies.\n\
         name = \"DAG1\"\n\
         witness = \"witness.json\"                     # the witness lease\n\
         state = \"dag-state.json\"                     # which copy is active\n\
         auto_database_mount_dial = \"GoodAvailability\" # Lossless | GoodAvailability (6 logs) | BestAvailability (12)\n\
         heartbeat_interval = \"250ms\"\n\
         failure_timeout = \"3s\"                       # a server not heard from for this long is lost\n\n",
    );
    for i in 1..=n {
        let _ = write!(s, "[[member]]\nname = \"EX{i}\"\n\n");
    }
    for (k, (name, description)) in databases.iter().enumerate() {
        let _ = write!(
            s,
            "[[database]]\nname = \"{name}\"\ndescription = \"{description}\"\n"
        );
        for p in 0..n.min(3) {
            let server = (k + p) % n + 1;
            let _ = write!(
                s,
                "[[database.copy]]\nserver = \"EX{server}\"\nactivation_preference = {}\n",
                p + 1
            );
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::dag::definition::{Definition, MountDial};
    use std::path::Path;

    #[test]
    fn lab_definitions_spread_copies() {
        let dbs = [("DB01", "Local IT"), ("DB02", "Global IT")];
        let two = Definition::parse(&lab_text(2, &dbs), Path::new("dag.toml")).unwrap();
        let copies = |def: &Definition, db: &str| -> Vec<(String, u32)> {
            def.database(db)
                .unwrap()
                .copies
                .iter()
                .map(|c| (c.server.clone(), c.activation_preference))
                .collect()
        };
        assert_eq!(copies(&two, "DB01"), [("EX1".into(), 1), ("EX2".into(), 2)]);
        assert_eq!(copies(&two, "DB02"), [("EX2".into(), 1), ("EX1".into(), 2)]);
        assert_eq!(two.dial, MountDial::GoodAvailability);
        let one = Definition::parse(&lab_text(1, &dbs), Path::new("dag.toml")).unwrap();
        assert_eq!(copies(&one, "DB02"), [("EX1".into(), 1)]);
        let five = Definition::parse(&lab_text(5, &dbs), Path::new("dag.toml")).unwrap();
        assert_eq!(five.members.len(), 5);
        assert_eq!(
            copies(&five, "DB02"),
            [("EX2".into(), 1), ("EX3".into(), 2), ("EX4".into(), 3)]
        );
    }
}
