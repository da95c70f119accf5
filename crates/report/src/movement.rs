//! Movements by the compass: an approach's leg says where a vehicle came from,
//! the exit approach's leg where it went; the turn follows from the two.
//!
//! Conventions (as in Synchro's UTDF and most count programmes): a vehicle that
//! enters on the **south** leg travels **northbound** (NB), on the north leg SB,
//! on the west leg EB, on the east leg WB. Its movement is T (through: it leaves
//! by the opposite leg), R (right: the leg a quarter turn clockwise of its
//! heading), L (left) or U (U-turn: the leg it came by). Left and right are the
//! driver's, so they hold for left- and right-hand traffic alike.

use std::fmt;

use streetscope_contracts::config::CompassLeg;

/// What a driver does at the junction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Turn {
    U,
    L,
    T,
    R,
}

impl Turn {
    /// In UTDF's column order.
    pub const ALL: [Turn; 4] = [Turn::U, Turn::L, Turn::T, Turn::R];

    pub fn letter(self) -> &'static str {
        match self {
            Turn::U => "U",
            Turn::L => "L",
            Turn::T => "T",
            Turn::R => "R",
        }
    }
}

/// The turn of a vehicle that came in on leg `from` and left on leg `to`.
pub fn turn(from: CompassLeg, to: CompassLeg) -> Turn {
    // Heading on entry: away from the entry leg; the exit leg is where it heads last.
    let heading = (from.quarter() + 2) % 4;
    match (to.quarter() + 4 - heading) % 4 {
        0 => Turn::T,
        1 => Turn::R,
        2 => Turn::U,
        _ => Turn::L,
    }
}

/// The exit leg of a turn from leg `from`.
pub fn exit_leg(from: CompassLeg, t: Turn) -> CompassLeg {
    let heading = (from.quarter() + 2) % 4;
    let q = match t {
        Turn::T => heading,
        Turn::R => (heading + 1) % 4,
        Turn::U => (heading + 2) % 4,
        Turn::L => (heading + 3) % 4,
    };
    CompassLeg::ALL[q as usize]
}

/// The travel direction of traffic entering on `leg`: `NB` for the south leg.
pub fn bound(leg: CompassLeg) -> &'static str {
    match leg {
        CompassLeg::S => "NB",
        CompassLeg::N => "SB",
        CompassLeg::W => "EB",
        CompassLeg::E => "WB",
    }
}

/// The entry legs in UTDF's order: NB, SB, EB, WB.
pub const LEG_ORDER: [CompassLeg; 4] = [CompassLeg::S, CompassLeg::N, CompassLeg::W, CompassLeg::E];

/// One movement of an intersection: the entry leg and the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Movement {
    /// Position of the entry leg in [`LEG_ORDER`] (so that movements sort NB, SB, EB, WB).
    order: u8,
    pub turn: Turn,
}

impl Movement {
    pub fn new(leg: CompassLeg, turn: Turn) -> Self {
        let order = LEG_ORDER.iter().position(|l| *l == leg).unwrap_or(0) as u8;
        Self { order, turn }
    }

    /// The leg it enters on.
    pub fn leg(&self) -> CompassLeg {
        LEG_ORDER[self.order as usize]
    }

    /// E.g. `"NB"`.
    pub fn bound(&self) -> &'static str {
        bound(self.leg())
    }

    /// E.g. `"NBL"`: UTDF's column name.
    pub fn utdf(&self) -> String {
        format!("{}{}", self.bound(), self.turn.letter())
    }

    /// Parses `"NBL"`-style names.
    pub fn parse_utdf(s: &str) -> Option<Self> {
        let (b, t) = s.split_at_checked(2)?;
        let leg = LEG_ORDER.into_iter().find(|l| bound(*l) == b)?;
        let turn = Turn::ALL.into_iter().find(|x| x.letter() == t)?;
        Some(Self::new(leg, turn))
    }
}

impl fmt::Display for Movement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.utdf())
    }
}

/// Every movement between the legs an intersection has, in UTDF's order:
/// per entry leg (NB, SB, EB, WB) the turns U, L, T, R whose exit leg exists.
pub fn movements(legs: &[CompassLeg]) -> Vec<Movement> {
    let mut out = Vec::new();
    for leg in LEG_ORDER.into_iter().filter(|l| legs.contains(l)) {
        for t in Turn::ALL {
            if legs.contains(&exit_leg(leg, t)) {
                out.push(Movement::new(leg, t));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use CompassLeg::*;

    #[test]
    fn northbound_traffic_enters_on_the_south_leg() {
        assert_eq!(bound(S), "NB");
        assert_eq!(turn(S, N), Turn::T);
        assert_eq!(turn(S, E), Turn::R);
        assert_eq!(turn(S, W), Turn::L);
        assert_eq!(turn(S, S), Turn::U);
        // Westbound (from the east leg): left is south, right is north.
        assert_eq!((bound(E), turn(E, S), turn(E, N), turn(E, W)), ("WB", Turn::L, Turn::R, Turn::T));
        assert_eq!((bound(N), turn(N, E), turn(N, W)), ("SB", Turn::L, Turn::R));
        assert_eq!((bound(W), turn(W, N), turn(W, S)), ("EB", Turn::L, Turn::R));
        for from in CompassLeg::ALL {
            for to in CompassLeg::ALL {
                assert_eq!(exit_leg(from, turn(from, to)), to);
            }
        }
    }

    #[test]
    fn movements_of_a_four_way_and_a_tee() {
        let all: Vec<String> = movements(&CompassLeg::ALL).iter().map(|m| m.utdf()).collect();
        assert_eq!(all.len(), 16);
        assert_eq!(&all[..5], ["NBU", "NBL", "NBT", "NBR", "SBU"]);
        assert_eq!(all[15], "WBR");
        // A tee with no north leg: NB has U, L, R; SB has nothing; EB U, T, R; WB U, L, T.
        let tee: Vec<String> = movements(&[S, E, W]).iter().map(|m| m.utdf()).collect();
        assert_eq!(tee, ["NBU", "NBL", "NBR", "EBU", "EBT", "EBR", "WBU", "WBL", "WBT"]);
        for m in movements(&CompassLeg::ALL) {
            assert_eq!(Movement::parse_utdf(&m.utdf()), Some(m));
        }
        assert_eq!(Movement::parse_utdf("XBL"), None);
    }
}
