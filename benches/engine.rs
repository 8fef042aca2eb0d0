//! Criterion benches of the engine alone (no I/O): per line kind, clean vs
//! hit lines, built-in library vs the 14-rule reference set, and a whole
//! corpus chunk. `cargo bench --bench engine`; results in target/criterion.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redactd::engine::{CompileOptions, Ruleset, Scratch, Source, Stats, spec::builtin_sources};

fn builtin() -> Ruleset {
    Ruleset::compile(&builtin_sources(), &CompileOptions::default())
        .expect("built-in rules compile")
}

fn reference() -> Ruleset {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ruleset-reference.toml");
    Ruleset::compile(
        &Source::read_path(&p).expect("read reference"),
        &CompileOptions::default(),
    )
    .expect("reference compiles")
}

const LINES: &[(&str, &str)] = &[
    (
        "json_clean",
        r#"{"timestamp":"2024-05-14T08:00:01.123456Z","level":"INFO","service":"checkout-api","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","request":{"method":"GET","path":"/api/v2/orders/1234567","status":200},"user":{"id":4242,"role":"member","org_id":77},"duration_ms":12.5,"message":"order 1234567 created with 3 items"}"#,
    ),
    (
        "json_hit",
        r#"{"timestamp":"2024-05-14T08:00:01.123456Z","level":"INFO","service":"auth","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","request":{"method":"POST","path":"/login","headers":{"authorization":"Bearer 8fJ2kL9mQ4rT7vX1zB5nC3dE"}},"user":{"id":4242,"email":"ann.lee@example.com"},"message":"login ok"}"#,
    ),
    (
        "text_clean",
        r#"2024-05-14 08:00:01.123 ERROR 1 --- [nio-8080-exec-3] c.e.shop.web.OrderController : Request processing failed; nested exception is java.lang.IllegalStateException: Cannot process order 9876543 in state CANCELLED\n\tat com.example.shop.order.OrderService.process(OrderService.java:123)"#,
    ),
    (
        "text_hit",
        r#"198.51.100.23 - - [14/May/2024:08:00:02 +0000] "GET /account/login?user=jdoe&password=Tr0ub4dor3&next=/home HTTP/1.1" 302 0 "-" "curl/8.5.0" rt=0.003"#,
    ),
];

fn per_line(c: &mut Criterion) {
    for (set_name, rs) in [("builtin", builtin()), ("reference", reference())] {
        let mut g = c.benchmark_group(format!("line/{set_name}"));
        g.measurement_time(Duration::from_secs(3)).sample_size(30);
        let mut scratch = Scratch::new(&rs);
        let mut stats = Stats::new(&rs);
        for (name, line) in LINES {
            g.throughput(Throughput::Bytes(line.len() as u64));
            g.bench_function(*name, |b| {
                b.iter(|| {
                    let (out, _) =
                        rs.redact_line(black_box(line.as_bytes()), &mut scratch, &mut stats);
                    black_box(out.len())
                })
            });
        }
        g.finish();
    }
}

fn corpus(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/labelled/corpus.log"
    ))
    .expect("labelled corpus");
    let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    let mut g = c.benchmark_group("corpus");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    g.throughput(Throughput::Bytes(text.len() as u64));
    for (set_name, rs) in [("builtin", builtin()), ("reference", reference())] {
        let mut scratch = Scratch::new(&rs);
        let mut stats = Stats::new(&rs);
        g.bench_function(set_name, |b| {
            b.iter(|| {
                let mut n = 0;
                for l in &lines {
                    n += rs.redact_line(l, &mut scratch, &mut stats).0.len();
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

fn compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("builtin", |b| b.iter(|| black_box(builtin().rules().len())));
    g.finish();
}

criterion_group!(benches, per_line, corpus, compile);
criterion_main!(benches);
