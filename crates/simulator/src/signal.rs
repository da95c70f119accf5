//! The fixed-time signal controller: which aspect each approach shows at a time.

use serde::{Deserialize, Serialize};

use crate::spec::{Approach, SignalPlan};

/// The aspect a signal head shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalState {
    /// Go.
    Green,
    /// Stop if you can stop comfortably.
    Amber,
    /// Stop.
    Red,
}

/// Evaluates a [`SignalPlan`] at any time.
#[derive(Debug, Clone)]
pub(crate) struct SignalTimer {
    plan: SignalPlan,
    /// Start of each phase within the cycle.
    starts: Vec<f64>,
    cycle: f64,
}

impl SignalTimer {
    pub(crate) fn new(plan: &SignalPlan) -> Self {
        let mut starts = Vec::with_capacity(plan.phases.len());
        let mut t = 0.0;
        for p in &plan.phases {
            starts.push(t);
            t += p.green_s + plan.amber_s + plan.all_red_s;
        }
        Self { plan: plan.clone(), starts, cycle: t }
    }

    /// The aspect of `a` at time `t` (seconds from frame 0), and for amber the
    /// seconds of amber left.
    pub(crate) fn state(&self, a: Approach, t: f64) -> (SignalState, f64) {
        let pos = (t + self.plan.offset_s).rem_euclid(self.cycle);
        let i = self.starts.partition_point(|&s| s <= pos).max(1) - 1;
        let phase = &self.plan.phases[i];
        let next = &self.plan.phases[(i + 1) % self.plan.phases.len()];
        let (here, stays) = (phase.green.contains(&a), next.green.contains(&a));
        let local = pos - self.starts[i];
        if here && (local < phase.green_s || stays) {
            (SignalState::Green, 0.0)
        } else if here && local < phase.green_s + self.plan.amber_s {
            (SignalState::Amber, phase.green_s + self.plan.amber_s - local)
        } else {
            (SignalState::Red, 0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::PhaseSpec;

    #[test]
    fn two_phase_plan_aspects() {
        let t = SignalTimer::new(&SignalPlan::two_phase(20.0, 10.0));
        let n = Approach::North;
        assert_eq!(t.state(n, 0.0).0, SignalState::Green);
        assert_eq!(t.state(n, 19.9).0, SignalState::Green);
        let (s, left) = t.state(n, 21.0);
        assert_eq!(s, SignalState::Amber);
        assert!((left - 2.0).abs() < 1e-9);
        assert_eq!(t.state(n, 24.0).0, SignalState::Red);
        assert_eq!(t.state(Approach::East, 24.0).0, SignalState::Red, "all-red");
        assert_eq!(t.state(Approach::East, 25.0).0, SignalState::Green);
        assert_eq!(t.state(n, 40.0).0, SignalState::Green, "next cycle");
    }

    #[test]
    fn an_approach_green_in_consecutive_phases_sees_no_amber() {
        let plan = SignalPlan {
            phases: vec![
                PhaseSpec { green: vec![Approach::North], green_s: 10.0 },
                PhaseSpec { green: vec![Approach::North, Approach::East], green_s: 10.0 },
                PhaseSpec { green: vec![Approach::South], green_s: 10.0 },
            ],
            ..SignalPlan::default()
        };
        let t = SignalTimer::new(&plan);
        for x in [11.0, 14.0, 20.0] {
            assert_eq!(t.state(Approach::North, x).0, SignalState::Green, "{x}");
        }
        assert_eq!(t.state(Approach::North, 26.0).0, SignalState::Amber);
    }
}
