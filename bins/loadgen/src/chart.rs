//! `--chart FILE.svg`: the sale at a glance. Three panels: latency over time, throughput
//! over time, and the outcome of every purchase by send order (the cumulative number
//! accepted; in a fair sale it climbs one per request up to K, then stays flat).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::scenarios::Sample;
use crate::stats::{Bucket, bucket_width_us, buckets};

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 1200;
/// Above this many purchases the per-request markers are left out (the line stays).
const MAX_MARKERS: usize = 5_000;
/// Points of the cumulative line at most (keeps the SVG small for long runs).
const MAX_LINE_POINTS: usize = 2_000;
const ACCEPTED: RGBColor = RGBColor(0x1b, 0x9e, 0x77);
const REFUSED: RGBColor = RGBColor(0xd9, 0x5f, 0x02);
const OTHER: RGBColor = RGBColor(0x75, 0x70, 0xb3);

/// A line of a time panel: label, colour, and the value it plots.
type Line = (&'static str, RGBColor, fn(&Bucket) -> f64);
/// A kind of marker: label, colour, and which purchases it marks.
type Marker = (&'static str, RGBColor, fn(&Sample) -> bool);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Writes the chart of `purchases` (in send order) to `path`.
pub(crate) fn write(
    path: &Path,
    title: &str,
    purchases: &[Sample],
    first_k: u64,
) -> anyhow::Result<()> {
    draw(path, title, purchases, first_k)
        .map_err(|error| anyhow::anyhow!("drawing {}: {error}", path.display()))
}

fn draw(path: &Path, title: &str, purchases: &[Sample], first_k: u64) -> Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let panels = root.split_evenly((3, 1));
    let span = purchases.iter().map(|s| s.done_us).max().unwrap_or(0);
    let series = buckets(purchases, bucket_width_us(span, purchases.len()));
    latency_panel(&panels[0], &series)?;
    throughput_panel(&panels[1], &series)?;
    outcome_panel(&panels[2], purchases, first_k)?;
    root.present()?;
    Ok(())
}

fn latency_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, series: &[Bucket]) -> Result<()> {
    let answered: Vec<&Bucket> = series
        .iter()
        .filter(|b| b.responses_per_sec > 0.0)
        .collect();
    let x_max = x_extent(series);
    let y_max = answered.iter().map(|b| b.max_ms).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "latency of the answers completed in each slice",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("time since start (ms)")
        .y_desc("latency (ms)")
        .x_label_formatter(&whole)
        .draw()?;
    let lines: [Line; 3] = [
        ("p50", ACCEPTED, |b| b.p50_ms),
        ("p99", REFUSED, |b| b.p99_ms),
        ("max", OTHER, |b| b.max_ms),
    ];
    for (label, color, value) in lines {
        let points = answered.iter().map(|b| (b.start_ms, value(b)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)
}

fn throughput_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, series: &[Bucket]) -> Result<()> {
    let x_max = x_extent(series);
    let y_max = series
        .iter()
        .map(|b| b.responses_per_sec)
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("throughput", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("time since start (ms)")
        .y_desc("per second")
        .x_label_formatter(&whole)
        .y_label_formatter(&whole)
        .draw()?;
    let lines: [Line; 2] = [
        ("answers/s", OTHER, |b| b.responses_per_sec),
        ("accepted purchases/s", ACCEPTED, |b| b.accepted_per_sec),
    ];
    for (label, color, value) in lines {
        let points = series.iter().map(|b| (b.start_ms, value(b)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)
}

fn outcome_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    purchases: &[Sample],
    first_k: u64,
) -> Result<()> {
    let cumulative = cumulative_accepted(purchases);
    let x_max = (purchases.len().max(1)) as f64;
    let y_max = cumulative.last().copied().unwrap_or(0).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("outcome of each purchase by send order", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("send order")
        .y_desc("accepted so far")
        .x_label_formatter(&whole)
        .y_label_formatter(&whole)
        .draw()?;
    let line = thinned(&cumulative, MAX_LINE_POINTS).map(|(i, n)| ((i + 1) as f64, n as f64));
    chart
        .draw_series(LineSeries::new(line, BLACK.stroke_width(1)))?
        .label("accepted so far")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    if purchases.len() <= MAX_MARKERS {
        markers(&mut chart, purchases, &cumulative)?;
    }
    let k = first_k as f64;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(k, 0.0), (k, y_max)],
            REFUSED.mix(0.5),
        )))?
        .label(format!("K = {first_k}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], REFUSED.mix(0.5)));
    legend(&mut chart)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A dot per purchase: accepted, refused as sold out, or anything else.
fn markers<'b>(chart: &mut Chart<'b, 'b>, purchases: &[Sample], cumulative: &[u64]) -> Result<()> {
    let kinds: [Marker; 3] = [
        ("accepted", ACCEPTED, Sample::is_accepted),
        ("refused: sold out", REFUSED, Sample::is_sold_out),
        ("other", OTHER, |s| !s.is_accepted() && !s.is_sold_out()),
    ];
    for (label, color, keep) in kinds {
        let dots = purchases
            .iter()
            .zip(cumulative)
            .enumerate()
            .filter(|(_, (sample, _))| keep(sample))
            .map(move |(i, (_, n))| Circle::new(((i + 1) as f64, *n as f64), 2, color.filled()));
        chart
            .draw_series(dots)?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
    }
    Ok(())
}

fn legend<'b>(chart: &mut Chart<'b, 'b>) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    Ok(())
}

/// Axis labels without decimals.
fn whole(value: &f64) -> String {
    format!("{value:.0}")
}

fn x_extent(series: &[Bucket]) -> f64 {
    series.last().map_or(1.0, |b| b.start_ms.max(1.0))
}

/// At most about `limit` evenly spaced `(index, value)` pairs of `values`, always
/// including the last one, so that a thinned line still ends where the data ends.
fn thinned(values: &[u64], limit: usize) -> impl Iterator<Item = (usize, u64)> + '_ {
    let step = values.len().div_ceil(limit.max(1)).max(1);
    let last = values.len().checked_sub(1);
    values
        .iter()
        .copied()
        .enumerate()
        .filter(move |(i, _)| i % step == 0 || Some(*i) == last)
}

