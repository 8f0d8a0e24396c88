// Scripts of the messages, games and live-operations pages (an ES module: pages have no
// inline script). The pages work without it; it only
// - shows the parts of a form that apply: inside <form data-show-if-form>, an element with
//   data-show-if="name=value" is shown while the form's field `name` has `value`
//   (data-show-if-not: while it has not), without scripts every part is shown, each
//   labelled for what it is;
// - draws charts with uPlot (vendored): <div data-chart="{x: [unix seconds], series:
//   [{label, values, tone?}], format?}">; with data-chart-src and data-chart-refresh
//   (seconds) the data is fetched again from that address on that schedule.

// --- forms whose parts depend on a choice --------------------------------------------------

function valueOf(form, name) {
  const field = form.elements.namedItem(name);
  if (!field) return "";
  if (typeof RadioNodeList !== "undefined" && field instanceof RadioNodeList) return field.value;
  if (field.type === "checkbox" || field.type === "radio") return field.checked ? field.value : "";
  return field.value;
}

function applyShowIf(form) {
  for (const part of form.querySelectorAll("[data-show-if]")) {
    const [name, wanted] = part.dataset.showIf.split("=");
    part.hidden = !wanted.split("|").includes(valueOf(form, name));
  }
  for (const part of form.querySelectorAll("[data-show-if-not]")) {
    const [name, unwanted] = part.dataset.showIfNot.split("=");
    part.hidden = unwanted.split("|").includes(valueOf(form, name));
  }
}

for (const form of document.querySelectorAll("form[data-show-if-form]")) {
  applyShowIf(form);
  form.addEventListener("change", () => applyShowIf(form));
}

// --- charts ----------------------------------------------------------------------------------

// Distinguishable for common colour-vision deficiencies (Okabe-Ito), dark enough on white.
const PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#6f5200", "#56b4e9", "#000000"];
const TONES = { ok: "#0072b2", danger: "#c0392b" };
const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3]];

function formatter(kind) {
  if (kind === "percent") return (v) => (v == null ? "—" : `${(v * 100).toFixed(1)}%`);
  return (v) => (v == null ? "—" : Number(v).toLocaleString("en"));
}

function chartData(spec) {
  return [spec.x, ...spec.series.map((s) => s.values)];
}

function drawChart(element) {
  const uPlot = window.uPlot;
  if (!uPlot) return;
  let spec;
  try {
    spec = JSON.parse(element.dataset.chart);
  } catch {
    return;
  }
  const format = formatter(spec.format);
  const height = Number(element.dataset.chartHeight || 260);
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  const tickFormat = uPlot.fmtDate(spec.days ? "{MMM} {D}" : "{HH}:{mm}");
  const options = {
    width: Math.max(element.clientWidth, 280),
    height,
    tzDate: utc,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max, spec.format === "percent" ? 0.01 : 1)] } },
    axes: [
      {
        stroke: "#44505e",
        grid: { stroke: "#e6e9ee" },
        // Days for a daily chart (no hours between them), else 24-hour times; UTC.
        ...(spec.days ? { incrs: [86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400] } : {}),
        values: (u, ticks) => ticks.map((ts) => tickFormat(utc(ts))),
      },
      { stroke: "#44505e", grid: { stroke: "#e6e9ee" }, size: 60, values: (u, ticks) => ticks.map(format) },
    ],
    series: [
      { label: spec.xLabel || "Time", value: spec.days ? "{YYYY}-{MM}-{DD}" : "{HH}:{mm}" },
      ...spec.series.map((s, i) => ({
        label: s.label,
        stroke: TONES[s.tone] || PALETTE[i % PALETTE.length],
        width: 2,
        dash: DASHES[i % DASHES.length],
        points: { show: spec.x.length < 40 },
        value: (u, v) => format(v),
      })),
    ],
  };
  for (const old of element.querySelectorAll(".chart-fallback")) old.remove();
  const plot = new uPlot(options, chartData(spec), element);
  new ResizeObserver(() => {
    plot.setSize({ width: Math.max(element.clientWidth, 280), height });
  }).observe(element);

  const source = element.dataset.chartSrc;
  const every = Number(element.dataset.chartRefresh || 0);
  if (source && every > 0) {
    setInterval(async () => {
      if (document.hidden) return;
      try {
        const response = await fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const fresh = await response.json();
        plot.setData(chartData(fresh));
      } catch {
        // the next round tries again
      }
    }, every * 1000);
  }
}

for (const element of document.querySelectorAll("[data-chart]")) drawChart(element);
