//! The Passive's watch of its Active (seed 000 claim 5): each health answer, or the
//! lack of one, turns into "fine" or "ask for takeover, because ...". Pure: the
//! role's poller feeds it answers and the time.
//!
//! Must never: ask twice for the same epoch within [`ASK_AGAIN_AFTER`] (the control
//! plane is deciding; a refused request is asked again after it).

use keel_core::{Epoch, NodeId};
use std::time::{Duration, Instant};

/// How long after asking for a takeover the same request may be made again (the
/// first was lost or refused, and the Active still looks failed).
pub const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// The Passive's view of one Active of one set at one epoch.
#[derive(Clone, Debug)]
pub struct ActiveWatch {
    pub epoch: Epoch,
    pub active: NodeId,
    /// The last answer (or when the watch began: the Active is given the whole
    /// detection budget from then).
    last_answer: Instant,
    asked_at: Option<Instant>,
}

impl ActiveWatch {
    pub fn new(epoch: Epoch, active: NodeId, now: Instant) -> ActiveWatch {
        ActiveWatch {
            epoch,
            active,
            last_answer: now,
            asked_at: None,
        }
    }

    /// Is this the watch of `active` at `epoch`?
    pub fn watches(&self, epoch: Epoch, active: NodeId) -> bool {
        self.epoch == epoch && self.active == active
    }

    /// One health question's outcome at `now`: the Active's score, or why no answer
    /// came. Returns the reason to ask for a takeover, when it is time to ask.
    pub fn observe(
        &mut self,
        answer: Result<u8, String>,
        threshold: u8,
        detect_after: Duration,
        now: Instant,
    ) -> Option<String> {
        let reason = match answer {
            Ok(score) => {
                self.last_answer = now;
                (score < threshold).then(|| {
                    format!(
                        "node {} answers health {score}, below the set's threshold {threshold}",
                        self.active
                    )
                })
            }
            Err(why) => {
                let silent = now.saturating_duration_since(self.last_answer);
                (silent >= detect_after).then(|| {
                    format!(
                        "node {} has not answered a health question for {} ms ({why})",
                        self.active,
                        silent.as_millis()
                    )
                })
            }
        }?;
        if self
            .asked_at
            .is_some_and(|t| now.saturating_duration_since(t) < ASK_AGAIN_AFTER)
        {
            return None;
        }
        self.asked_at = Some(now);
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_millis(350);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn silence_for_the_detection_budget_asks_for_takeover_once() {
        let t0 = Instant::now();
        let mut w = ActiveWatch::new(Epoch(2), 1, t0);
        assert_eq!(w.observe(Ok(100), 50, BUDGET, t0 + ms(100)), None);
        // Unanswered, but within the budget since the last answer.
        assert_eq!(
            w.observe(Err("timeout".into()), 50, BUDGET, t0 + ms(400)),
            None
        );
        let why = w
            .observe(Err("refused".into()), 50, BUDGET, t0 + ms(450))
            .expect("silent for the budget");
        assert!(why.contains("350 ms") && why.contains("refused"), "{why}");
        // Not again right away...
        assert_eq!(w.observe(Err("x".into()), 50, BUDGET, t0 + ms(550)), None);
        // ...but again once the first request had time to be decided.
        assert!(w
            .observe(Err("x".into()), 50, BUDGET, t0 + ms(450) + ASK_AGAIN_AFTER)
            .is_some());
    }

    #[test]
    fn a_health_below_the_threshold_asks_at_once() {
        let t0 = Instant::now();
        let mut w = ActiveWatch::new(Epoch(2), 1, t0);
        assert_eq!(w.observe(Ok(50), 50, BUDGET, t0), None);
        let why = w.observe(Ok(49), 50, BUDGET, t0 + ms(100)).unwrap();
        assert!(why.contains("health 49"), "{why}");
        assert!(w.watches(Epoch(2), 1) && !w.watches(Epoch(3), 1));
    }

    #[test]
    fn a_new_watch_gives_the_active_the_whole_budget() {
        let t0 = Instant::now();
        let mut w = ActiveWatch::new(Epoch(5), 2, t0);
        assert_eq!(w.observe(Err("x".into()), 50, BUDGET, t0 + ms(349)), None);
        assert!(w
            .observe(Err("x".into()), 50, BUDGET, t0 + ms(350))
            .is_some());
    }
}