/// Number of accepted purchases among the first `i + 1` sent, for each `i`.
pub(crate) fn cumulative_accepted(purchases: &[Sample]) -> Vec<u64> {
    purchases
        .iter()
        .scan(0, |accepted, sample| {
            *accepted += u64::from(sample.is_accepted());
            Some(*accepted)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::Status;

    fn sample(seq: u64, code: u16) -> Sample {
        Sample {
            seq,
            product: 0,
            quantity: 1,
            sent_us: seq * 500,
            done_us: seq * 500 + 3_000,
            status: Status::Code(code),
            purchase_id: None,
        }
    }

    #[test]
    fn cumulative_counts_accepted_in_send_order() {
        let purchases = [
            sample(0, 201),
            sample(1, 409),
            sample(2, 201),
            sample(3, 503),
        ];
        assert_eq!(cumulative_accepted(&purchases), [1, 1, 2, 2]);
    }

    #[test]
    fn long_lines_are_thinned_but_keep_their_ends() {
        let values: Vec<u64> = (0..10_001).collect();
        let points: Vec<(usize, u64)> = thinned(&values, 2_000).collect();
        assert!(points.len() <= 2_002, "{}", points.len());
        assert_eq!(points.first(), Some(&(0, 0)));
        assert_eq!(points.last(), Some(&(10_000, 10_000)));
        assert_eq!(thinned(&[1, 2, 3], 2_000).count(), 3);
        assert_eq!(thinned(&[], 2_000).count(), 0);
    }

    #[test]
    fn the_chart_is_an_svg_with_three_panels() {
        let purchases: Vec<Sample> = (0..200)
            .map(|seq| sample(seq, if seq < 20 { 201 } else { 409 }))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        write(&path, "black-friday", &purchases, 20).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(
            svg.contains("send order") && svg.contains("throughput") && svg.contains("latency")
        );
    }

    #[test]
    fn an_empty_run_still_draws() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("empty.svg"), "empty", &[], 0).unwrap();
    }
}
