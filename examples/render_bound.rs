//! Renders the largest report the bounds allow and prints how long it took:
//! `cargo run --release --example render_bound -- [words|token|short|indic|emoji|cjk]`
//! under `/usr/bin/time -v` for the peak memory.

#[path = "../tests/support/report_data.rs"]
mod report_data;

use leadchat::report::{ReportRenderer, default_fonts_dir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kind = std::env::args().nth(1).unwrap_or_else(|| "words".into());
    // LEADCHAT_REPORT_TEMPLATE: try a variant of the template.
    let template = std::env::var_os("LEADCHAT_REPORT_TEMPLATE").map(std::path::PathBuf::from);
    let renderer = ReportRenderer::new(template.as_deref(), &default_fonts_dir())?;
    let data = report_data::bounded_report(&kind);
    let chars: usize = data.transcript.iter().map(|l| l.text.chars().count()).sum();
    let started = std::time::Instant::now();
    let pdf = renderer.render(&data)?;
    println!(
        "{kind}: {} lines, {chars} chars, {:.2} s, PDF {} KiB",
        data.transcript.len(),
        started.elapsed().as_secs_f64(),
        pdf.len() / 1024
    );
    if let Some(out) = std::env::args().nth(2) {
        std::fs::write(out, pdf)?;
    }
    Ok(())
}
