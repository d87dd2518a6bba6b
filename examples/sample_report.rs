//! Writes docs/sample-report.pdf (200-line sample) for visual review:
//! `cargo run --example sample_report`, then `pdftoppm -png -r 80 -f 1 -l 1`.

#[path = "../tests/support/report_data.rs"]
mod report_data;

use leadchat::report::{LogoImage, ReportRenderer, default_fonts_dir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let renderer = ReportRenderer::new(None, &default_fonts_dir())?;
    let mut data = report_data::report(200, 1);
    // An SVG logo in the brand colour to show the header layout.
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="#0F766E"/><path d="M16 46 L32 16 L48 46 Z" fill="#fff"/></svg>"##;
    data.brand.logo = Some(LogoImage {
        bytes: svg.as_bytes().to_vec(),
        format: "svg".into(),
    });
    let pdf = renderer.render(&data)?;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sample-report.pdf");
    std::fs::write(&out, pdf)?;
    println!("wrote {}", out.display());
    Ok(())
}
