//! Epoch fencing: older epochs refused, newer ones recorded durably, per set, across
//! reopen; and errors that travel over RPC with their codes.

mod common;

use keel_core::{Epoch, ObjectId};
use keel_store::{ObjectStore, StoreError};

#[test]
fn a_stale_epoch_is_refused_and_the_fence_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ObjectStore::open(dir.path()).unwrap();
        assert_eq!(store.fence_epoch("a").unwrap(), Epoch(0));
        store.check_epoch("a", Epoch(0)).unwrap();
        store.check_epoch("a", Epoch(3)).unwrap();
        store.check_epoch("a", Epoch(3)).unwrap();
        assert_eq!(store.fence_epoch("a").unwrap(), Epoch(3));
        let err = store.check_epoch("a", Epoch(2)).unwrap_err();
        assert_eq!(
            err,
            StoreError::StaleEpoch {
                set: "a".to_string(),
                presented: Epoch(2),
                current: Epoch(3)
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("epoch 2") && message.contains("epoch is 3"),
            "{message}"
        );
        // Sets are fenced independently.
        store.check_epoch("b", Epoch(1)).unwrap();
        assert_eq!(store.fence_epoch("b").unwrap(), Epoch(1));
    }
    let store = ObjectStore::open(dir.path()).unwrap();
    assert_eq!(store.fence_epoch("a").unwrap(), Epoch(3));
    assert_eq!(
        store.check_epoch("a", Epoch(2)).unwrap_err().code(),
        "stale_epoch"
    );
    store.check_epoch("a", Epoch(4)).unwrap();
    assert_eq!(store.fence_epoch("a").unwrap(), Epoch(4));
}

#[test]
fn concurrent_raises_keep_the_highest() {
    let (_dir, store) = common::temp_store();
    std::thread::scope(|scope| {
        for epoch in 1..=8 {
            let store = &store;
            scope.spawn(move || {
                // Some of these are refused (a higher one got in first); that is fine.
                let _ = store.check_epoch("s", Epoch(epoch));
            });
        }
    });
    assert_eq!(store.fence_epoch("s").unwrap(), Epoch(8));
}

#[test]
fn errors_round_trip_with_their_codes() -> anyhow::Result<()> {
    let errors = [
        StoreError::StaleEpoch {
            set: "a".into(),
            presented: Epoch(1),
            current: Epoch(2),
        },
        StoreError::Corrupt {
            id: ObjectId(5),
            block: 3,
        },
        StoreError::NoSpace {
            needed: 10,
            free: 3,
        },
        StoreError::NotFound { id: ObjectId(1) },
        StoreError::Io {
            context: "writing".into(),
            message: "EIO".into(),
        },
    ];
    for err in errors {
        let json = serde_json::to_value(&err)?;
        assert_eq!(json["code"], err.code(), "{json}");
        let back: StoreError = serde_json::from_value(json)?;
        assert_eq!(back, err);
    }
    Ok(())
}
