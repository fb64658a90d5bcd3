//! SVG charts of the bench records, written next to `docs/bench/results.md`:
//! `throughput.svg` (each row's throughput ratio against its baseline, grouped
//! by layer) and `latency.svg` (each row's p50 and p99, where the record has
//! them). Rendered with plotters' SVG backend (pure Rust, no system fonts or
//! libraries): text is left to the SVG viewer.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// One colour per layer, in the bench's layer order; other layers take grey.
const LAYER_COLOURS: [(&str, RGBColor); 7] = [
    ("core", RGBColor(0x1f, 0x77, 0xb4)),
    ("cache", RGBColor(0xff, 0x7f, 0x0e)),
    ("session", RGBColor(0x2c, 0xa0, 0x2c)),
    ("lock", RGBColor(0xd6, 0x27, 0x28)),
    ("ratelimit", RGBColor(0x94, 0x67, 0xbd)),
    ("patterns", RGBColor(0x8c, 0x56, 0x4b)),
    ("tower", RGBColor(0xe3, 0x77, 0xc2)),
];
const OTHER_LAYER: RGBColor = RGBColor(0x7f, 0x7f, 0x7f);
/// Width of the whole chart and of the row labels, in pixels.
const WIDTH: u32 = 1400;
const LABEL_WIDTH: u32 = 720;
/// Height per row and around the rows.
const ROW_HEIGHT: u32 = 22;
const FRAME_HEIGHT: u32 = 110;
/// Longest row label, in characters.
const LABEL_CHARS: usize = 110;

/// One row of a chart: its label, layer and the figures it draws.
#[derive(Debug, Clone)]
struct Row {
    label: String,
    layer: String,
    ratio: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

impl Row {
    fn from_record(r: &Value) -> Row {
        let text = |k: &str| r[k].as_str().unwrap_or("?").to_owned();
        let number = |k: &str| r[k].as_f64().filter(|v| v.is_finite() && *v > 0.0);
        let concurrency = r["concurrency"]
            .as_u64()
            .map_or(String::new(), |c| format!(" (c={c})"));
        let label = format!(
            "{} · {}{concurrency} vs {}",
            text("layer"),
            text("case"),
            text("baseline")
        );
        Row {
            label: shorten(&label),
            layer: text("layer"),
            ratio: number("ratio"),
            p50_us: number("p50_us"),
            p99_us: number("p99_us"),
        }
    }

    fn colour(&self) -> RGBColor {
        LAYER_COLOURS
            .iter()
            .find(|(l, _)| *l == self.layer)
            .map_or(OTHER_LAYER, |(_, c)| *c)
    }
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(LABEL_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// The rows in layer order (the bench's, then any other layer), each layer's
/// rows in record order.
fn rows(records: &[Value]) -> Vec<Row> {
    let mut rows: Vec<Row> = records.iter().map(Row::from_record).collect();
    let rank = |layer: &str| {
        LAYER_COLOURS
            .iter()
            .position(|(l, _)| *l == layer)
            .unwrap_or(LAYER_COLOURS.len())
    };
    rows.sort_by_key(|r| rank(&r.layer));
    rows
}

fn chart_height(rows: usize) -> u32 {
    u32::try_from(rows).unwrap_or(u32::MAX / ROW_HEIGHT).max(1) * ROW_HEIGHT + FRAME_HEIGHT
}

/// The label of segment `v` of `rows` (row 0 at the top).
fn row_label(rows: &[Row], v: &SegmentValue<usize>) -> String {
    match v {
        SegmentValue::CenterOf(i) => rows
            .len()
            .checked_sub(i + 1)
            .and_then(|top| rows.get(top))
            .map_or(String::new(), |r| r.label.clone()),
        _ => String::new(),
    }
}

/// The y extent of row `i` (row 0 drawn at the top).
fn band(rows: usize, i: usize) -> (SegmentValue<usize>, SegmentValue<usize>) {
    let from_bottom = rows - 1 - i;
    (
        SegmentValue::Exact(from_bottom),
        SegmentValue::Exact(from_bottom + 1),
    )
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

/// `throughput.svg`: one bar per record with a ratio, a rule at 1.0 (as fast
/// as the baseline).
pub(crate) fn throughput_svg(records: &[Value]) -> anyhow::Result<String> {
    let rows: Vec<Row> = rows(records)
        .into_iter()
        .filter(|r| r.ratio.is_some())
        .collect();
    let n = rows.len();
    let max = rows.iter().filter_map(|r| r.ratio).fold(1.0_f64, f64::max) * 1.08;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, chart_height(n))).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Throughput ratio against each row's baseline (1.0 = as fast; higher is faster)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(LABEL_WIDTH)
            .build_cartesian_2d(0.0..max, (0..n.max(1)).into_segmented())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n.max(1))
            .y_label_formatter(&|v| row_label(&rows, v))
            .y_label_style(("sans-serif", 12))
            .x_max_light_lines(1)
            .x_desc("ops/s ratio (this row / its baseline), same run")
            .x_label_formatter(&|x| format!("{x:.1}×"))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
                let (bottom, top) = band(n, i);
                r.ratio.map(|ratio| {
                    let mut bar =
                        Rectangle::new([(0.0, top), (ratio, bottom)], r.colour().filled());
                    bar.set_margin(3, 3, 0, 0);
                    bar
                })
            }))
            .map_err(plot_err)?;
        // the figure at the end of each bar
        let figure = TextStyle::from(("sans-serif", 11)).pos(Pos::new(HPos::Left, VPos::Center));
        chart
            .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
                let centre = SegmentValue::CenterOf(n - 1 - i);
                r.ratio.map(|ratio| {
                    Text::new(format!(" {ratio:.2}×"), (ratio, centre), figure.clone())
                })
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(n))],
                BLACK.stroke_width(1),
            )))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// `latency.svg`: per record with both percentiles, a light p99 bar behind a
