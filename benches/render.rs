//! Render benchmarks: warm renders (renderer reused, fresh data each
//! iteration so Typst's caches cannot short-circuit) and cold start.
//! Run: `cargo bench --bench render -- --warm-up-time 2 --measurement-time 5`

#[path = "../tests/support/report_data.rs"]
mod report_data;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use leadchat::report::{ReportRenderer, default_fonts_dir};

fn bench_render(c: &mut Criterion) {
    let renderer = ReportRenderer::new(None, &default_fonts_dir()).expect("renderer");
    for n in [200usize, 10] {
        let mut salt = 0u64;
        c.bench_function(&format!("render_{n}_messages_warm"), |b| {
            b.iter_batched(
                || {
                    salt += 1;
                    report_data::report(n, salt)
                },
                |data| renderer.render(&data).expect("render"),
                BatchSize::SmallInput,
            )
        });
    }

    let mut group = c.benchmark_group("cold");
    group.sample_size(10);
    group.bench_function("new_plus_first_render_10_messages", |b| {
        b.iter(|| {
            // Clear Typst's global memo cache so this really is a cold start.
            comemo::evict(0);
            let r = ReportRenderer::new(None, &default_fonts_dir()).expect("renderer");
            r.render(&report_data::report(10, 0)).expect("render")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
