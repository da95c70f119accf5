//! Optimal assignment of detections to tracks.
//!
//! [`assign`] takes a gain for every allowed (row, column) pair (the tracker's
//! gains are IoU above its gate) and returns a matching of maximum total gain, each
//! row and column used at most once. Pairs that are not allowed are never matched.
//!
//! The solver is `pathfinding`'s Kuhn–Munkres (Hungarian) algorithm on integer
//! weights (gains scaled by [`SCALE`] and rounded, so ties are exact ties rather
//! than float noise). Before solving, the pairs are split into connected
//! components: in traffic most tracks overlap one detection and nothing else, so
//! most components are a single pair and the O(n³) solver only ever sees the
//! small clusters of vehicles close together. Each component's matrix is
//! transposed when it has more rows than columns (the solver wants rows ≤
//! columns). Not-allowed cells weigh 0 and a match on one is dropped; with
//! non-negative weights that drops nothing of the optimum.
//!
//! Ties: the result is a function of the input alone (no hashing, no
//! randomness), the same on every run and platform; among optimal matchings the
//! solver's own order decides.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Gains are multiplied by this and rounded to integers.
pub const SCALE: f64 = 1e6;

/// One allowed pair and its gain (> 0 is useful; ≤ 0 is never matched).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub row: usize,
    pub col: usize,
    pub gain: f64,
}

