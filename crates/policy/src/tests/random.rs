//! A long deterministic pseudo-random sequence of inputs on a 5-node cluster, with
//! the invariants checked after every batch: epochs never decrease, one Primary per
//! set and epoch, every member holds exactly one role, every decision applies, and
//! after a tick no failed or quarantined node is Primary of an N-way set.

use super::fixture::*;
use crate::{HealthReport, Input, PolicyError, Probe, SelfTest};
use keel_core::{
    BootType, ClusterCommand, Composition, EpochFence, EventKind, MemberRef, MemberState,
};
use std::collections::BTreeMap;

/// Knuth's MMIX linear congruential generator: the same sequence on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

fn random_input(rng: &mut Lcg, c: &Cluster) -> Input {
    let node = 1 + rng.below(5);
    let link = rng.pick(&["a", "b"]).to_string();
    match rng.below(100) {
        0..25 => Input::Silent {
            node,
            silent_ms: rng.pick(&[100, 200, 350, 1000]),
            probe: rng.pick(&[Probe::Refused, Probe::NoAnswer, Probe::NotProbed]),
        },
        25..55 => {
            let health = match rng.below(10) {
                0 => HealthReport {
                    score: 30,
                    disk_ok: true,
                    latency_ms: 800,
                },
                1 => HealthReport {
                    score: 5,
                    disk_ok: false,
                    latency_ms: 50,
                },
                _ => HealthReport::healthy(),
            };
            Input::Heard { node, health }
        }
        55..62 => Input::LinkSilent {
            node,
            link,
            self_test: rng.pick(&[SelfTest::Passed, SelfTest::Failed]),
        },
        62..67 => Input::LinkHeard { node, link },
        67..75 => Input::Back {
            node,
            boot: rng.pick(&[
                BootType::Restart,
                BootType::ReturnAfterFailure,
                BootType::FirstBoot,
            ]),
            pid: rng.pick(&[0u32, 100, 101, 102]),
            store: None,
        },
        75..79 => {
            let set = rng.pick(&["a", "b", "h"]).to_string();
            let to = rng.pick(&c.state.sets[&set].members);
            Input::Takeover { set, to }
        }
        79..83 => Input::Drain { node },
        83..88 => Input::Undrain { node },
        88..91 => Input::Clear { node },
        _ => Input::Tick,
    }
}

#[test]
fn invariants_hold_over_a_long_random_sequence() {
    let mut c = Cluster::new(&[1, 2, 3, 4, 5]);
    c.set("a", Composition::NWay, vec![n(1), n(2), n(3)], Some(20_000));
    c.set("b", Composition::NWay, vec![n(3), n(4), n(5), n(1)], None);
    c.set(
        "h",
        Composition::Hierarchical,
        vec![s("a"), s("b")],
        Some(30_000),
    );
    c.set("solo", Composition::Single, vec![n(5)], None);

    let mut rng = Lcg(0x6b65656c);
    let mut primary_of_epoch: BTreeMap<(String, u64), Option<MemberRef>> = BTreeMap::new();
    let fence = EpochFence::default();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();

    for step in 0..2000 {
        c.advance(rng.below(3000) as i64);
        let input = random_input(&mut rng, &c);
        let label = format!("step {step}: {input:?}");
        let commands = match c.try_decide(input.clone()) {
            Ok(commands) => commands,
            Err(PolicyError::DecisionRefused { command, error }) => {
                panic!("{label}: {command:?} refused: {error}")
            }
            Err(e) => {
                assert!(matches!(input, Input::Takeover { .. }), "{label}: {e}");
                *seen.entry("refused takeover").or_default() += 1;
                continue;
            }
        };

        for cmd in &commands {
            match cmd {
                ClusterCommand::AssignRoles { .. } => *seen.entry("assign").or_default() += 1,
                ClusterCommand::SetMemberState {
                    state: MemberState::Quarantined,
                    ..
                } => *seen.entry("quarantine").or_default() += 1,
                ClusterCommand::RecordEvent { event } if event.kind == EventKind::Giveback => {
                    *seen.entry("giveback").or_default() += 1
                }
                _ => {}
            }
        }
        for (id, set) in &c.state.sets {
            fence
                .admit(id, set.epoch)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let first = primary_of_epoch
                .entry((id.clone(), set.epoch.0))
                .or_insert(set.primary.clone());
            assert_eq!(
                *first, set.primary,
                "{label}: two primaries of {id} in epoch {}",
                set.epoch
            );
        }
        if input == Input::Tick {
            for set in c
                .state
                .sets
                .values()
                .filter(|s| s.composition == Composition::NWay)
            {
                if let Some(p) = set.primary_node() {
                    let state = c.member_state(p);
                    assert!(
                        !matches!(state, MemberState::Failed | MemberState::Quarantined),
                        "{label}: {p} is {state:?} and primary of {}",
                        set.id
                    );
                }
            }
        }
    }

    tracing::info!(?seen, "random sequence");
    for what in ["assign", "quarantine", "giveback", "refused takeover"] {
        assert!(
            seen.get(what).copied().unwrap_or(0) > 0,
            "the sequence never exercised {what}: {seen:?}"
        );
    }
}
