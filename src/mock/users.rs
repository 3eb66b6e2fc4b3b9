//! The lab's mailboxes and mailbox databases, and the names Exchange
//! derives from them (legacy DNs).

/// The seeded mailboxes: (address, password, display name, database).
///
/// The lab prints these credentials; they protect nothing real.
pub const LAB_USERS: &[(&str, &str, &str, &str)] = &[
    ("alice@lab.com", "Alice!lab1", "Alice Anderson", "DB01"),
    ("bob@lab.com", "Bob!lab1", "Bob Brown", "DB02"),
];

/// The seeded mailbox databases: (name, description).
pub const LAB_DATABASES: &[(&str, &str)] = &[("DB01", "Local IT"), ("DB02", "Global IT")];

/// The Exchange organization every legacy DN of the lab lives in.
pub const ORGANIZATION: &str = "casarray lab";

/// The administrative group of Exchange 2007 and later.
const ADMIN_GROUP: &str = "Exchange Administrative Group (FYDIBOHF23SPDLT)";

/// `/o=casarray lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)`.
pub fn admin_group_dn() -> String {
    format!("/o={ORGANIZATION}/ou={ADMIN_GROUP}")
}

/// A server's DN: `.../cn=Configuration/cn=Servers/cn=NAME`.
pub fn server_dn(server: &str) -> String {
    format!(
        "{}/cn=Configuration/cn=Servers/cn={server}",
        admin_group_dn()
    )
}

/// A mailbox database's DN: `.../cn=Configuration/cn=Databases/cn=DB01`.
pub fn database_dn(database: &str) -> String {
    format!(
        "{}/cn=Configuration/cn=Databases/cn={database}",
        admin_group_dn()
    )
}

/// A mailbox's legacy DN: `.../cn=Recipients/cn=<local part>`.
pub fn mailbox_legacy_dn(address: &str) -> String {
    let local = address.split('@').next().unwrap_or(address);
    format!("{}/cn=Recipients/cn={local}", admin_group_dn())
}

/// A mailbox as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mailbox {
    /// Primary SMTP address, lower case.
    pub address: String,
    pub display_name: String,
    /// The mailbox database, e.g. `DB01`.
    pub database: String,
    /// The mailbox GUID (see [`mailbox_guid`]): MAPI/HTTP and Outlook
    /// Anywhere name the mailbox `<guid>@<domain>`.
    pub guid: String,
}

/// The stable GUID of the mailbox `address`: a version 8 UUID made of the
/// first 16 bytes of SHA-256 of `casarray lab mailbox\n<address>`
/// (lower-cased), so every process and every run agrees on it.
pub fn mailbox_guid(address: &str) -> String {
    let input = format!("casarray lab mailbox\n{}", address.to_ascii_lowercase());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Normalizes what a user typed as a logon name: `alice@lab.com`,
/// `LAB\alice` or `alice` all become `alice@lab.com`-style lookups. Returns
/// the lower-cased address or, for a bare name, the bare name.
pub fn normalize_logon(name: &str) -> String {
    let name = name.trim();
    let name = name.rsplit_once('\\').map_or(name, |(_, user)| user);
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_have_exchange_shape() {
        assert_eq!(
            database_dn("DB01"),
            "/o=casarray lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Databases/cn=DB01"
        );
        assert_eq!(
            server_dn("EX1"),
            "/o=casarray lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn=EX1"
        );
        assert!(mailbox_legacy_dn("alice@lab.com").ends_with("/cn=Recipients/cn=alice"));
    }

    #[test]
    fn every_user_has_a_known_database() {
        for (address, password, _, db) in LAB_USERS {
            assert!(address.contains('@') && !password.is_empty());
            assert!(LAB_DATABASES.iter().any(|(name, _)| name == db));
        }
    }

    #[test]
    fn guids_are_stable_uuids() {
        let a = mailbox_guid("alice@lab.com");
        assert_eq!(a, mailbox_guid("Alice@Lab.com"));
        assert_ne!(a, mailbox_guid("bob@lab.com"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8", "version 8: {a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn logon_names_normalize() {
        assert_eq!(normalize_logon(" Alice@Lab.com "), "alice@lab.com");
        assert_eq!(normalize_logon("LAB\\Alice"), "alice");
        assert_eq!(normalize_logon("bob"), "bob");
    }
}
