//! The cluster secret file: mode 0600, atomic, refused when readable by others.

use std::os::unix::fs::PermissionsExt;

use keel_net::{ClusterSecret, TlsError};

#[test]
fn secret_file_is_0600_and_loads_back_the_same_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cluster.pem");
    let secret = ClusterSecret::generate("alpha").expect("generate");
    secret.save(&path).expect("save");

    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec!["cluster.pem"],
        "no temporary file left behind"
    );

    let loaded = ClusterSecret::load(&path).expect("load");
    assert_eq!(loaded.cluster_name(), "alpha");
    assert_eq!(loaded.ca_cert_der(), secret.ca_cert_der());
    assert_eq!(loaded.datagram_key(), secret.datagram_key());
    assert_eq!(loaded.admin_token(), secret.admin_token());

    // Saving over an existing file replaces it, still 0600.
    ClusterSecret::generate("beta")
        .expect("generate")
        .save(&path)
        .expect("save over");
    assert_eq!(
        ClusterSecret::load(&path).expect("load").cluster_name(),
        "beta"
    );
}

#[test]
fn load_refuses_a_group_or_world_readable_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cluster.pem");
    ClusterSecret::generate("alpha")
        .expect("generate")
        .save(&path)
        .expect("save");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    match ClusterSecret::load(&path) {
        Err(TlsError::InsecureSecretFile { mode, .. }) => assert_eq!(mode, 0o644),
        other => panic!("expected InsecureSecretFile, got {other:?}"),
    }
}

#[test]
fn derived_secrets_are_distinct_and_per_cluster() {
    let one = ClusterSecret::generate("alpha").expect("generate");
    let two = ClusterSecret::generate("alpha").expect("generate");
    let token = one.admin_token();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(one.datagram_key(), two.datagram_key());
    assert_ne!(token, two.admin_token());
    assert_ne!(token.as_bytes()[..32], one.datagram_key()[..]);
}

#[test]
fn malformed_secrets_are_refused() {
    let secret = ClusterSecret::generate("alpha").expect("generate");
    let other = ClusterSecret::generate("alpha").expect("generate");
    let key_of_other =
        &other.to_pem()[other.to_pem().find("-----BEGIN PRIVATE KEY").expect("key")..];
    let cert_of_one_end = secret.to_pem().find("-----BEGIN PRIVATE KEY").expect("key");
    let mismatched = format!("{}{}", &secret.to_pem()[..cert_of_one_end], key_of_other);
    assert!(matches!(
        ClusterSecret::from_pem(&mismatched),
        Err(TlsError::MalformedSecret(_))
    ));
    assert!(matches!(
        ClusterSecret::from_pem("nothing here"),
        Err(TlsError::MalformedSecret(_))
    ));
    assert!(matches!(
        ClusterSecret::generate("two\nlines"),
        Err(TlsError::InvalidClusterName(_))
    ));
}
