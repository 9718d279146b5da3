/* Sparsity Lab, /generator: the clock runs here, in the browser.
 *
 * The server precomputes every phase once per parameter change (the gen-frames store,
 * components/figures_chain.py: generator_frames). A tick only picks the current
 * phase's pieces: the pipeline is redrawn as a small SVG, the graph's lit path is a
 * class toggle in cytoscape, and the plotly figures are updated in place with the
 * latest phase whenever plotly has finished the previous update (the clock never
 * waits for a plot). Nothing here goes back to the server.
 */
(function () {
  "use strict";
  var ns = window.dash_clientside = window.dash_clientside || {};
  var NO = function () { return window.dash_clientside.no_update; };
  var ACTIVE = "#f08c00";

  function triggered() {
    var ctx = window.dash_clientside.callback_context;
    return (ctx && ctx.triggered && ctx.triggered.length) ? ctx.triggered[0].prop_id : "";
  }

  function cyOf(id) {
    var el = document.getElementById(id);
    return (el && el._cyreg && el._cyreg.cy) || null;
  }

  function gdOf(id) {
    var el = document.getElementById(id);
    var gd = el && el.querySelector(".js-plotly-plot");
    return (gd && gd.data && window.Plotly) ? gd : null;
  }

  /* Run fn(gd, arg) on a plotly figure at most every PLOT_GAP_MS; a newer arg replaces a
   * waiting one, so plots show the latest phase and never hold the clock back. */
  var PLOT_GAP_MS = 150;
  var pending = {};
  function latest(id, fn, arg) {
    var slot = pending[id] = pending[id] || {last: 0, timer: null, arg: null};
    slot.arg = arg;
    if (slot.timer) { return; }
    var wait = Math.max(0, slot.last + PLOT_GAP_MS - performance.now());
    slot.timer = window.setTimeout(function () {
      slot.timer = null;
      slot.last = performance.now();
      var gd = gdOf(id);
      if (gd) { try { fn(gd, slot.arg); } catch (err) { /* figure replaced meanwhile */ } }
    }, wait);
  }

  /* value in [-vmax, vmax] -> blue (positive) / white / red (negative) */
  function color(v, vmax) {
    var u = Math.max(-1, Math.min(1, v / (vmax || 1)));
    var to = u >= 0 ? [47, 111, 219] : [197, 48, 48];
    var a = Math.abs(u);
    var c = [0, 1, 2].map(function (i) { return Math.round(247 + (to[i] - 247) * a); });
    return "rgb(" + c.join(",") + ")";
  }

  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;"); }
  function fmt(v) { return (Math.abs(v) >= 100 || (Math.abs(v) < 0.01 && v !== 0)) ? v.toExponential(1) : v.toFixed(2); }

  var W = 760, H = 470, TOP = 44, BOT = 430;
  function colX(i) { return 54 + i * 108; }
  function entryY(j, n) { return TOP + (j + 0.5) * (BOT - TOP) / n; }
  function pitch(n) { return (BOT - TOP) / n; }

  /* The pipeline view: seven labelled columns left to right at phase t (pattern p). */
  function drawPipeline(spec, T, t, p) {
    var out = [];
    var push = function (s) { out.push(s); };
    push('<svg viewBox="0 0 ' + W + ' ' + H + '" width="100%" height="100%" ' +
         'preserveAspectRatio="xMidYMid meet" data-phase="' + t + '" data-pattern="' + p + '" ' +
         'font-family="inherit" font-size="11">');
    push('<defs><marker id="gen-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" ' +
         'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7a8496"/></marker></defs>');
    spec.titles.forEach(function (title, i) {
      push('<text x="' + colX(i) + '" y="16" text-anchor="middle" font-weight="600">' + esc(title) + '</text>');
      push('<text x="' + colX(i) + '" y="' + (H - 16) + '" text-anchor="middle" fill="#5b6475" font-size="10">' +
           esc(spec.captions[i]) + '</text>');
      if (i < 6) {
        push('<line x1="' + (colX(i) + 36) + '" y1="' + (H / 2 - 8) + '" x2="' + (colX(i + 1) - 40) +
             '" y2="' + (H / 2 - 8) + '" stroke="#7a8496" stroke-width="1.5" marker-end="url(#gen-arrow)"/>');
      }
    });
    // 1 clock: a dial of T ticks, the hand on t
    var cx = colX(0), cy = H / 2 - 8, rad = 40;
    push('<circle cx="' + cx + '" cy="' + cy + '" r="' + (rad + 6) + '" fill="#fbfcfe" stroke="#c3c9d4"/>');
    for (var k = 0; k < T; k++) {
      var ang = 2 * Math.PI * k / T - Math.PI / 2;
      var on = k === t;
      push('<circle cx="' + (cx + rad * Math.cos(ang)).toFixed(1) + '" cy="' + (cy + rad * Math.sin(ang)).toFixed(1) +
           '" r="' + (on ? 5 : 2.5) + '" fill="' + (on ? ACTIVE : "#c3c9d4") + '"><title>phase ' + k + '</title></circle>');
    }
    var ha = 2 * Math.PI * t / T - Math.PI / 2;
    push('<line x1="' + cx + '" y1="' + cy + '" x2="' + (cx + (rad - 8) * Math.cos(ha)).toFixed(1) + '" y2="' +
         (cy + (rad - 8) * Math.sin(ha)).toFixed(1) + '" stroke="' + ACTIVE + '" stroke-width="3" stroke-linecap="round"/>');
    push('<text x="' + cx + '" y="' + (cy + rad + 24) + '" text-anchor="middle" font-size="13" font-weight="700">t = ' + t + '</text>');
    // 2 lookup: P pattern slots, the looked-up one lit
    var P = spec.sizes[1];
    for (var j = 0; j < P; j++) {
      var y = entryY(j, P), r = Math.max(2, Math.min(7, pitch(P) * 0.38));
      push('<circle cx="' + colX(1) + '" cy="' + y.toFixed(1) + '" r="' + (j === p ? r * 1.3 : r) + '" fill="' +
           (j === p ? ACTIVE : "#dfe3ea") + '" stroke="#8a93a3" stroke-width="0.5"><title>pattern ' + j + '</title></circle>');
    }
    push('<text x="' + (colX(1) + 12) + '" y="' + (entryY(p, P) + 4).toFixed(1) + '" font-size="11" font-weight="700">p = ' + p + '</text>');
    // 3 select: the routing matrix R, rows aligned with the lookup, the picked row outlined
    var K = spec.sizes[2], x0 = colX(2) - 42, cw = 84 / K, ch = pitch(P);
    for (var i = 0; i < P; i++) {
      var row = spec.R[i];
      for (var c = 0; c < K; c++) {
        if (row[c] === 0) { continue; }
        push('<rect x="' + (x0 + c * cw).toFixed(2) + '" y="' + (TOP + i * ch + 0.5).toFixed(2) + '" width="' +
             Math.max(cw - 0.3, 0.6).toFixed(2) + '" height="' + Math.max(ch - 1, 0.6).toFixed(2) + '" fill="' +
             color(row[c], spec.rmax) + '"><title>R[' + i + ',' + c + '] = ' + fmt(row[c]) + '</title></rect>');
      }
    }
    push('<rect x="' + x0 + '" y="' + TOP + '" width="84" height="' + (BOT - TOP) + '" fill="none" stroke="#dfe3ea"/>');
    push('<rect x="' + (x0 - 2) + '" y="' + (TOP + p * ch - 1).toFixed(1) + '" width="88" height="' + (ch + 2).toFixed(1) +
         '" fill="none" stroke="' + ACTIVE + '" stroke-width="2.5"/>');
    // 4-7: the sparse vector as dice (nonzeros only), its activation, h and y
    var vals = spec.values[String(p)];
    [["sparse", 3, "x", true], ["activation", 4, "a", true], ["propagate", 5, "h", false],
     ["assemble", 6, "y", false]].forEach(function (col) {
      var v = vals[col[0]], n = v.length, vmax = spec.scales[col[0]], X = colX(col[1]);
      var full = Math.max(3, Math.min(18, pitch(n) * 0.86));
      for (var e = 0; e < n; e++) {
        var yy = entryY(e, n);
        if (v[e] === 0) {
          if (col[3]) { push('<circle cx="' + X + '" cy="' + yy.toFixed(1) + '" r="0.9" fill="#dfe3ea"/>'); }
          continue;
        }
        var sz = full * (0.45 + 0.55 * Math.min(1, Math.abs(v[e]) / vmax));
        var tip = '<title>' + col[2] + '[' + e + '] = ' + fmt(v[e]) + '</title>';
        if (col[3]) {
          push('<rect x="' + (X - sz / 2).toFixed(1) + '" y="' + (yy - sz / 2).toFixed(1) + '" width="' + sz.toFixed(1) +
               '" height="' + sz.toFixed(1) + '" rx="' + (sz / 5).toFixed(1) + '" fill="' + color(v[e], vmax) +
               '" stroke="#333" stroke-width="0.8" class="die">' + tip + '</rect>');
          if (spec.labels) {
            push('<text x="' + (X + full / 2 + 4).toFixed(1) + '" y="' + (yy + 3.5).toFixed(1) + '" font-size="10">' +
                 e + ': ' + fmt(v[e]) + '</text>');
          }
        } else if (col[0] === "assemble") {
          var len = 40 * Math.abs(v[e]) / vmax, bh = Math.max(2, pitch(n) * 0.6);
          push('<rect x="' + (v[e] >= 0 ? X : X - len).toFixed(1) + '" y="' + (yy - bh / 2).toFixed(1) + '" width="' +
               Math.max(len, 0.8).toFixed(1) + '" height="' + bh.toFixed(1) + '" fill="' + color(v[e], vmax) +
               '" stroke="#333" stroke-width="0.5">' + tip + '</rect>');
        } else {
          push('<circle cx="' + X + '" cy="' + yy.toFixed(1) + '" r="' + (sz / 2).toFixed(1) + '" fill="' +
               color(v[e], vmax) + '" stroke="#333" stroke-width="0.6">' + tip + '</circle>');
        }
      }
      if (col[0] === "assemble") {
        push('<line x1="' + X + '" y1="' + TOP + '" x2="' + X + '" y2="' + BOT + '" stroke="#8a93a3" stroke-width="0.8"/>');
      }
    });
    push('</svg>');
    return out.join("");
  }

  function playTone(frames, p) {
    var audio = document.getElementById("gen-audio");
    if (!audio || !frames || !frames.wav) { return; }
    var src = frames.wav[String(p)];
    if (!src) { return; }
    audio.muted = false;
    audio.src = src;
    audio.dataset.pattern = String(p);
    var played = audio.play();
    if (played && played.catch) { played.catch(function () { /* blocked until a gesture */ }); }
  }

  /* The clock keeps real time: an interval tick advances by the ticks that elapsed since
   * the last one (a busy browser skips phases rather than falling behind). */
  var clocks = {gen: {last: null}, scan: {last: null}};
  function stepPhase(clock, prop, phase, T, periodMs) {
    var t = (typeof phase === "number" && isFinite(phase)) ? phase : 0;
    if (prop.indexOf("back") >= 0) { return ((t - 1) % T + T) % T; }
    if (prop.indexOf("fwd") >= 0) { return (t + 1) % T; }
    if (prop.indexOf("n_intervals") < 0) { return ((t % T) + T) % T; }
    var now = performance.now(), period = Math.max(Number(periodMs) || 100, 10), steps = 1;
    if (clock.last !== null) {
      steps = Math.max(1, Math.round((now - clock.last) / period));
      clock.last += steps * period;
    } else {
      clock.last = now;
    }
    window.__genTickAt = now;
    return (t + steps) % T;
  }

  function phaseOf(frames, phase) {
    var T = frames.T;
    var t = ((Number(phase) || 0) % T + T) % T;
    return {t: t, p: frames.lut[t], key: String(frames.lut[t])};
  }

  function heatFigure(frames, ph) {
    var hb = frames.heat_base;
    return {data: hb.data, layout: Object.assign({}, hb.layout, {shapes: frames.heat[ph.key]})};
  }

  function waveFigure(frames, ph) {
    return {data: [{type: "scatter", mode: "lines", x: frames.wave_x, y: frames.wave_y[ph.key],
                    line: {color: "#2f6fdb", width: 2},
                    hovertemplate: "%{x:.2f} ms: %{y:.3f}<extra></extra>"}],
            layout: frames.layouts.wave};
  }

  function harmFigure(frames, ph) {
    return {data: [{type: "bar", x: frames.harm_x, y: frames.harm_y[ph.key], marker: {color: ACTIVE},
                    hovertemplate: "%{x} Hz: %{y:.4f}<extra></extra>"}],
            layout: frames.layouts.harm};
  }

  function lightGraph(cy, frames, ph) {
    var act = frames.active[ph.key];
    cy.batch(function () {
      cy.elements(".lit").removeClass("lit");
      cy.$(act.nodes.concat(["#" + frames.gkey + "n" + ph.t]).join(", ")).addClass("lit");
      cy.$(act.edges.concat(["#" + frames.gkey + "e" + ph.t]).join(", ")).addClass("lit");
    });
  }

  function drawPhase(frames, ph) {
    var box = document.getElementById("gen-pipeline");
    if (box) { box.innerHTML = drawPipeline(frames.pipe, frames.T, ph.t, ph.p); }
    var cy = cyOf("gen-cyto");
    if (cy && cy.nodes().length) { lightGraph(cy, frames, ph); }
    latest("gen-heat", function (gd, key) { return window.Plotly.relayout(gd, {shapes: frames.heat[key]}); }, ph.key);
    latest("gen-wave", function (gd, key) { return window.Plotly.restyle(gd, {y: [frames.wave_y[key]]}, [0]); }, ph.key);
    latest("gen-harm", function (gd, key) { return window.Plotly.restyle(gd, {y: [frames.harm_y[key]]}, [0]); }, ph.key);
  }

  ns.generator = {
    /* interval / step buttons / new frames -> the phase (wraps around the clock) */
    tick: function (_n, _back, _fwd, frames, phase, periodMs) {
      if (!frames || !frames.T) { return NO(); }
      return stepPhase(clocks.gen, triggered(), phase, frames.T, periodMs);
    },

    /* new frames (parameters changed) -> the plotly figures, through Dash, once */
    setup: function (frames, phase) {
      if (!frames || !frames.T) { return [NO(), NO(), NO()]; }
      var ph = phaseOf(frames, phase);
      return [heatFigure(frames, ph), waveFigure(frames, ph), harmFigure(frames, ph)];
    },

    /* every tick: redraw in place (no Dash props but the counter, no round trip) */
    render: function (phase, frames, muted) {
      if (!frames || !frames.T) { return NO(); }
      var ph = phaseOf(frames, phase);
      drawPhase(frames, ph);
      // the graph may still be laying out new elements: light it again once it has
      window.setTimeout(function () {
        var cy = cyOf("gen-cyto");
        if (cy && cy.nodes().length) { lightGraph(cy, frames, ph); }
      }, 80);
      if (muted === false) { playTone(frames, ph.p); }
      return "phase " + ph.t + " / " + frames.T + " \u00b7 pattern " + ph.p;
    },

    play: function (_n, disabled) {
      if (disabled === false) { return [true, "Play"]; }
      clocks.gen.last = performance.now();  // ticks count from the press
      window.__genPlayedAt = clocks.gen.last;
      return [false, "Pause"];
    },

    rate: function (tps) {
      var v = Number(tps);
      if (!isFinite(v) || v <= 0) { v = 5; }
      return Math.round(1000 / Math.min(Math.max(v, 1), 20));
    },

    mute: function (_n, muted, phase, frames) {
      var audio = document.getElementById("gen-audio");
      if (muted === false) {
        if (audio) { audio.pause(); audio.muted = true; }
        return [true, "Unmute"];
      }
      if (frames && frames.T) { playTone(frames, phaseOf(frames, phase).p); }
      return [false, "Mute"];
    },

    view: function (which) {
      window.setTimeout(function () {
        var cy = cyOf("gen-cyto");
        if (cy) { cy.resize(); cy.fit(undefined, 12); }
      }, 60);
      if (which === "pipeline") { return ["one-col", false, true]; }
      if (which === "graph") { return ["one-col", true, false]; }
      return ["two-col", false, false];
    }
  };

  /* ---- /scanner: the reverse pass, animated with the same clock, right to left ---- */
  var RW = 760, RH = 445, RTOP = 40, RBOT = 360;
  function drawReverse(fr, t) {
    var ph = fr.phases[t], out = [];
    var push = function (s) { out.push(s); };
    push('<svg viewBox="0 0 ' + RW + ' ' + RH + '" width="100%" height="100%" preserveAspectRatio="xMidYMid meet" ' +
         'data-phase="' + t + '" font-family="inherit" font-size="11">');
    push('<defs><marker id="scan-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" ' +
         'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7a8496"/></marker></defs>');
    for (var i = 0; i < 7; i++) {
      var X = colX(i), n = ph.fwd[i].length, pit = (RBOT - RTOP) / n, ok = ph.agree[i];
      var col = ok ? "#1f8a4c" : "#c53030";
      // the reverse pass reaches the columns from the right: later columns light first
      push('<g class="scan-col" style="animation-delay:' + ((6 - i) * 45) + 'ms">');
      push('<text x="' + X + '" y="16" text-anchor="middle" font-weight="600">' + esc(fr.titles[i]) + '</text>');
      push('<line x1="' + X + '" y1="' + RTOP + '" x2="' + X + '" y2="' + RBOT + '" stroke="#dfe3ea"/>');
      for (var j = 0; j < n; j++) {
        var y = RTOP + (j + 0.5) * pit, bh = Math.max(1.5, Math.min(10, pit * 0.38));
        var f = ph.fwd[i][j] * 40, r = ph.rev[i][j] * 40;
        push('<rect x="' + (f >= 0 ? X : X + f).toFixed(1) + '" y="' + (y - bh).toFixed(1) + '" width="' +
             Math.max(Math.abs(f), 0.6).toFixed(1) + '" height="' + bh.toFixed(1) +
             '" fill="#c3c9d4"><title>forward ' + fmt(ph.fwd[i][j]) + '</title></rect>');
        push('<rect x="' + (r >= 0 ? X : X + r).toFixed(1) + '" y="' + y.toFixed(1) + '" width="' +
             Math.max(Math.abs(r), 0.6).toFixed(1) + '" height="' + bh.toFixed(1) + '" fill="' + col +
             '"><title>reverse ' + fmt(ph.rev[i][j]) + '</title></rect>');
      }
      var nob = ph.bound[i] === null;
      if (nob) { col = "#5b6475"; }
      push('<text x="' + X + '" y="' + (RBOT + 22) + '" text-anchor="middle" fill="' + col + '" font-weight="700">' +
           (nob ? "no bound" : (ok ? "within bound" : "exceeds bound")) + '</text>');
      push('<text x="' + X + '" y="' + (RBOT + 38) + '" text-anchor="middle" fill="#5b6475" font-size="10">err ' +
           fmt(ph.err[i]) + (nob ? '' : ' / ' + fmt(ph.bound[i])) + '</text>');
      push('</g>');
      if (i < 6) {
        push('<line x1="' + (colX(i + 1) - 44) + '" y1="' + (RBOT + 52) + '" x2="' + (colX(i) + 44) + '" y2="' +
             (RBOT + 52) + '" stroke="#7a8496" stroke-width="1.5" marker-end="url(#scan-arrow)"/>');
      }
    }
    push('<text x="' + (RW / 2) + '" y="' + (RH - 4) + '" text-anchor="middle" fill="#5b6475" font-size="10">' +
         'grey: forward value, coloured: reverse value (each column scaled by its largest forward value)</text>');
    push('</svg>');
    return out.join("");
  }

  ns.scanner = {
    tick: function (_n, _back, _fwd, frames, phase, periodMs) {
      if (!frames || !frames.T) { return NO(); }
      return stepPhase(clocks.scan, triggered(), phase, frames.T, periodMs);
    },
    render: function (phase, frames) {
      if (!frames || !frames.T) { return NO(); }
      var T = frames.T, t = ((Number(phase) || 0) % T + T) % T;
      var box = document.getElementById("scan-pipeline");
      if (box) { box.innerHTML = drawReverse(frames, t); }
      latest("scan-heat", function (gd, tt) {
        return window.Plotly.relayout(gd, {shapes: [{type: "rect", xref: "paper", x0: 0, x1: 1, yref: "y",
          y0: tt - 0.5, y1: tt + 0.5, line: {color: ACTIVE, width: 2.5}}]});
      }, t);
      var ok = frames.phases[t].agree.filter(Boolean).length;
      return "phase " + t + " / " + T + " \u00b7 pattern " + frames.lut[t] + " \u00b7 " + ok + " of 7 columns within their bound";
    },
    play: function (_n, disabled) {
      if (disabled === false) { return [true, "Play"]; }
      clocks.scan.last = performance.now();
      return [false, "Pause"];
    }
  };
})();
