//! SVG charts of the bench records, written next to `docs/bench/results.md`:
//! `throughput.svg` (each row's throughput ratio against its baseline, grouped
//! by layer) and `latency.svg` (each row's p50 and p99, where the record has
//! them); and the chaos run's `docs/reliability.svg` (recovery per fault
//! kind, p50 and max). Rendered with plotters' SVG backend (pure Rust, no system fonts or
//! libraries): text is left to the SVG viewer.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use plotters::coord::ranged1d::{AsRangedCoord, SegmentValue, SegmentedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordusize;
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
/// Room per label character at the labels' 12 px sans-serif (an upper
/// bound of its average advance), and around the longest label.
const PX_PER_CHAR: u32 = 7;
const LABEL_PAD: u32 = 16;

/// The width of the label area: the longest label's, at most
/// [`LABEL_WIDTH`], so a chart of short labels does not start halfway.
fn label_width(labels: &[String]) -> u32 {
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    u32::try_from(chars)
        .unwrap_or(u32::MAX)
        .saturating_mul(PX_PER_CHAR)
        .saturating_add(LABEL_PAD)
        .min(LABEL_WIDTH)
}

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

/// The label of segment `v` of `labels` (row 0 at the top).
fn row_label(labels: &[String], v: &SegmentValue<usize>) -> String {
    match v {
        SegmentValue::CenterOf(i) => labels
            .len()
            .checked_sub(i + 1)
            .and_then(|top| labels.get(top))
            // two no-break spaces keep the text off the axis (the rows have
            // no tick marks; SVG would collapse plain spaces)
            .map(|l| format!("{l}\u{a0}\u{a0}"))
            .unwrap_or_default(),
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

/// The y axis of a chart: one labelled row per entry, row 0 at the top.
type Rows = SegmentedCoord<RangedCoordusize>;

/// What differs between the charts' frames: the caption, the x axis (its
/// range, light lines, description and tick labels) and the row labels.
struct Frame<'a, X> {
    caption: &'a str,
    x: X,
    x_light_lines: usize,
    x_desc: &'a str,
    x_label: &'a dyn Fn(&f64) -> String,
    labels: &'a [String],
}

/// The shared frame of every chart: white background, caption, one row per
/// label on the left, the x axis with its mesh. Returns the chart to draw
/// the bars on.
fn framed<'a, 'b, X>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    frame: Frame<'_, X>,
) -> anyhow::Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<X::CoordDescType, Rows>>>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let n = frame.labels.len();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(frame.caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(label_width(frame.labels))
        .build_cartesian_2d(frame.x, (0..n.max(1)).into_segmented())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n.max(1))
        .y_label_formatter(&|v| row_label(frame.labels, v))
        .y_label_style(("sans-serif", 12))
        // rows need no tick marks (and the segmented axis has one key
        // point past the last row, which would draw a stray tick)
        .set_tick_mark_size(LabelAreaPosition::Left, 0)
        .x_max_light_lines(frame.x_light_lines)
        .x_desc(frame.x_desc)
        .x_label_formatter(frame.x_label)
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

/// Bars from `from` to each row's value, in each row's colour; `light`
/// draws them pale (behind a dark bar of the same row).
fn bars<'a>(
    from: f64,
    rows: &'a [(Option<f64>, RGBColor)],
    light: bool,
) -> impl Iterator<Item = Rectangle<(f64, SegmentValue<usize>)>> + 'a {
    let n = rows.len();
    rows.iter()
        .enumerate()
        .filter_map(move |(i, (value, colour))| {
            let (bottom, top) = band(n, i);
            let style = if light {
                colour.mix(0.35).filled()
            } else {
                colour.filled()
            };
            value.map(|v| {
                let mut bar = Rectangle::new([(from, top), (v, bottom)], style);
                bar.set_margin(3, 3, 0, 0);
                bar
            })
        })
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
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let ratios: Vec<(Option<f64>, RGBColor)> = rows.iter().map(|r| (r.ratio, r.colour())).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, chart_height(n))).into_drawing_area();
        let mut chart = framed(
            &root,
            Frame {
                caption:
                    "Throughput ratio against each row's baseline (1.0 = as fast; higher is faster)",
                x: 0.0..max,
                x_light_lines: 1,
                x_desc: "ops/s ratio (this row / its baseline), same run",
                x_label: &|x| format!("{x:.1}×"),
                labels: &labels,
            },
        )?;
        chart
            .draw_series(bars(0.0, &ratios, false))
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
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let p50: Vec<(Option<f64>, RGBColor)> = rows.iter().map(|r| (r.p50_us, r.colour())).collect();
    let p99: Vec<(Option<f64>, RGBColor)> = rows.iter().map(|r| (r.p99_us, r.colour())).collect();
    pair_svg(
        "Latency per row: p50 (dark) and p99 (light), µs, log scale",
        "µs per operation (this row's own measure)",
        &labels,
        &p50,
        &p99,
    )
}

