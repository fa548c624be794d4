//! Unit tests of `results`.

use super::hlog::base64_decode;
use super::*;
use crate::report::Summary;

#[test]
fn rows_from_before_the_optional_columns_still_read() {
    let dir = std::env::temp_dir().join(format!("lg-old-csv-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let full = dir.join("full.csv");
    let row = Summary {
        label: "echo-binary".into(),
        sent: 10,
        late_sends: 5,
        send_window_us: Some(1000),
        held_sends: Some(2),
        lag_free_p99_us: Some(7),
        trustworthy: Some(false),
        ..example_summary()
    };
    append_summary(&full, &row, "s").expect("written");
    assert_eq!(read_summaries(&full).expect("read"), [row]);
    // The same row as a loadgen without the optional columns wrote it.
    let mut r = csv::Reader::from_path(&full).expect("open");
    let headers = r.headers().expect("header").clone();
    let record = r.records().next().expect("a row").expect("parses");
    let keep: Vec<usize> = (0..headers.len())
        .filter(|&i| !crate::report::OPTIONAL_COLUMNS.contains(&&headers[i]))
        .collect();
    let old = dir.join("old.csv");
    let mut w = csv::Writer::from_path(&old).expect("create");
    w.write_record(keep.iter().map(|&i| &headers[i]))
        .expect("header");
    w.write_record(keep.iter().map(|&i| &record[i]))
        .expect("row");
    w.flush().expect("flushed");
    drop(w);
    let back = read_summaries(&old).expect("an older summary reads");
    let s = &back[0];
    assert_eq!((s.sent, s.late_sends), (10, 5));
    assert_eq!(
        (
            s.send_window_us,
            s.held_sends,
            s.lag_free_p99_us,
            s.trustworthy
        ),
        (None, None, None, None)
    );
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn base64_decodes_padded_input() {
    assert_eq!(base64_decode("aGVsbG8=").as_deref(), Ok(&b"hello"[..]));
    assert_eq!(base64_decode("aGVsbG8h").as_deref(), Ok(&b"hello!"[..]));
    assert_eq!(base64_decode("aGk=").as_deref(), Ok(&b"hi"[..]));
    assert!(base64_decode("a").is_err());
    assert!(base64_decode("a*==").is_err());
}

#[test]
fn hgrm_text_has_the_java_layout() {
    let mut h = crate::recorder::new_histogram();
    for v in 1..=1000 {
        h.saturating_record(v);
    }
    let text = hgrm_text(&h);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("       Value     Percentile TotalCount 1/(1-Percentile)")
    );
    assert_eq!(lines.next(), Some(""));
    assert_eq!(
        lines.next(),
        Some("       0.001 0.000000000000          1           1.00")
    );
    let last_point = text.lines().rfind(|l| !l.starts_with('#')).expect("lines");
    assert_eq!(last_point, "       1.000 1.000000000000       1000");
    assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"));
    assert!(text.contains("SubBuckets     =         2048]"));
}
