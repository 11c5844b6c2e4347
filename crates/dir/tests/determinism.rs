//! Random command sequences: replicas agree, failed commands change nothing, and the
//! persistence contract (changes written incrementally, then `from_parts`) and the
//! snapshot form both rebuild the same namespace.

mod common;

use common::random::commands;
use common::store::Store;
use keel_dir::{Changes, DirCommand, Namespace};

const SEEDS: u64 = 12;
const COMMANDS: usize = 1500;

fn apply_all(cmds: &[DirCommand]) -> (Namespace, Vec<String>) {
    let mut ns = Namespace::new();
    let replies = cmds
        .iter()
        .map(|cmd| format!("{:?}", ns.apply(cmd.clone())))
        .collect();
    (ns, replies)
}

#[test]
fn two_replicas_applying_the_same_commands_are_equal() {
    for seed in 0..SEEDS {
        let cmds = commands(seed, COMMANDS);
        let (a, replies_a) = apply_all(&cmds);
        let (b, replies_b) = apply_all(&cmds);
        assert_eq!(replies_a, replies_b);
        assert_eq!(a, b);
        let json = serde_json::to_vec(&a).unwrap();
        assert_eq!(
            json,
            serde_json::to_vec(&b).unwrap(),
            "snapshots are byte-equal"
        );
        let (volumes, inodes) = a.stats();
        assert!(
            volumes >= 1 && inodes > 5,
            "seed {seed}: too little happened"
        );
    }
}

#[test]
fn every_command_keeps_the_invariants_and_a_failure_changes_nothing() {
    let mut successes = 0;
    for seed in 0..SEEDS {
        let mut ns = Namespace::new();
        for cmd in commands(seed, COMMANDS) {
            let before = ns.clone();
            let token = cmd.token();
            let replayed = token.is_some_and(|t| ns.remembered(t).is_some());
            let shown = format!("{cmd:?}");
            let result = ns.apply(cmd);
            ns.check_invariants()
                .unwrap_or_else(|e| panic!("seed {seed}, after {shown}: {e}"));
            if result.is_ok() {
                successes += 1;
            }
            if (result.is_err() && token.is_none()) || replayed {
                assert_eq!(
                    ns, before,
                    "seed {seed}: {shown} -> {result:?} changed state"
                );
            }
        }
    }
    let total = SEEDS as usize * COMMANDS;
    assert!(
        successes > total / 5,
        "only {successes} of {total} succeeded"
    );
}

#[test]
fn changes_written_incrementally_rebuild_the_namespace() {
    for seed in 0..SEEDS {
        let mut ns = Namespace::new();
        let mut per_apply = Store::default();
        // Changes merged over batches of ten applies, as one write per batch.
        let mut per_batch = Store::default();
        let mut pending = Changes::default();
        for (i, cmd) in commands(seed, COMMANDS).into_iter().enumerate() {
            let _ = ns.apply(cmd);
            let changes = ns.take_changes();
            per_apply.write(changes.clone(), ns.meta());
            pending.volumes.extend(changes.volumes);
            pending.inodes.extend(changes.inodes);
            pending.entries.extend(changes.entries);
            pending.tokens.extend(changes.tokens);
            pending.meta_changed |= changes.meta_changed;
            if i % 10 == 9 {
                per_batch.write(std::mem::take(&mut pending), ns.meta());
            }
            if i % 97 == 0 {
                assert_eq!(per_apply.load(), ns, "seed {seed}, command {i}");
            }
        }
        per_batch.write(pending, ns.meta());
        assert_eq!(per_apply.load(), ns, "seed {seed}");
        assert_eq!(per_batch.load(), ns, "seed {seed}");
        // Incremental: a handful of rows per command, however big the namespace.
        assert!(
            per_apply.rows_written < COMMANDS * 8,
            "seed {seed}: {} rows for {COMMANDS} commands",
            per_apply.rows_written
        );
    }
}

#[test]
fn take_changes_accumulates_until_taken() {
    for seed in 0..4 {
        let mut ns = Namespace::new();
        let mut store = Store::default();
        for (i, cmd) in commands(seed, COMMANDS).into_iter().enumerate() {
            let _ = ns.apply(cmd);
            if i % 13 == 0 {
                store.sync(&mut ns);
            }
        }
        store.sync(&mut ns);
        assert_eq!(store.load(), ns);
    }
}

#[test]
fn snapshots_and_all_as_changes_rebuild_the_namespace() {
    for seed in 0..SEEDS {
        let (mut ns, _) = apply_all(&commands(seed, COMMANDS));
        let json = serde_json::to_vec(&ns).unwrap();
        let mut restored: Namespace = serde_json::from_slice(&json).unwrap();
        assert_eq!(restored, ns);
        assert!(restored.take_changes().is_empty());
        restored.check_invariants().unwrap();
        let mut store = Store::default();
        let everything = ns.all_as_changes();
        assert!(
            ns.take_changes().is_empty(),
            "all_as_changes subsumes pending changes"
        );
        store.write(everything, ns.meta());
        assert_eq!(store.load(), ns);
        // The restored one keeps applying like the original.
        let more = commands(seed + 1000, 300);
        let mut original = ns.clone();
        for cmd in more {
            assert_eq!(original.apply(cmd.clone()), restored.apply(cmd));
        }
        assert_eq!(original, restored);
    }
}
