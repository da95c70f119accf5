//! Level of service from control delay (HCM): signalised A ≤ 10 s, B ≤ 20,
//! C ≤ 35, D ≤ 55, E ≤ 80, F above; stop-controlled A ≤ 10, B ≤ 15, C ≤ 25,
//! D ≤ 35, E ≤ 50, F above. A boundary value belongs to the better level.

use crate::config::Control;

/// The level of service of a mean control delay, seconds per vehicle.
pub fn los(delay_s: f64, control: Control) -> char {
    let limits: [f64; 5] = match control {
        Control::Signalised => [10.0, 20.0, 35.0, 55.0, 80.0],
        Control::Stop => [10.0, 15.0, 25.0, 35.0, 50.0],
    };
    limits.iter().position(|&l| delay_s <= l).map_or('F', |i| (b'A' + i as u8) as char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_belong_to_the_better_level() {
        let sig = [(0.0, 'A'), (10.0, 'A'), (10.01, 'B'), (20.0, 'B'), (20.01, 'C'), (35.0, 'C'), (35.01, 'D')];
        let sig2 = [(55.0, 'D'), (55.01, 'E'), (80.0, 'E'), (80.01, 'F'), (300.0, 'F')];
        for (d, l) in sig.into_iter().chain(sig2) {
            assert_eq!(los(d, Control::Signalised), l, "signalised {d}");
        }
        let stop = [(10.0, 'A'), (10.01, 'B'), (15.0, 'B'), (15.01, 'C'), (25.0, 'C'), (25.01, 'D'), (35.0, 'D')];
        let stop2 = [(35.01, 'E'), (50.0, 'E'), (50.01, 'F')];
        for (d, l) in stop.into_iter().chain(stop2) {
            assert_eq!(los(d, Control::Stop), l, "stop {d}");
        }
    }
}
