//! Work items computed in parallel and consumed in order.
//!
//! Every worker of rayon's pool takes the next item in order, computes it with its own state
//! (a reader, say), and whichever worker completes the item next in line hands it, and every
//! completed item after it, to the consumer. So the consumer sees items in order (a file's
//! blocks land where they would on one thread) while writing overlaps computing, with no
//! barrier between batches. Workers stay at most [`AHEAD`] items per worker ahead of the
//! consumer, which bounds the items held in memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{lock, Error, Result};

/// Items per worker that may be computed ahead of the consumer.
const AHEAD: usize = 4;

/// Shared state of one [`in_order`] run.
struct Run<T, W> {
    /// The next item to hand out.
    next: AtomicUsize,
    /// Items consumed so far (the next to consume).
    consumed: AtomicUsize,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    /// Completed items not yet consumed.
    ready: Mutex<BTreeMap<usize, T>>,
    sink: Mutex<W>,
}

impl<T, W: FnMut(usize, T) -> Result<()>> Run<T, W> {
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::SeqCst);
        if let Ok(mut first) = self.error.lock() {
            first.get_or_insert(e);
        }
    }

    /// The next item in line, if completed.
    fn pop_next(&self) -> Result<Option<(usize, T)>> {
        let k = self.consumed.load(Ordering::SeqCst);
        Ok(lock(&self.ready)?.remove(&k).map(|t| (k, t)))
    }

    /// Consumes completed items in order while the next in line is ready. A worker that
    /// finds another draining leaves it to that one, which checks again after it lets go.
    fn drain(&self) -> Result<()> {
        loop {
            let Ok(mut sink) = self.sink.try_lock() else {
                return Ok(());
            };
            while let Some((k, t)) = self.pop_next()? {
                (*sink)(k, t)?;
                self.consumed.store(k + 1, Ordering::SeqCst);
            }
            drop(sink);
            let k = self.consumed.load(Ordering::SeqCst);
            if !lock(&self.ready)?.contains_key(&k) {
                return Ok(());
            }
        }
    }

    /// One worker: takes items in order until none are left or a worker failed.
    fn work<S>(
        &self,
        n: usize,
        ahead: usize,
        init: &(impl Fn() -> Result<S> + Sync),
        compute: &(impl Fn(&mut S, usize) -> Result<T> + Sync),
    ) {
        let mut state = match init() {
            Ok(s) => s,
            Err(e) => return self.fail(e),
        };
        while !self.failed.load(Ordering::SeqCst) {
            let k = self.next.fetch_add(1, Ordering::SeqCst);
            if k >= n {
                return;
            }
            // The worker holding the oldest item never waits, so this cannot deadlock.
            while k >= self.consumed.load(Ordering::SeqCst) + ahead
                && !self.failed.load(Ordering::SeqCst)
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let done = compute(&mut state, k).and_then(|t| {
                lock(&self.ready)?.insert(k, t);
                self.drain()
            });
            if let Err(e) = done {
                self.fail(e);
            }
        }
    }
}

/// Computes items `0..n` in parallel (`compute(state, k)`, each worker with its own `init()`
/// state) and passes each to `consume(k, item)` in order of `k`. The first error stops the
/// workers taking new items and is returned.
pub fn in_order<S, T, I, C, W>(n: usize, init: I, compute: C, consume: W) -> Result<()>
where
    T: Send,
    I: Fn() -> Result<S> + Sync,
    C: Fn(&mut S, usize) -> Result<T> + Sync,
    W: FnMut(usize, T) -> Result<()> + Send,
{
    let workers = rayon::current_num_threads().max(1);
    let run = Run {
        next: AtomicUsize::new(0),
        consumed: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        ready: Mutex::new(BTreeMap::new()),
        sink: Mutex::new(consume),
    };
    rayon::broadcast(|_| run.work(n, AHEAD * workers, &init, &compute));
    if let Some(e) = run.error.into_inner().ok().flatten() {
        return Err(e);
    }
    let consumed = run.consumed.load(Ordering::SeqCst);
    if consumed != n {
        return Err(Error::Internal(format!("{consumed} of {n} items consumed")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_consumed_in_order_whatever_finishes_first() {
        // Items of uneven cost on 3 workers: the consumer still sees 0, 1, 2, ...
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut seen = Vec::new();
        pool.install(|| {
            in_order(
                60,
                || Ok(0u64),
                |calls, k| {
                    *calls += 1;
                    std::thread::sleep(std::time::Duration::from_micros((k % 7) as u64 * 300));
                    Ok(k * 10)
                },
                |k, v| {
                    assert_eq!(v, k * 10);
                    seen.push(k);
                    Ok(())
                },
            )
        })
        .unwrap();
        assert_eq!(seen, (0..60).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_stops_the_run() {
        for failing_consumer in [false, true] {
            let r = in_order(
                50,
                || Ok(()),
                |_, k| {
                    if k == 20 && !failing_consumer {
                        Err(Error::Internal("tile 20".into()))
                    } else {
                        Ok(k)
                    }
                },
                |k, _| {
                    if k == 30 && failing_consumer {
                        Err(Error::Internal("write 30".into()))
                    } else {
                        Ok(())
                    }
                },
            );
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains(if failing_consumer {
                    "write 30"
                } else {
                    "tile 20"
                }),
                "{e}"
            );
        }
    }
}
