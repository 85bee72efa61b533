//! Majority vote of class labels in a disc, as Orfeo ToolBox's ClassificationMapRegularization
//! does it: the disc holds the offsets with dy² + dx² <= (r + 1/2)² (the centre included);
//! neighbours outside the array, nodata or excluded do not vote; a tie keeps the pixel's own
//! class. Pure kernel.

use ndarray::{Array2, ArrayView2};

/// The disc's offsets for radius `r`.
pub fn disc(r: usize) -> Vec<(isize, isize)> {
    let r = r as isize;
    let lim = (r as f64 + 0.5).powi(2);
    let mut o = Vec::new();
    for dy in -r..=r {
        for dx in -r..=r {
            if ((dy * dy + dx * dx) as f64) <= lim {
                o.push((dy, dx));
            }
        }
    }
    o
}

/// The majority class index of each pixel of the `h` x `w` core at (`r0`, `c0`) of `classes`
/// (class indices; `usize::MAX` where there is no prediction), voting only among `valid`
/// pixels; a pixel that is not valid keeps its value.
pub fn majority(
    classes: ArrayView2<usize>,
    valid: ArrayView2<bool>,
    k: usize,
    radius: usize,
    (r0, c0): (usize, usize),
    (h, w): (usize, usize),
) -> Array2<usize> {
    let (hh, ww) = classes.dim();
    let offsets = disc(radius);
    let mut counts = vec![0u32; k];
    Array2::from_shape_fn((h, w), |(r, c)| {
        let (rr, cc) = (r0 + r, c0 + c);
        let own = classes[[rr, cc]];
        if !valid[[rr, cc]] || own >= k {
            return own;
        }
        counts.iter_mut().for_each(|n| *n = 0);
        for &(dy, dx) in &offsets {
            let (y, x) = (rr as isize + dy, cc as isize + dx);
            if y < 0 || x < 0 || y >= hh as isize || x >= ww as isize {
                continue;
            }
            let (y, x) = (y as usize, x as usize);
            if valid[[y, x]] && classes[[y, x]] < k {
                counts[classes[[y, x]]] += 1;
            }
        }
        let best = counts.iter().copied().max().unwrap_or(0);
        let mut winners = counts.iter().enumerate().filter(|(_, &n)| n == best);
        match (winners.next(), winners.next()) {
            (Some((j, _)), None) => j,
            _ => own,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disc_of_radius_one_is_the_full_square() {
        assert_eq!(disc(1).len(), 9);
        // Radius 2: 5 x 5 less its four corners.
        assert_eq!(disc(2).len(), 21);
        assert!(!disc(2).contains(&(2, 2)));
    }

    #[test]
    fn isolated_pixels_follow_their_neighbours_and_ties_keep_their_class() {
        let classes = Array2::from_shape_vec((3, 3), vec![0, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
        let valid = Array2::from_elem((3, 3), true);
        let m = majority(classes.view(), valid.view(), 2, 1, (0, 0), (3, 3));
        assert_eq!(m[[1, 1]], 0);
        // Corner (0, 0) sees 4 pixels: three 0 and the 1: stays 0. A tie keeps the own class.
        let tie = Array2::from_shape_vec((2, 2), vec![0, 1, 1, 0]).unwrap();
        let v2 = Array2::from_elem((2, 2), true);
        let m = majority(tie.view(), v2.view(), 2, 1, (0, 0), (2, 2));
        assert_eq!(m, tie);
    }

    #[test]
    fn invalid_pixels_do_not_vote() {
        let classes = Array2::from_shape_vec((1, 3), vec![1, 0, 1]).unwrap();
        let mut valid = Array2::from_elem((1, 3), true);
        let m = majority(classes.view(), valid.view(), 2, 1, (0, 0), (1, 3));
        assert_eq!(m[[0, 1]], 1);
        valid[[0, 2]] = false;
        let m = majority(classes.view(), valid.view(), 2, 1, (0, 0), (1, 3));
        // 1 and 0 tie: the pixel keeps 0; the invalid pixel keeps its value.
        assert_eq!((m[[0, 1]], m[[0, 2]]), (0, 1));
    }
}
