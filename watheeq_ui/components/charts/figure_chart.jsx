// The dashboard's two charts (stacked bars per hour, one line per series over the days),
// drawn as plain SVG by React from the same figure JSON Plotly takes ({data, layout}).
//
// Plotly drew them before: its bundle (1 MB, a 100-200 ms parse on the 2-core VM) and its
// drawing (another 150-300 ms, one long task) were most of a dashboard load, and blocked
// the page's main thread, the softphone's registration with it. This draws the figure's
// traces (bar / scatter), its y axis (tick0, dtick, gridcolor, ",d"), the x axis (categories,
// or days written as tickformat "%m-%d") and the layout's height, margins and font; a
// hover shows each x's values in the page's own tooltip (the "x unified" hover).
import { useEffect, useRef, useState } from "react";

const FALLBACK_WIDTH = 600;

// The chart's width is its box's, as a ResizeObserver reports it once the browser has laid
// the page out. (Reading clientWidth while React committed the dashboard forced a layout of
// the whole page in the middle of the commit, then a second render and layout for the chart:
// ~55 ms and ~20 ms of a new tab's load on the 2-core VM.) Until the first report, the width
// the same chart had last in this browser is used (localStorage, a number per chart), so a
// new tab draws it in its first frame; with none known, the chart waits for the report.
const WIDTH_KEY = "watheeq.chart.width.";

function storedWidth(name) {
  try {
    return Number(window.localStorage.getItem(WIDTH_KEY + name)) || 0;
  } catch (e) {
    return 0;
  }
}

function storeWidth(name, width) {
  try {
    window.localStorage.setItem(WIDTH_KEY + name, String(width));
  } catch (e) {
    // storage full or refused: the next load waits for the observer
  }
}

