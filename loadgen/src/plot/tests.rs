use super::*;
use crate::results::example_summary;

#[test]
fn percentile_labels_read_like_hdrhistogram_plots() {
    assert_eq!(percentile_label(1.0), "0%");
    assert_eq!(percentile_label(10.0), "90%");
    assert_eq!(percentile_label(100.0), "99%");
    assert_eq!(percentile_label(1000.0), "99.9%");
    assert_eq!(percentile_label(1e6), "99.9999%");
    assert_eq!(ms_label(250.0), "250");
    assert_eq!(ms_label(0.05), "0.05");
}

fn summary(scenario: &str, clients: u32, rate: f64) -> Summary {
    Summary {
        label: format!("{scenario}-binary"),
        scenario: scenario.into(),
        protocol: "binary".into(),
        clients,
        rate_per_client: rate,
        room_size: (scenario == "room").then_some(clients),
        ..example_summary()
    }
}

#[test]
fn the_title_says_which_latency_of_which_load() {
    let echo = summary("echo", 1000, 50.0);
    assert_eq!(
        title(&[Some(echo.clone()), Some(echo.clone())], false),
        "Corrected latency by percentile: echo binary, 1000 clients x 50/s each"
    );
    assert_eq!(
        title(
            &[Some(echo.clone()), Some(summary("echo", 200, 12.5))],
            true
        ),
        "Corrected (solid) and uncorrected (dashed) latency by percentile: \
         echo binary, 200-1000 clients x 12.5-50/s each"
    );
    assert_eq!(
        title(&[Some(summary("room", 1000, 0.05))], false),
        "Corrected latency by percentile: room of 1000 binary, 1000 clients x 0.05/s each"
    );
    assert_eq!(title(&[None], false), "Corrected latency by percentile");
}

fn spectrum(values_ms: &[(f64, f64)]) -> Spectrum {
    Spectrum {
        legend: "x".into(),
        points: values_ms
            .iter()
            .map(|&(percentile, value_ms)| HgrmPoint {
                value_ms,
                percentile,
                total_count: 1,
            })
            .collect(),
        colour: 0,
        uncorrected: false,
    }
}

#[test]
fn a_tail_far_above_the_median_turns_the_axis_logarithmic() {
    let narrow = spectrum(&[(0.0, 0.1), (0.5, 0.2), (0.99, 0.9), (1.0, 1.5)]);
    let long_tail = spectrum(&[(0.0, 0.1), (0.5, 0.2), (0.99, 0.9), (1.0, 250.0)]);
    assert!(!wants_log(std::slice::from_ref(&narrow)));
    assert!(wants_log(std::slice::from_ref(&long_tail)));
    assert!(wants_log(&[narrow.clone(), long_tail]));
    let log =
        spectrum_svg(std::slice::from_ref(&narrow), "t", YScale::Log, (600, 400)).expect("draws");
    assert!(log.contains("log scale"), "the axis says it is logarithmic");
    let linear = spectrum_svg(&[narrow], "t", YScale::Auto, (600, 400)).expect("draws");
    assert!(!linear.contains("log scale"));
}

/// WCAG relative luminance contrast of a colour against white.
fn contrast_on_white(c: RGBColor) -> f64 {
    let channel = |v: u8| {
        let v = f64::from(v) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(c.0) + 0.7152 * channel(c.1) + 0.0722 * channel(c.2);
    1.05 / (l + 0.05)
}

#[test]
fn every_line_colour_reads_on_white() {
    for c in COLOURS {
        assert!(
            contrast_on_white(c) >= 3.0,
            "{c:?}: {}",
            contrast_on_white(c)
        );
    }
    // The check can fail: the yellow of the old palette does.
    assert!(contrast_on_white(RGBColor(0xF0, 0xE4, 0x42)) < 3.0);
}

#[test]
fn repeated_labels_get_their_start_time() {
    let mut a = summary("echo", 10, 1.0);
    a.started_at = "2024-05-01T12:00:05Z".into();
    let mut b = a.clone();
    b.started_at = "2024-05-01T12:01:05Z".into();
    let c = summary("room", 10, 1.0);
    let line = |legend: &str, colour, uncorrected| Spectrum {
        legend: legend.into(),
        colour,
        uncorrected,
        ..spectrum(&[(0.0, 1.0)])
    };
    let mut spectra = vec![
        line("echo-binary", 0, false),
        line("echo-binary", 0, true),
        line("echo-binary", 1, false),
        line("room-binary", 2, false),
        line("room-binary", 2, true),
    ];
    disambiguate(&mut spectra, &[Some(a), Some(b), Some(c)]);
    let legends: Vec<&str> = spectra.iter().map(|s| s.legend.as_str()).collect();
    assert_eq!(
        legends,
        [
            "echo-binary 2024-05-01T12:00:05Z",
            "echo-binary 2024-05-01T12:00:05Z",
            "echo-binary 2024-05-01T12:01:05Z",
            "room-binary",
            "room-binary",
        ]
    );
}
