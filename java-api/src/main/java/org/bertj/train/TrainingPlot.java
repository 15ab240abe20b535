package org.bertj.train;

import java.awt.Color;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The PNG plot of a run: training loss (left axis) and the evaluation metric (right axis) over
 * optimizer steps, drawn from the lines of metrics.jsonl (headless AWT).
 */
public final class TrainingPlot {
  private TrainingPlot() {}

  /**
   * Writes the plot (to a temporary file, then renamed).
   *
   * @param lines metrics.jsonl lines: {@code step} with {@code loss} or {@code eval_<metric>}
   * @param metric the evaluation metric to draw (e.g. {@code accuracy})
   */
  public static void write(Path png, List<Map<String, Object>> lines, String metric)
      throws IOException {
    System.setProperty("java.awt.headless", "true");
    List<Double> ls = new ArrayList<>();
    List<Double> lv = new ArrayList<>();
    List<Double> es = new ArrayList<>();
    List<Double> ev = new ArrayList<>();
    for (Map<String, Object> l : lines) {
      if (!(l.get("step") instanceof Number step)) {
        continue;
      }
      if (l.get("loss") instanceof Number v && Double.isFinite(v.doubleValue())) {
        ls.add(step.doubleValue());
        lv.add(v.doubleValue());
      }
      if (l.get("eval_" + metric) instanceof Number v && Double.isFinite(v.doubleValue())) {
        es.add(step.doubleValue());
        ev.add(v.doubleValue());
      }
    }
    XYChart chart = new XYChartBuilder().width(900).height(500).title("bertj fine-tuning")
        .xAxisTitle("step").yAxisTitle("training loss").build();
    chart.getStyler().setChartBackgroundColor(Color.WHITE);
    chart.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.InsideNE);
    chart.getStyler().setYAxisGroupPosition(1, org.knowm.xchart.style.Styler.YAxisPosition.Right);
    if (ls.isEmpty()) {
      ls.add(0.0);
      lv.add(Double.NaN);
    }
    XYSeries loss = chart.addSeries("training loss", ls, lv);
    loss.setMarker(SeriesMarkers.NONE);
    loss.setLineColor(new Color(0x1f77b4));
    if (!ev.isEmpty()) {
      XYSeries s = chart.addSeries("eval " + metric, es, ev);
      s.setYAxisGroup(1);
      s.setMarker(SeriesMarkers.CIRCLE);
      s.setLineColor(new Color(0xd62728));
      s.setMarkerColor(new Color(0xd62728));
      chart.setYAxisGroupTitle(1, "eval " + metric);
      chart.getStyler().putYAxisGroupDecimalPatternMap(1, "0.000");
      if (!metric.equals("mse")) { // a fraction: a range around the points, inside [0, 1]
        double lo = ev.stream().mapToDouble(Double::doubleValue).min().orElse(0);
        double hi = ev.stream().mapToDouble(Double::doubleValue).max().orElse(1);
        chart.getStyler().setYAxisMin(1, Math.max(0, lo - 0.05));
        chart.getStyler().setYAxisMax(1, Math.min(1, hi + 0.05));
      }
    }
    Path abs = png.toAbsolutePath();
    Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp.png");
    BitmapEncoder.saveBitmap(chart, tmp.toString(), BitmapEncoder.BitmapFormat.PNG);
    Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }
}
