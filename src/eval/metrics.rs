//! Accuracy metrics from a confusion matrix.

use serde::Serialize;

/// Confusion matrix, `[reference][predicted]`, over class indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    k: usize,
    m: Vec<u64>,
}

/// Metrics of one method on held-out pixels.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Overall accuracy.
    pub oa: f64,
    /// Cohen's kappa.
    pub kappa: f64,
    /// Mean IoU over classes present in the reference.
    pub miou: f64,
    /// Per-class F1 by name (null where the class is absent from reference and prediction).
    pub f1: serde_json::Map<String, serde_json::Value>,
    /// Per-class precision by name.
    pub precision: serde_json::Map<String, serde_json::Value>,
    /// Per-class recall by name.
    pub recall: serde_json::Map<String, serde_json::Value>,
    /// Per-class IoU by name.
    pub iou: serde_json::Map<String, serde_json::Value>,
    /// Evaluated pixels.
    pub pixels: u64,
    /// Confusion matrix rows (reference) by columns (prediction), in class-table order.
    pub confusion: Vec<Vec<u64>>,
}

impl Confusion {
    /// Empty matrix for `k` classes.
    pub fn new(k: usize) -> Self {
        Confusion {
            k,
            m: vec![0; k * k],
        }
    }

    /// Counts one pixel.
    #[inline]
    pub fn add(&mut self, reference: usize, predicted: usize) {
        self.m[reference * self.k + predicted] += 1;
    }

    /// A matrix from its `k` x `k` counts (reference-major).
    pub fn from_counts(k: usize, m: Vec<u64>) -> Self {
        assert_eq!(m.len(), k * k, "a {k} x {k} matrix");
        Confusion { k, m }
    }

    /// Counts `n` pixels of one (reference, predicted) pair.
    pub fn add_n(&mut self, reference: usize, predicted: usize, n: u64) {
        self.m[reference * self.k + predicted] += n;
    }

    /// Adds another matrix.
    pub fn merge(&mut self, o: &Confusion) {
        for (a, b) in self.m.iter_mut().zip(&o.m) {
            *a += b;
        }
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.m.iter().sum()
    }

    fn at(&self, r: usize, p: usize) -> u64 {
        self.m[r * self.k + p]
    }

    /// Computes the metrics; `names` are the class names in index order.
    pub fn metrics(&self, names: &[String]) -> Metrics {
        let k = self.k;
        let n = self.total() as f64;
        let diag: u64 = (0..k).map(|i| self.at(i, i)).sum();
        let row = |i: usize| (0..k).map(|j| self.at(i, j)).sum::<u64>() as f64;
        let col = |j: usize| (0..k).map(|i| self.at(i, j)).sum::<u64>() as f64;
        let oa = if n > 0.0 { diag as f64 / n } else { 0.0 };
        let pe = if n > 0.0 {
            (0..k).map(|i| row(i) * col(i)).sum::<f64>() / (n * n)
        } else {
            0.0
        };
        let kappa = if pe < 1.0 {
            (oa - pe) / (1.0 - pe)
        } else {
            0.0
        };
        let (mut f1, mut precision, mut recall, mut iou) = Default::default();
        let mut ious = Vec::new();
        let put =
            |m: &mut serde_json::Map<String, serde_json::Value>, name: &str, v: Option<f64>| {
                m.insert(
                    name.to_string(),
                    v.map_or(serde_json::Value::Null, |x| serde_json::json!(x)),
                );
            };
        for (i, name) in names.iter().enumerate().take(k) {
            let tp = self.at(i, i) as f64;
            let (r, c) = (row(i), col(i));
            let p = (c > 0.0).then(|| tp / c);
            let rc = (r > 0.0).then(|| tp / r);
            let f = (r + c > 0.0).then(|| 2.0 * tp / (r + c));
            let io = (r > 0.0).then(|| tp / (r + c - tp));
            if let Some(v) = io {
                ious.push(v);
            }
            put(&mut f1, name, f);
            put(&mut precision, name, p);
            put(&mut recall, name, rc);
            put(&mut iou, name, io);
        }
        let miou = if ious.is_empty() {
            0.0
        } else {
            ious.iter().sum::<f64>() / ious.len() as f64
        };
        Metrics {
            oa,
            kappa,
            miou,
            f1,
            precision,
            recall,
            iou,
            pixels: self.total(),
            confusion: (0..k)
                .map(|i| (0..k).map(|j| self.at(i, j)).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_confusion_metrics() {
        // ref\pred: [[40, 10], [5, 45]]
        let mut c = Confusion::new(2);
        for _ in 0..40 {
            c.add(0, 0);
        }
        for _ in 0..10 {
            c.add(0, 1);
        }
        for _ in 0..5 {
            c.add(1, 0);
        }
        for _ in 0..45 {
            c.add(1, 1);
        }
        let m = c.metrics(&["a".into(), "b".into()]);
        assert!((m.oa - 0.85).abs() < 1e-12);
        // pe = (50*45 + 50*55) / 100^2 = 0.5; kappa = (0.85-0.5)/0.5 = 0.7
        assert!((m.kappa - 0.7).abs() < 1e-12);
        let iou_a = 40.0 / 55.0;
        let iou_b = 45.0 / 60.0;
        assert!((m.miou - (iou_a + iou_b) / 2.0).abs() < 1e-12);
        assert!((m.f1["a"].as_f64().unwrap() - 80.0 / 95.0).abs() < 1e-12);
    }

    #[test]
    fn absent_class_is_null_not_zero() {
        let mut c = Confusion::new(3);
        c.add(0, 0);
        c.add(1, 1);
        let m = c.metrics(&["a".into(), "b".into(), "c".into()]);
        assert!(m.f1["c"].is_null());
        assert_eq!(m.miou, 1.0);
    }
}