/// dark p50 bar, on a log scale (µs).
pub(crate) fn latency_svg(records: &[Value]) -> anyhow::Result<String> {
    let rows: Vec<Row> = rows(records)
        .into_iter()
        .filter(|r| r.p50_us.is_some() && r.p99_us.is_some())
        .collect();
    let n = rows.len();
    let max = rows
        .iter()
        .filter_map(|r| r.p99_us)
        .fold(10.0_f64, f64::max)
        * 1.5;
    let min = rows
        .iter()
        .filter_map(|r| r.p50_us)
        .fold(max / 10.0, f64::min)
        / 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, chart_height(n))).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Latency per row: p50 (dark) and p99 (light), µs, log scale",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(LABEL_WIDTH)
            .build_cartesian_2d((min..max).log_scale(), (0..n.max(1)).into_segmented())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n.max(1))
            .y_label_formatter(&|v| row_label(&rows, v))
            .y_label_style(("sans-serif", 12))
            .x_max_light_lines(2)
            .x_desc("µs per operation (this row's own measure)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(plot_err)?;
        let bars = |pick: fn(&Row) -> Option<f64>, light: bool| {
            rows.iter().enumerate().filter_map(move |(i, r)| {
                let (bottom, top) = band(n, i);
                let colour = if light {
                    r.colour().mix(0.35).filled()
                } else {
                    r.colour().filled()
                };
                pick(r).map(|v| {
                    let mut bar = Rectangle::new([(min, top), (v, bottom)], colour);
                    bar.set_margin(3, 3, 0, 0);
                    bar
                })
            })
        };
        chart
            .draw_series(bars(|r| r.p99_us, true))
            .map_err(plot_err)?;
        chart
            .draw_series(bars(|r| r.p50_us, false))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Writes both charts of `records` into `dir`; returns their paths.
pub(crate) fn write(records: &[Value], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, svg) in [
        ("throughput.svg", throughput_svg(records)?),
        ("latency.svg", latency_svg(records)?),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `cargo xtask bench --chart-only`: the charts of the committed
/// `docs/bench/results.json`, without running a bench.
pub(crate) fn from_results(bench_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let json = bench_dir.join("results.json");
    let text =
        std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    let records: Vec<Value> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
    write(&records, bench_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Value> {
        serde_json::from_str(
            r#"[
              {"layer":"cache","case":"typed get 100B","concurrency":50,"baseline":"fred GET",
               "ratio":0.95,"p50_us":170.0,"p99_us":460.0},
              {"layer":"core","case":"GET 100B","concurrency":1,"baseline":"redis-benchmark",
               "ratio":0.86,"p50_us":84.0,"p99_us":151.0},
              {"layer":"lock","case":"acquire","concurrency":50,"baseline":"rslock",
               "ratio":1.44,"p50_us":null,"p99_us":null},
              {"layer":"core","case":"SET 100B","concurrency":50,"baseline":"redis-benchmark",
               "ratio":2.3,"p50_us":245.0,"p99_us":668.0}
            ]"#,
        )
        .unwrap_or_default()
    }

    /// The filled rectangles of an SVG that are not the white background.
    fn bars(svg: &str) -> Vec<&str> {
        svg.split("<rect")
            .skip(1)
            .filter(|r| !r.contains("fill=\"#FFFFFF\""))
            .collect()
    }

    #[test]
    fn should_draw_one_throughput_bar_per_row_in_layer_order() -> anyhow::Result<()> {
        let svg = throughput_svg(&records())?;
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        let bars = bars(&svg);
        assert_eq!(bars.len(), 4, "{svg}");
        // core rows first (the bench's layer order), each in its layer's colour
        let core = format!("fill=\"#{:02X}{:02X}{:02X}\"", 0x1f, 0x77, 0xb4);
        assert_eq!(bars.iter().filter(|b| b.contains(&core)).count(), 2);
        assert!(svg.contains("2.30×") && svg.contains("0.86×"), "{svg}");
        let labels: Vec<usize> = [
            "core · GET 100B",
            "core · SET 100B",
            "cache · typed",
            "lock · acquire",
        ]
        .iter()
        .map(|l| svg.find(l).unwrap_or(usize::MAX))
        .collect();
        assert!(
            labels.iter().all(|p| *p < usize::MAX),
            "labels missing: {labels:?}"
        );
        Ok(())
    }

    #[test]
    fn should_draw_latency_bars_only_for_rows_with_percentiles() -> anyhow::Result<()> {
        let svg = latency_svg(&records())?;
        // p50 and p99 for the three rows that carry them, none for the lock row
        assert_eq!(bars(&svg).len(), 6, "{svg}");
        assert!(!svg.contains("lock · acquire"));
        Ok(())
    }

    #[test]
    fn should_chart_an_empty_record_set_without_bars() -> anyhow::Result<()> {
        assert!(bars(&throughput_svg(&[])?).is_empty());
        assert!(bars(&latency_svg(&[])?).is_empty());
        Ok(())
    }

    #[test]
    fn should_shorten_long_labels_on_a_character_boundary() {
        let long = "é".repeat(LABEL_CHARS + 5);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), LABEL_CHARS);
        assert!(short.ends_with('…'));
    }
}
