//! Operator requests: drain, undrain, takeover, and their refusals.

use super::fixture::*;
use crate::{Input, PolicyError};
use keel_core::{ClusterCommand, EventKind};

#[test]
fn draining_the_primary_hands_over_to_the_secondary() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);

    tracing::info!("--- drain the primary");
    let cmds = c.decide(Input::Drain { node: 1 });
    assert!(matches!(
        &cmds[0],
        ClusterCommand::Drain {
            node: 1,
            drained: true,
            ..
        }
    ));
    let ClusterCommand::AssignRoles { reason, .. } = assignments(&cmds)[0] else {
        unreachable!()
    };
    assert!(reason.contains("primary 1 drained"), "{reason}");
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[1]));
    assert_eq!(c.epoch("a"), 2);

    tracing::info!("--- drain the new secondary: the drained 1 is not picked");
    let cmds = c.decide(Input::Drain { node: 3 });
    let ClusterCommand::AssignRoles { reason, .. } = assignments(&cmds)[0] else {
        unreachable!()
    };
    assert!(reason.contains("secondary 3 drained"), "{reason}");
    assert_eq!(c.roles("a"), holders(Some(2), None, &[1, 3]));

    tracing::info!("--- undrain 1: it stays an alternate until arbitration needs it");
    let cmds = c.decide(Input::Undrain { node: 1 });
    assert!(matches!(
        &cmds[..],
        [ClusterCommand::Drain {
            node: 1,
            drained: false,
            ..
        }]
    ));
    assert!(c.decide(Input::Undrain { node: 1 }).is_empty());
    assert_eq!(c.roles("a"), holders(Some(2), None, &[1, 3]));

    tracing::info!("--- the next tick fills the empty secondary slot");
    c.decide(Input::Tick);
    assert_eq!(c.roles("a"), holders(Some(2), Some(1), &[3]));
}

#[test]
fn takeover_is_graceful_the_old_primary_becomes_secondary() {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.nway("a", &[1, 2, 3, 4]);

    let cmds = c.decide(Input::Takeover {
        set: "a".into(),
        to: n(3),
    });
    assert_eq!(recorded(&cmds), vec![EventKind::TakeoverRequested]);
    assert_eq!(c.roles("a"), holders(Some(3), Some(1), &[2, 4]));
    assert_eq!(c.epoch("a"), 2);

    tracing::info!("--- takeover by the current primary: nothing to do");
    assert!(c
        .decide(Input::Takeover {
            set: "a".into(),
            to: n(3)
        })
        .is_empty());
}

#[test]
fn takeover_with_a_failed_primary_fills_the_secondary_from_the_alternates() {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.nway("a", &[1, 2, 3, 4]);
    c.decide(crash(1));
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[4, 1]));

    c.decide(Input::Takeover {
        set: "a".into(),
        to: n(4),
    });
    assert_eq!(c.roles("a"), holders(Some(4), Some(2), &[3, 1]));
}

#[test]
fn bad_takeovers_are_refused_with_a_clear_error() {
    let mut c = Cluster::new(&[1, 2, 3, 9]);
    c.nway("a", &[1, 2, 3]);
    c.decide(crash(3));

    let err = c
        .try_decide(Input::Takeover {
            set: "nope".into(),
            to: n(2),
        })
        .unwrap_err();
    assert_eq!(err, PolicyError::UnknownSet { set: "nope".into() });

    let err = c
        .try_decide(Input::Takeover {
            set: "a".into(),
            to: n(9),
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "9 is not a member of failover set \"a\"");

    let err = c
        .try_decide(Input::Takeover {
            set: "a".into(),
            to: n(3),
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "3 cannot become Primary of failover set \"a\": not eligible (failed)"
    );

    c.decide(Input::Drain { node: 2 });
    let err = c
        .try_decide(Input::Takeover {
            set: "a".into(),
            to: n(2),
        })
        .unwrap_err();
    assert!(
        matches!(err, PolicyError::NotEligible { ref reason, .. } if reason == "drained"),
        "{err}"
    );
    assert_eq!(c.roles("a"), holders(Some(1), None, &[3, 2]));
}

#[test]
fn operator_requests_for_unknown_nodes_are_refused() {
    let mut c = Cluster::new(&[1]);
    for input in [
        Input::Drain { node: 7 },
        Input::Undrain { node: 7 },
        Input::Clear { node: 7 },
    ] {
        assert_eq!(
            c.try_decide(input).unwrap_err(),
            PolicyError::UnknownNode { node: 7 }
        );
    }
}
