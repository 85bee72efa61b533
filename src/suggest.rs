//! Where to label next: the most useful pixels of a run's products, ranked by an uncertainty
//! band, spread in space and optionally balanced across the predicted classes. Pure: the
//! caller reads the bands and writes the points.

use std::collections::HashMap;

use crate::rng::mix64;

/// What ranks the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Epistemic uncertainty (what the model never saw).
    Epistemic,
    /// Total uncertainty (entropy of the mean probabilities).
    Total,
    /// Least confidence: 1 - the highest class probability.
    LeastConfidence,
    /// Smallest margin between the two highest class probabilities (products need the
    /// `margin` band, `[product] margin = true`).
    Margin,
    /// Uniform random order (the baseline an active-learning study compares against).
    Random,
    /// Highest confidence first: candidate training samples labelled by the model itself
    /// (sits' confidence sampling), never reference data.
    Confident,
}

impl Rank {
    /// Every rank and its command-line name.
    pub const ALL: [(Rank, &'static str); 6] = [
        (Rank::Epistemic, "epistemic"),
        (Rank::Total, "total"),
        (Rank::LeastConfidence, "least-confidence"),
        (Rank::Margin, "margin"),
        (Rank::Random, "random"),
        (Rank::Confident, "confident"),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Rank::ALL
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("", |(_, n)| n)
    }
}

/// One scene's bands, row-major, `width` x `height`.
pub struct SceneBands {
    /// Width in pixels.
    pub width: usize,
    /// Class index per pixel (`u8::MAX` where there is no prediction).
    pub class: Vec<u8>,
    /// Ranking byte per pixel (higher = more useful); ignored where not `usable`.
    pub score: Vec<u8>,
    /// Pixels that may be suggested (predicted and outside the reference data).
    pub usable: Vec<bool>,
    /// The minimum distance between two suggestions, in pixels of this scene.
    pub min_distance: f64,
}

/// A suggested pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Scene index.
    pub scene: usize,
    /// Row.
    pub row: usize,
    /// Column.
    pub col: usize,
}

/// Number of usable pixels over every scene.
pub fn candidates(scenes: &[SceneBands]) -> usize {
    scenes
        .iter()
        .map(|s| s.usable.iter().filter(|&&u| u).count())
        .sum()
}

/// Usable pixels in ranking order: score descending, ties in a seeded random order.
fn ranked(scenes: &[SceneBands], seed: u64) -> Vec<(u8, u64, u32, u32)> {
    let mut v: Vec<(u8, u64, u32, u32)> = Vec::new();
    for (si, s) in scenes.iter().enumerate() {
        for (i, _) in s.usable.iter().enumerate().filter(|(_, &u)| u) {
            let key = mix64(seed ^ mix64(((si as u64) << 40) ^ i as u64));
            v.push((s.score[i], key, si as u32, i as u32));
        }
    }
    v.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    v
}

/// The accepted (row, col) picks of one scene by cell of the minimum distance.
type Cells = HashMap<(i64, i64), Vec<(usize, usize)>>;

/// Accepted picks of each scene, hashed by cell of the minimum distance.
struct Spacing {
    cells: Vec<Cells>,
}

impl Spacing {
    fn far_enough(&self, s: &SceneBands, si: usize, (r, c): (usize, usize)) -> bool {
        let d = s.min_distance;
        if d <= 0.0 {
            return true;
        }
        let cell = ((r as f64 / d) as i64, (c as f64 / d) as i64);
        for dy in -1..=1 {
            for dx in -1..=1 {
                let Some(ps) = self.cells[si].get(&(cell.0 + dy, cell.1 + dx)) else {
                    continue;
                };
                let near = ps.iter().any(|&(pr, pc)| {
                    let (a, b) = (pr as f64 - r as f64, pc as f64 - c as f64);
                    a * a + b * b < d * d
                });
                if near {
                    return false;
                }
            }
        }
        true
    }

    fn add(&mut self, s: &SceneBands, si: usize, (r, c): (usize, usize)) {
        let d = s.min_distance.max(1.0);
        let cell = ((r as f64 / d) as i64, (c as f64 / d) as i64);
        self.cells[si].entry(cell).or_default().push((r, c));
    }
}