/// A maximum-gain matching of `rows` x `cols` over `candidates`: `(row, col)`
/// pairs sorted by row. Duplicate candidates keep their highest gain.
pub fn assign(rows: usize, cols: usize, candidates: &[Candidate]) -> Vec<(usize, usize)> {
    let weight = |g: f64| (g * SCALE).round().clamp(0.0, i32::MAX as f64) as i64;
    let cands: Vec<Candidate> =
        candidates.iter().copied().filter(|c| c.row < rows && c.col < cols && weight(c.gain) > 0).collect();
    if cands.is_empty() {
        return Vec::new();
    }
    // Connected components over rows and columns (union-find; columns offset by `rows`).
    let mut parent: Vec<usize> = (0..rows + cols).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for c in &cands {
        let (a, b) = (find(&mut parent, c.row), find(&mut parent, rows + c.col));
        if a != b {
            // The smaller root wins, so components are labelled the same way every time.
            let (lo, hi) = (a.min(b), a.max(b));
            parent[hi] = lo;
        }
    }
    // Candidates by component, in order of their root; each component is a run
    // of `order`.
    let root_of: Vec<usize> = cands.iter().map(|c| find(&mut parent, c.row)).collect();
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by_key(|&i| (root_of[i], cands[i].row, cands[i].col));

    let mut out = Vec::new();
    for run in order.chunk_by(|&a, &b| root_of[a] == root_of[b]) {
        if let [only] = run {
            out.push((cands[*only].row, cands[*only].col));
            continue;
        }
        let g = run.iter().map(|&i| &cands[i]);
        let mut rs: Vec<usize> = g.clone().map(|c| c.row).collect();
        let mut cs: Vec<usize> = g.clone().map(|c| c.col).collect();
        rs.sort_unstable();
        rs.dedup();
        cs.sort_unstable();
        cs.dedup();
        let transpose = rs.len() > cs.len();
        let (n, m) = if transpose { (cs.len(), rs.len()) } else { (rs.len(), cs.len()) };
        let mut w = Matrix::new(n, m, 0i64);
        for c in g {
            let (i, j) = (rs.binary_search(&c.row).expect("listed"), cs.binary_search(&c.col).expect("listed"));
            let (i, j) = if transpose { (j, i) } else { (i, j) };
            w[(i, j)] = w[(i, j)].max(weight(c.gain));
        }
        let (_, cols_of_rows) = kuhn_munkres(&w);
        for (i, &j) in cols_of_rows.iter().enumerate() {
            if w[(i, j)] > 0 {
                out.push(if transpose { (rs[j], cs[i]) } else { (rs[i], cs[j]) });
            }
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(row: usize, col: usize, gain: f64) -> Candidate {
        Candidate { row, col, gain }
    }

    fn total(cands: &[Candidate], m: &[(usize, usize)]) -> f64 {
        m.iter().map(|&(r, k)| cands.iter().find(|c| (c.row, c.col) == (r, k)).unwrap().gain).sum()
    }

    /// Every matching by brute force: the best total.
    fn best(rows: usize, cols: usize, cands: &[Candidate]) -> f64 {
        fn go(r: usize, rows: usize, used: &mut Vec<bool>, cands: &[Candidate]) -> f64 {
            if r == rows {
                return 0.0;
            }
            let mut b = go(r + 1, rows, used, cands);
            for c in cands.iter().filter(|c| c.row == r && c.gain > 0.0) {
                if !used[c.col] {
                    used[c.col] = true;
                    b = b.max(c.gain + go(r + 1, rows, used, cands));
                    used[c.col] = false;
                }
            }
            b
        }
        go(0, rows, &mut vec![false; cols], cands)
    }

    #[test]
    fn greedy_is_not_optimal_here_but_the_solver_is() {
        // Greedy takes (0,0) = 0.9 and leaves row 1 with nothing: 0.9.
        // The optimum is (0,1) + (1,0) = 0.8 + 0.7 = 1.5.
        let cands = [c(0, 0, 0.9), c(0, 1, 0.8), c(1, 0, 0.7)];
        assert_eq!(assign(2, 2, &cands), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn ties_give_an_optimal_and_repeatable_matching() {
        // Every pair weighs the same: any perfect matching is optimal; it must be
        // perfect, and the same every time.
        let cands: Vec<Candidate> = (0..3).flat_map(|r| (0..3).map(move |k| c(r, k, 0.5))).collect();
        let m = assign(3, 3, &cands);
        assert_eq!(m.len(), 3);
        assert_eq!(total(&cands, &m), 1.5);
        for _ in 0..5 {
            assert_eq!(assign(3, 3, &cands), m);
        }
        // Two rows tied on one column, one of them with a second choice: both matched.
        let cands = [c(0, 0, 0.6), c(1, 0, 0.6), c(1, 1, 0.6)];
        assert_eq!(assign(2, 2, &cands), vec![(0, 0), (1, 1)]);
        // Gains that differ by less than the scale's resolution are ties.
        let cands = [c(0, 0, 0.5), c(0, 1, 0.5 + 1e-9)];
        assert_eq!(assign(1, 2, &cands).len(), 1);
    }

    #[test]
    fn rectangular_both_ways() {
        // More columns than rows.
        let cands = [c(0, 0, 0.3), c(0, 1, 0.9), c(0, 2, 0.4), c(1, 1, 0.8), c(1, 2, 0.1)];
        let m = assign(2, 3, &cands);
        // (0,2) + (1,1) = 1.2 beats (0,0) + (1,1) = 1.1 and (0,1) + (1,2) = 1.0.
        assert_eq!(m, vec![(0, 2), (1, 1)]);
        assert!((total(&cands, &m) - best(2, 3, &cands)).abs() < 1e-9);
        // More rows than columns (the transposed case).
        let cands = [c(0, 0, 0.5), c(1, 0, 0.9), c(2, 0, 0.7), c(2, 1, 0.6), c(3, 1, 0.2)];
        let m = assign(4, 2, &cands);
        assert_eq!(m, vec![(1, 0), (2, 1)]);
        assert!((total(&cands, &m) - best(4, 2, &cands)).abs() < 1e-9);
    }

    #[test]
    fn pairs_not_allowed_are_never_matched() {
        // Row 1 has no allowed pair; row 0 one with no gain: nothing for either.
        let cands = [c(0, 0, 0.0), c(2, 1, 0.4), c(0, 1, -0.3)];
        assert_eq!(assign(3, 2, &cands), vec![(2, 1)]);
        assert!(assign(0, 5, &[]).is_empty());
        assert!(assign(5, 0, &[]).is_empty());
        // Out-of-range candidates are ignored.
        assert!(assign(1, 1, &[c(1, 0, 0.9), c(0, 3, 0.9)]).is_empty());
    }

    #[test]
    fn separate_clusters_are_solved_each_optimally() {
        let cands = [
            c(0, 0, 0.9),
            c(0, 1, 0.8),
            c(1, 0, 0.7), // cluster A: optimum (0,1) (1,0)
            c(2, 5, 0.5), // alone
            c(3, 3, 0.4),
            c(4, 3, 0.6),
            c(4, 4, 0.5),
            c(3, 4, 0.1), // cluster B: (3,3)+(4,4) = 0.9 beats (4,3)+(3,4) = 0.7
        ];
        assert_eq!(assign(5, 6, &cands), vec![(0, 1), (1, 0), (2, 5), (3, 3), (4, 4)]);
    }

    #[test]
    fn matches_brute_force_on_many_small_problems() {
        // A small deterministic generator; gains on a coarse grid make many ties.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..500 {
            let rows = (next() % 5) as usize + 1;
            let cols = (next() % 5) as usize + 1;
            let mut cands = Vec::new();
            for r in 0..rows {
                for k in 0..cols {
                    if next() % 3 != 0 {
                        cands.push(c(r, k, (next() % 5) as f64 / 4.0));
                    }
                }
            }
            let m = assign(rows, cols, &cands);
            let mut seen_r = vec![false; rows];
            let mut seen_c = vec![false; cols];
            for &(r, k) in &m {
                assert!(!seen_r[r] && !seen_c[k], "row or column used twice: {m:?}");
                (seen_r[r], seen_c[k]) = (true, true);
                assert!(cands.iter().any(|x| (x.row, x.col) == (r, k) && x.gain > 0.0));
            }
            let got = total(&cands, &m);
            let want = best(rows, cols, &cands);
            assert!((got - want).abs() < 1e-9, "{rows}x{cols} {cands:?}: got {got}, best {want}");
        }
    }
}