/// A light bar (`high`) behind a dark one (`low`) per row, log scale.
fn pair_svg(
    caption: &str,
    x_desc: &str,
    labels: &[String],
    low: &[(Option<f64>, RGBColor)],
    high: &[(Option<f64>, RGBColor)],
) -> anyhow::Result<String> {
    let max = high.iter().filter_map(|r| r.0).fold(10.0_f64, f64::max) * 1.5;
    let min = low.iter().filter_map(|r| r.0).fold(max / 10.0, f64::min) / 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, chart_height(labels.len())))
            .into_drawing_area();
        let mut chart = framed(
            &root,
            Frame {
                caption,
                x: (min..max).log_scale(),
                x_light_lines: 2,
                x_desc,
                x_label: &|x| format!("{x:.0}"),
                labels,
            },
        )?;
        chart.draw_series(bars(min, high, true)).map_err(plot_err)?;
        chart.draw_series(bars(min, low, false)).map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// One colour per chaos topology.
const TOPOLOGY_COLOURS: [(&str, RGBColor); 3] = [
    ("standalone", RGBColor(0x1f, 0x77, 0xb4)),
    ("cluster", RGBColor(0xff, 0x7f, 0x0e)),
    ("sentinel", RGBColor(0x2c, 0xa0, 0x2c)),
];

/// `reliability.svg`: per topology and fault kind of a chaos run
/// (`reliability.json`: `topology`, `fault`, `p50_ms`, `max_ms`), a light
/// max bar behind a dark p50 bar, ms, log scale.
pub(crate) fn recovery_svg(rows: &[Value]) -> anyhow::Result<String> {
    let number = |r: &Value, k: &str| r[k].as_f64().filter(|v| v.is_finite() && *v >= 0.0);
    // a recovery under 0.1 ms is drawn at 0.1 ms (a log scale has no zero)
    let floor = |v: Option<f64>| v.map(|v| v.max(0.1));
    let rows: Vec<&Value> = rows
        .iter()
        .filter(|r| number(r, "max_ms").is_some())
        .collect();
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            shorten(&format!(
                "{} · {}",
                r["topology"].as_str().unwrap_or("?"),
                r["fault"].as_str().unwrap_or("?")
            ))
        })
        .collect();
    let colour = |r: &Value| {
        let t = r["topology"].as_str().unwrap_or("");
        TOPOLOGY_COLOURS
            .iter()
            .find(|(name, _)| *name == t)
            .map_or(OTHER_LAYER, |(_, c)| *c)
    };
    let p50: Vec<(Option<f64>, RGBColor)> = rows
        .iter()
        .map(|r| (floor(number(r, "p50_ms")), colour(r)))
        .collect();
    let max: Vec<(Option<f64>, RGBColor)> = rows
        .iter()
        .map(|r| (floor(number(r, "max_ms")), colour(r)))
        .collect();
    pair_svg(
        "Recovery after each fault is lifted: p50 (dark) and max (light), ms, log scale",
        "ms from the fault lifted to the first successful probe write",
        &labels,
        &p50,
        &max,
    )
}

/// `cargo xtask chaos`: the recovery chart of the run's `json` figures,
/// written as `svg`.
pub(crate) fn write_recovery(json: &Path, svg: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    let rows: Vec<Value> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
    std::fs::write(svg, recovery_svg(&rows)?).with_context(|| format!("writing {}", svg.display()))
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
        assert!(bars(&recovery_svg(&[])?).is_empty());
        Ok(())
    }

    #[test]
    fn should_draw_a_p50_and_a_max_recovery_bar_per_fault_kind() -> anyhow::Result<()> {
        let rows: Vec<Value> = serde_json::from_str(
            r#"[
              {"topology":"standalone","fault":"proxy: black hole","injected":1,"p50_ms":642.0,"max_ms":1158.0},
              {"topology":"cluster","fault":"SCRIPT FLUSH","injected":2,"p50_ms":0.0,"max_ms":1.0},
              {"topology":"sentinel","fault":"sentinel: killed primary","injected":1,"p50_ms":12.0,"max_ms":12.0},
              {"topology":"sentinel","fault":"CLIENT KILL","injected":1,"p50_ms":null,"max_ms":null}
            ]"#,
        )?;
        let svg = recovery_svg(&rows)?;
        // two bars for each of the three kinds that recovered; none for the
        // kind that never did (no figures)
        assert_eq!(bars(&svg).len(), 6, "{svg}");
        assert!(svg.contains("sentinel · sentinel: killed primary"), "{svg}");
        assert!(!svg.contains("CLIENT KILL"), "{svg}");
        let sentinel = format!("fill=\"#{:02X}{:02X}{:02X}\"", 0x2c, 0xa0, 0x2c);
        // the sentinel row's p50 and max, in the sentinel colour
        assert_eq!(
            bars(&svg).iter().filter(|b| b.contains(&sentinel)).count(),
            2
        );
        Ok(())
    }

    #[test]
    fn should_size_the_label_area_to_the_longest_label() {
        let short = vec!["standalone · CLIENT KILL".to_owned(), "x".to_owned()];
        assert_eq!(label_width(&short), 24 * PX_PER_CHAR + LABEL_PAD);
        let long = vec!["l".repeat(LABEL_CHARS)];
        assert_eq!(label_width(&long), LABEL_WIDTH);
        assert_eq!(label_width(&[]), LABEL_PAD);
    }

    #[test]
    fn should_shorten_long_labels_on_a_character_boundary() {
        let long = "é".repeat(LABEL_CHARS + 5);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), LABEL_CHARS);
        assert!(short.ends_with('…'));
    }
}