/// The `n` most useful pixels: in ranking order, each at least its scene's minimum distance
/// from every earlier pick; with `per_class` (K classes) at most ceil(n / K) of one predicted
/// class until every class had its turn, then the best of the rest. Fewer than `n` when the
/// spacing leaves too few.
pub fn select(scenes: &[SceneBands], n: usize, per_class: Option<usize>, seed: u64) -> Vec<Pick> {
    let order = ranked(scenes, seed);
    let mut spacing = Spacing {
        cells: vec![HashMap::new(); scenes.len()],
    };
    let mut picks = Vec::with_capacity(n);
    let mut taken = vec![false; order.len()];
    let quota = per_class.map(|k| n.div_ceil(k.max(1)));
    let mut per = vec![0usize; 256];
    for pass in 0..2 {
        for (j, &(_, _, si, i)) in order.iter().enumerate() {
            if picks.len() == n {
                return picks;
            }
            let (si, i) = (si as usize, i as usize);
            let s = &scenes[si];
            let cls = s.class[i] as usize;
            if taken[j] || (pass == 0 && quota.is_some_and(|q| per[cls] >= q)) {
                continue;
            }
            let rc = (i / s.width, i % s.width);
            if !spacing.far_enough(s, si, rc) {
                continue;
            }
            spacing.add(s, si, rc);
            taken[j] = true;
            per[cls] += 1;
            picks.push(Pick {
                scene: si,
                row: rc.0,
                col: rc.1,
            });
        }
        if quota.is_none() {
            break;
        }
    }
    picks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(w: usize, h: usize, score: impl Fn(usize, usize) -> u8, d: f64) -> SceneBands {
        SceneBands {
            width: w,
            class: (0..w * h).map(|i| (i % w < w / 2) as u8).collect(),
            score: (0..w * h).map(|i| score(i / w, i % w)).collect(),
            usable: vec![true; w * h],
            min_distance: d,
        }
    }

    #[test]
    fn picks_the_highest_scores_first() {
        let s = scene(10, 10, |r, c| (r * 10 + c) as u8, 0.0);
        let p = select(&[s], 3, None, 1);
        let idx: Vec<usize> = p.iter().map(|p| p.row * 10 + p.col).collect();
        assert_eq!(idx, [99, 98, 97]);
    }

    #[test]
    fn keeps_the_minimum_distance() {
        let s = scene(20, 20, |_, _| 7, 5.0);
        let p = select(&[s], 10, None, 3);
        assert_eq!(p.len(), 10);
        for a in &p {
            for b in &p {
                let d2 =
                    (a.row as f64 - b.row as f64).powi(2) + (a.col as f64 - b.col as f64).powi(2);
                assert!(a == b || d2 >= 25.0, "{a:?} {b:?}");
            }
        }
        // A distance that leaves room for fewer than asked gives fewer.
        let s = scene(4, 4, |_, _| 1, 10.0);
        assert_eq!(select(&[s], 3, None, 3).len(), 1);
    }

    #[test]
    fn skips_unusable_pixels_and_balances_classes() {
        let mut s = scene(10, 10, |_, c| if c >= 5 { 200 } else { 10 }, 0.0);
        s.usable[99] = false;
        let p = select(std::slice::from_ref(&s), 4, None, 5);
        assert!(p.iter().all(|p| p.col >= 5 && p.row * 10 + p.col != 99));
        // Balanced: two of each predicted class although class 0 scores lower.
        let p = select(std::slice::from_ref(&s), 4, Some(2), 5);
        let zeros = p
            .iter()
            .filter(|p| s.class[p.row * 10 + p.col] == 1)
            .count();
        assert_eq!(zeros, 2, "{p:?}");
    }

    #[test]
    fn the_seed_changes_only_the_order_of_ties() {
        let s = scene(10, 10, |_, _| 3, 0.0);
        let a = select(std::slice::from_ref(&s), 5, None, 1);
        assert_eq!(a, select(std::slice::from_ref(&s), 5, None, 1));
        assert_ne!(a, select(std::slice::from_ref(&s), 5, None, 2));
    }
}
