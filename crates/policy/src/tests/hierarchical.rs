//! Hierarchical sets: the members are child sets, available while their Primary is.

use super::fixture::*;
use crate::Input;
use keel_core::Composition;

/// Child sets `left` (1, 2) and `right` (3, 4) under `top`.
fn two_level() -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.nway("left", &[1, 2]);
    c.nway("right", &[3, 4]);
    c.set(
        "top",
        Composition::Hierarchical,
        vec![s("left"), s("right")],
        None,
    );
    c
}

#[test]
fn the_secondary_child_set_takes_over_when_the_primary_child_has_no_eligible_primary() {
    let mut c = two_level();
    assert_eq!(c.roles("top"), (Some(s("left")), Some(s("right")), vec![]));

    tracing::info!("--- one node of the primary child fails: the child fails over inside");
    c.decide(crash(1));
    assert_eq!(c.roles("left"), holders(Some(2), None, &[1]));
    assert_eq!(c.epoch("top"), 1);

    tracing::info!("--- the other fails too: the whole child is gone, top fails over");
    c.decide(crash(2));
    assert_eq!(c.roles("left"), holders(None, None, &[1, 2]));
    assert_eq!(c.roles("top"), (Some(s("right")), None, vec![s("left")]));
    assert_eq!(c.epoch("top"), 2);

    tracing::info!("--- a node of left returns: left is eligible again, as top's secondary");
    c.decide(heard(1));
    assert_eq!(c.roles("left"), holders(Some(1), None, &[2]));
    assert_eq!(c.roles("top"), (Some(s("right")), Some(s("left")), vec![]));
    assert_eq!(c.epoch("top"), 2);
}

#[test]
fn takeover_of_a_hierarchical_set_by_a_child_set() {
    let mut c = two_level();
    c.decide(Input::Takeover {
        set: "top".into(),
        to: s("right"),
    });
    assert_eq!(c.roles("top"), (Some(s("right")), Some(s("left")), vec![]));
}
