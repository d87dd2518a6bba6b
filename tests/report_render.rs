//! End-to-end tests: render real PDFs and inspect them with poppler-utils
//! (`pdftotext`, `pdffonts`, `pdfinfo`). These tools are required; a missing
//! tool fails the test with an install hint rather than skipping it.

mod support;

use std::path::Path;
use std::process::Command;

use leadchat::report::{LogoImage, RenderError, ReportContact, ReportRenderer, default_fonts_dir};
use support::report_data;

fn renderer() -> ReportRenderer {
    ReportRenderer::new(None, &default_fonts_dir()).expect("renderer builds")
}

/// Runs a poppler tool on `pdf` and returns its stdout.
fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let out = Command::new(tool)
        .args(args)
        .arg(&path)
        .args(if tool == "pdftotext" { &["-"][..] } else { &[][..] })
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{tool}` ({e}): install poppler-utils (apt-get install -y poppler-utils)")
        });
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Drops whitespace and the invisible break hints the renderer inserts:
/// pdftotext re-flows lines and splits some Indic clusters with spaces.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '\u{200B}' | '\u{AD}' | '\u{FE0F}'))
        .collect()
}

fn pdf_text(pdf: &[u8]) -> String {
    squash(&poppler("pdftotext", &["-raw", "-enc", "UTF-8"], pdf))
}

fn page_count(pdf: &[u8]) -> usize {
    poppler("pdfinfo", &[], pdf)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo prints Pages:")
}

#[test]
fn full_report_contains_every_line_and_field() {
    let data = report_data::report(200, 7);
    let pdf = renderer().render(&data).expect("render");
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdf_text(&pdf);

    let mut expected: Vec<String> = vec![
        "Acme Cloud - Session Report".into(),
        data.session_id.clone(),
        "User Information".into(),
        "Lead Information".into(),
        "Conversation Transcript".into(),
        "Page 1 of".into(),
        "2025-03-14 10:56:53 UTC".into(),
        "Visitor".into(),
        "Acme Cloud Assistant".into(),
        "HIGH".into(),
    ];
    let c = &data.contact;
    expected.extend(
        [&c.name, &c.email, &c.phone, &c.organization]
            .into_iter()
            .flatten()
            .cloned(),
    );
    for s in &data.lead.signals {
        expected.push(s.name.clone());
        expected.push(s.evidence.clone());
    }
    expected.extend(data.transcript.iter().map(|l| l.text.clone()));

    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| !text.contains(&squash(e)))
        .collect();
    assert!(missing.is_empty(), "missing from PDF text: {missing:#?}");

    // Lines appear in transcript order.
    let mut pos = 0;
    for line in data.transcript.iter().skip(report_data::SPECIAL.len() + 1) {
        let at = text[pos..]
            .find(&squash(&line.text))
            .unwrap_or_else(|| panic!("line {} out of order", line.seq));
        pos += at;
    }
    // 200 messages cannot fit on one page; the footer knows the total.
    let pages = page_count(&pdf);
    assert!(pages >= 4, "expected several pages, got {pages}");
    assert!(text.contains(&squash(&format!("Page {pages} of {pages}"))));
}

#[test]
fn all_fonts_are_embedded_and_scripts_use_their_fonts() {
    let pdf = renderer()
        .render(&report_data::report(20, 1))
        .expect("render");
    let listing = poppler("pdffonts", &[], &pdf);
    let rows: Vec<&str> = listing
        .lines()
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!rows.is_empty(), "no fonts listed:\n{listing}");
    for row in &rows {
        // Columns from the right: emb sub uni object-id generation.
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(cols.len() >= 6, "unexpected pdffonts row: {row}");
        assert_eq!(cols[cols.len() - 5], "yes", "font not embedded: {row}");
    }
    for family in ["NotoSans-", "NotoSansDevanagari", "NotoSansTamil"] {
        assert!(listing.contains(family), "{family} not used:\n{listing}");
    }
    // Colour emoji (CBDT bitmaps) are embedded as a Type 3 font of images.
    assert!(listing.contains("Type 3"), "no emoji font:\n{listing}");
}

#[test]
fn special_characters_print_verbatim_in_contact_fields() {
    let mut data = report_data::report(4, 2);
    data.contact.name = Some("#panic(\"x\") $ * _ [ ] \\ @ < // end".into());
    data.brand.name = "Brand #1 [beta] $".into();
    let text = pdf_text(&renderer().render(&data).expect("render"));
    assert!(
        text.contains(&squash("#panic(\"x\") $ * _ [ ] \\ @ < // end")),
        "{text}"
    );
    assert!(text.contains(&squash("Brand #1 [beta] $ - Session Report")));
}

#[test]
fn missing_contact_fields_and_empty_sections_render() {
    let mut data = report_data::report(0, 3);
    data.contact = ReportContact {
        name: None,
        email: Some("   ".into()),
        phone: None,
        organization: None,
    };
    data.lead.signals.clear();
    data.lead.priority = "critical".into();
    data.end_reason = "something-new".into();
    data.brand.color = "not a colour".into();
    let text = pdf_text(&renderer().render(&data).expect("render"));
    assert_eq!(text.matches("Notprovided").count(), 4, "{text}");
    assert!(text.contains("CRITICAL"));
    assert!(text.contains("something-new"));
    assert!(text.contains(&squash("The transcript is empty.")));
}

#[test]
fn broken_template_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.typ");
    std::fs::write(
        &path,
        "#let d = json(\"/data.json\")\n= Report\n#d.nope.field\n#let x = (\n",
    )
    .expect("write");
    let r =
        ReportRenderer::new(Some(&path), &default_fonts_dir()).expect("template is read lazily");
    match r.render(&report_data::report(3, 4)) {
        Err(RenderError::Template(msg)) => assert!(msg.contains("line"), "no location in: {msg}"),
        other => panic!("expected a template error, got {other:?}"),
    }
    // A template that panics is an error too.
    std::fs::write(&path, "#panic(\"boom\")").expect("write");
    let r = ReportRenderer::new(Some(&path), &default_fonts_dir()).expect("renderer");
    let err = r
        .render(&report_data::report(3, 4))
        .expect_err("panic template fails");
    assert!(err.to_string().contains("boom"), "{err}");
}

#[test]
fn constructor_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        ReportRenderer::new(None, dir.path()),
        Err(RenderError::NoFonts(_))
    ));
    let missing = dir.path().join("nope");
    assert!(matches!(
        ReportRenderer::new(None, &missing),
        Err(RenderError::Io { .. })
    ));
    assert!(matches!(
        ReportRenderer::new(Some(Path::new("/nonexistent.typ")), &default_fonts_dir()),
        Err(RenderError::Io { .. })
    ));
}

#[test]
fn logos_render_and_a_broken_logo_is_dropped() {
    let r = renderer();
    let mut data = report_data::report(3, 5);
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#f00"/></svg>"##;
    data.brand.logo = Some(LogoImage {
        bytes: svg.as_bytes().to_vec(),
        format: "svg".into(),
    });
    let with_logo = r.render(&data).expect("svg logo");
    data.brand.logo = Some(LogoImage {
        bytes: b"definitely not a png".to_vec(),
        format: "png".into(),
    });
    let broken = r.render(&data).expect("broken logo falls back");
    assert!(pdf_text(&broken).contains("AcmeCloud-SessionReport"));
    assert_ne!(with_logo, broken);
}

#[test]
fn renderer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ReportRenderer>();
    let r = std::sync::Arc::new(renderer());
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let r = r.clone();
            std::thread::spawn(move || r.render(&report_data::report(30, i)).expect("render"))
        })
        .collect();
    for h in handles {
        let pdf = h.join().expect("thread");
        assert!(pdf.starts_with(b"%PDF-"));
    }
}

/// Set in the child process `the_largest_report_renders_under_the_memory_budget` starts.
const CHILD: &str = "LEADCHAT_RENDER_BOUND_CHILD";

/// Not a test of its own: the body of the child process below, which renders
/// the largest report the bounds allow (of one kind) and prints its own peak
/// memory. A no-op unless started by it.
#[test]
fn render_bound_child() {
    let Ok(kind) = std::env::var(CHILD) else {
        return;
    };
    let pdf = renderer()
        .render(&report_data::bounded_report(&kind))
        .expect("the largest report renders");
    assert!(pdf.len() > 100_000);
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .expect("VmHWM");
    println!("PEAK_KIB={}", hwm.trim().trim_end_matches(" kB").trim());
}

/// PROTOCOL §2: the report of the largest session the bounds allow (300
/// visitor messages of 8 KiB, each answered) renders with its peak memory
/// under `report.render_memory` (default 512 MiB) — measured in a process of
/// its own, so no other test's memory counts. Before the message text got a
/// block of its own in the template, Typst copied every glyph twice and the
/// prose kind peaked at 594 MB.
#[test]
fn the_largest_report_renders_under_the_memory_budget() {
    let budget_kib = leadchat::settings::Settings::default().report.render_memory / 1024;
    for kind in ["words", "indic", "emoji"] {
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "render_bound_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, kind)
            .output()
            .expect("start the child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{kind}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The harness prints the test's name on the same line.
        let peak: u64 = stdout
            .split("PEAK_KIB=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{kind}: no peak in {stdout}"));
        println!("{kind}: peak {} MiB", peak / 1024);
        assert!(
            peak < budget_kib,
            "{kind}: the largest report peaked at {} MiB, over the {} MiB budget",
            peak / 1024,
            budget_kib / 1024
        );
    }
}
