//! The wire forms: commands and replies survive JSON (the configuration database's
//! encoding for log entries, replies and snapshots), 128-bit tokens included.

mod common;

use common::*;
use keel_dir::{DirCommand, DirResult};

#[test]
fn commands_round_trip_through_json() {
    let mut cmds = vec![
        create_volume("w"),
        mkdir("/a", true),
        put("/a/f", &[1, u128::MAX], 3),
        unlink("/a/f"),
        rmdir("/a"),
        rename("/a", "/b"),
        truncate("/b", 7),
    ];
    let with_tokens: Vec<DirCommand> = cmds[1..]
        .iter()
        .map(|c| with_token(c.clone(), u128::MAX - 1))
        .collect();
    cmds.extend(with_tokens);
    for cmd in cmds {
        let json = serde_json::to_string(&cmd).unwrap();
        let back: DirCommand = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
        assert_eq!(back, cmd, "{json}");
    }
}

#[test]
fn tokens_travel_as_hex_and_may_be_left_out() {
    let json = serde_json::to_value(with_token(unlink("/f"), 0xab)).unwrap();
    assert_eq!(json["token"], "000000000000000000000000000000ab");
    let no_token = r#"{"op":"unlink","volume":"v","path":"/f","at":300}"#;
    assert_eq!(
        serde_json::from_str::<DirCommand>(no_token).unwrap(),
        unlink("/f")
    );
    let short = r#"{"op":"unlink","volume":"v","path":"/f","at":300,"token":"ab"}"#;
    assert_eq!(
        serde_json::from_str::<DirCommand>(short).unwrap(),
        with_token(unlink("/f"), 0xab)
    );
    for bad in [
        r#""""#,
        r#""xyz""#,
        "12",
        &format!("\"{}\"", "f".repeat(33)),
    ] {
        let json = format!(r#"{{"op":"unlink","volume":"v","path":"/f","at":1,"token":{bad}}}"#);
        assert!(serde_json::from_str::<DirCommand>(&json).is_err(), "{json}");
    }
}

#[test]
fn replies_round_trip_through_json() {
    let mut ns = namespace();
    let results: Vec<DirResult> = vec![
        ns.apply(create_volume("w")),
        ns.apply(mkdir("/a", false)),
        ns.apply(put("/a/f", &[1, 2], 3)),
        ns.apply(put("/a/f", &[3], 3)),
        ns.apply(rename("/a/f", "/g")),
        ns.apply(rmdir("/a")),
        ns.apply(rmdir("/a")),
        ns.apply(truncate("/g", 1)),
    ];
    for result in results {
        let json = serde_json::to_string(&result).unwrap();
        assert_eq!(
            serde_json::from_str::<DirResult>(&json).unwrap(),
            result,
            "{json}"
        );
    }
}