// Whole numbers with thousands separators, as "en-US" writes them. Not toLocaleString: its
// first call in a page loads the number-formatting data (35-70 ms of a new tab on the VM).
function count(v) {
  const n = Math.round(Number(v) || 0);
  const digits = String(Math.abs(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return n < 0 ? `-${digits}` : digits;
}

function xLabel(x, axis) {
  const text = String(x);
  if (axis && axis.type === "date" && /^\d{4}-\d{2}-\d{2}/.test(text)) {
    return axis.tickformat === "%m-%d" ? text.slice(5, 10) : text.slice(0, 10);
  }
  return text;
}

function hoverLabel(x, axis) {
  const text = String(x);
  return axis && axis.type === "date" && axis.hoverformat === "%Y-%m-%d" ? text.slice(0, 10) : xLabel(x, axis);
}

function colorOf(trace) {
  return (trace.marker && trace.marker.color) || (trace.line && trace.line.color) || "#888";
}

export function FigureChart({ figure, ...rest }) {
  const box = useRef(null);
  const name = rest["data-testid"] || "chart";
  const [width, setWidth] = useState(() => storedWidth(name));
  const [hover, setHover] = useState(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    if (typeof ResizeObserver === "undefined") {
      setWidth(el.clientWidth || FALLBACK_WIDTH);
      return undefined;
    }
    const watch = new ResizeObserver((entries) => {
      const seen = Math.round(entries[entries.length - 1].contentRect.width) || FALLBACK_WIDTH;
      setWidth(seen);
      storeWidth(name, seen);
    });
    watch.observe(el);
    return () => watch.disconnect();
  }, [name]);

  const data = (figure && figure.data) || [];
  const layout = (figure && figure.layout) || {};
  const height = layout.height || 280;
  const margin = { l: 36, r: 12, t: 8, b: 32, ...(layout.margin || {}) };
  const font = layout.font || {};
  const fontColor = font.color || "#80838d";
  const fontSize = font.size || 11;
  const xaxis = layout.xaxis || {};
  const yaxis = layout.yaxis || {};
  const grid = yaxis.gridcolor || "rgba(128,128,128,0.18)";
  const stacked = layout.barmode === "stack";

  const xs = data.length ? data[0].x || [] : [];
  const n = xs.length;
  const plotW = Math.max(1, (width || FALLBACK_WIDTH) - margin.l - margin.r);
  const plotH = Math.max(1, height - margin.t - margin.b);
  // The highest point: the stacked total of bars, or each line's own values.
  let peak = 0;
  for (let i = 0; i < n; i++) {
    let stack = 0;
    for (const trace of data) {
      const v = Number((trace.y || [])[i] || 0);
      if (trace.type === "bar" && stacked) stack += v;
      else peak = Math.max(peak, v);
    }
    peak = Math.max(peak, stack);
  }
  const tick0 = Number(yaxis.tick0 || 0);
  const dtick = Number(yaxis.dtick) || Math.max(1, Math.ceil(peak / 5));
  const top = Math.max(dtick, Math.ceil(peak / dtick) * dtick);
  const ticks = [];
  for (let v = tick0; v <= top + 1e-9; v += dtick) ticks.push(v);
  const y = (v) => margin.t + plotH - (v / top) * plotH;
  // Each x's slot: its index, or on a date axis its day counted from the first (a day
  // missing from the data leaves its gap, as on a time axis).
  let slot = (i) => i;
  let slots = n;
  if (xaxis.type === "date" && n) {
    const day0 = Date.parse(String(xs[0]).slice(0, 10));
    const days = xs.map((x) => Math.round((Date.parse(String(x).slice(0, 10)) - day0) / 86400000));
    if (days.every((d, i) => Number.isFinite(d) && (i === 0 || d > days[i - 1]))) {
      slot = (i) => days[i];
      slots = days[n - 1] + 1;
    }
  }
  const band = plotW / Math.max(1, slots);
  const cx = (i) => margin.l + band * (slot(i) + 0.5);
  // Enough room for each x label, or every k-th one.
  const labelEvery = Math.max(1, Math.ceil((slots * fontSize * 3.4) / plotW));

  const marks = [];
  const base = new Array(n).fill(0);
  data.forEach((trace, t) => {
    const color = colorOf(trace);
    const ys = trace.y || [];
    if (trace.type === "bar") {
      const w = band * (stacked ? 0.8 : 0.8 / Math.max(1, data.length));
      for (let i = 0; i < n; i++) {
        const v = Number(ys[i] || 0);
        const from = stacked ? base[i] : 0;
        const x0 = cx(i) - band * 0.4 + (stacked ? 0 : w * t);
        marks.push(
          <rect key={`b${t}-${i}`} x={x0} y={y(from + v)} width={w} height={Math.max(0, y(from) - y(from + v))}
            fill={color} data-series={t} data-x={String(xs[i])} data-y={v} />,
        );
        if (stacked) base[i] += v;
      }
    } else {
      const points = ys.slice(0, n).map((v, i) => [cx(i), y(Number(v || 0))]);
      const lineWidth = (trace.line && trace.line.width) || 2;
      if (points.length) {
        marks.push(
          <path key={`l${t}`} d={points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join("")}
            fill="none" stroke={color} strokeWidth={lineWidth} strokeLinejoin="round" />,
        );
      }
      if (!trace.mode || trace.mode.includes("markers")) {
        points.forEach(([px, py], i) => marks.push(
          <circle key={`m${t}-${i}`} cx={px} cy={py} r={lineWidth + 1} fill={color} data-series={t} data-x={String(xs[i])} data-y={Number(ys[i] || 0)} />,
        ));
      }
    }
  });

  const shown = hover === null ? null : {
    x: hoverLabel(xs[hover], xaxis),
    rows: data.map((trace) => ({ name: trace.name || "", color: colorOf(trace), value: count((trace.y || [])[hover]) })),
    left: cx(hover) + 12 > (width || FALLBACK_WIDTH) - 110 ? cx(hover) - 122 : cx(hover) + 12,
  };

  return (
    <div ref={box} style={{ position: "relative", width: "100%", height }} {...rest}>
      {width ? (
        <svg className="wq-chart" width={width} height={height} dir="ltr" role="img" data-points={n}
          style={{ display: "block", fontSize, fontFamily: "inherit" }} onMouseLeave={() => setHover(null)}>
          {ticks.map((v) => (
            <g key={`t${v}`}>
              <line x1={margin.l} x2={margin.l + plotW} y1={y(v)} y2={y(v)} stroke={grid} />
              <text x={margin.l - 6} y={y(v)} dy="0.32em" textAnchor="end" fill={fontColor}>{count(v)}</text>
            </g>
          ))}
          {xs.map((x, i) => (slot(i) % labelEvery === 0 ? (
            <text key={`x${i}`} x={cx(i)} y={margin.t + plotH + fontSize + 6} textAnchor="middle" fill={fontColor}>{xLabel(x, xaxis)}</text>
          ) : null))}
          {marks}
          {hover !== null ? <line x1={cx(hover)} x2={cx(hover)} y1={margin.t} y2={margin.t + plotH} stroke={fontColor} strokeDasharray="3,3" /> : null}
          {xs.map((x, i) => (
            <rect key={`h${i}`} x={cx(i) - band / 2} y={margin.t} width={band} height={plotH} fill="transparent"
              onMouseEnter={() => setHover(i)} />
          ))}
        </svg>
      ) : null}
      {shown ? (
        <div role="tooltip" data-testid="chart-tooltip" style={{
          position: "absolute", top: margin.t, left: shown.left, pointerEvents: "none", minWidth: 100,
          background: "var(--color-panel-solid, #fff)", color: "var(--gray-12, #111)", border: "1px solid var(--gray-6, #ddd)",
          borderRadius: 6, padding: "4px 8px", fontSize: 12, boxShadow: "0 2px 8px rgba(0,0,0,.15)", direction: "ltr",
        }}>
          <div style={{ fontWeight: 600 }}>{shown.x}</div>
          {shown.rows.map((r) => (
            <div key={r.name}><span style={{ color: r.color }}>{r.name}</span> {r.value}</div>
          ))}
        </div>
      ) : null}
    </div>
  );
}
