//! Choosing a member under contention: one shared round robin picked from
//! 1, 2 and 4 threads at once, with one of four members ineligible (so a
//! pick sometimes takes a second turn), in picks per second.
//!
//! Run: `cargo bench --bench balance -- --warm-up-time 1 --measurement-time 3`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use casarray::upstream::selection::round_robin::RoundRobin;

fn pick(c: &mut Criterion) {
    let rr = RoundRobin::new(&[1, 1, 2, 1]);
    let down = 1;
    let mut g = c.benchmark_group("balance_pick");
    g.throughput(Throughput::Elements(1));
    for threads in [1usize, 2, 4] {
        g.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &t| {
            b.iter_custom(|iters| picks(&rr, down, t, iters));
        });
    }
    g.finish();
}

/// `iters` picks shared among `threads` threads; the wall time of all.
fn picks(rr: &RoundRobin, down: usize, threads: usize, iters: u64) -> Duration {
    let per = iters.div_ceil(threads as u64);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut sum = 0usize;
                for _ in 0..per {
                    let m = rr.pick(|m| m != down, &[]);
                    sum = sum.wrapping_add(m.unwrap_or(usize::MAX));
                }
                std::hint::black_box(sum)
            });
        }
    });
    started.elapsed()
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = pick
}
criterion_main!(benches);
