//! Auto-giveback: the home member gets the Primary role back, but only after it has
//! been up for the set's delay.

use super::fixture::*;
use crate::Input;
use keel_core::{Composition, EventKind};

#[test]
fn giveback_only_after_the_delay() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.set("a", Composition::NWay, vec![n(1), n(2), n(3)], Some(60_000));

    tracing::info!("--- the home member crashes and returns as an alternate");
    c.decide(crash(1));
    c.advance(5_000);
    c.decide(heard(1));
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[1]));

    tracing::info!("--- half the delay: no giveback");
    c.advance(30_000);
    assert!(c.decide(Input::Tick).is_empty());

    tracing::info!("--- the full delay: giveback, the acting primary becomes secondary");
    c.advance(30_000);
    let cmds = c.decide(Input::Tick);
    assert_eq!(recorded(&cmds), vec![EventKind::Giveback]);
    assert_eq!(assignments(&cmds).len(), 1);
    assert_eq!(c.roles("a"), holders(Some(1), Some(2), &[3]));
    assert_eq!(c.epoch("a"), 3);

    tracing::info!("--- and only once");
    assert!(c.decide(Input::Tick).is_empty());
}

#[test]
fn no_giveback_to_a_drained_home_member() {
    let mut c = Cluster::new(&[1, 2]);
    c.set("a", Composition::NWay, vec![n(1), n(2)], Some(1_000));
    c.decide(Input::Drain { node: 1 });
    c.advance(10_000);
    assert!(c.decide(Input::Tick).is_empty());
    assert_eq!(c.roles("a"), holders(Some(2), None, &[1]));
}
