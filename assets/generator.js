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
    // a figure not drawn yet is left to its own figure prop (it is built at the current phase)
    return (gd && gd.data && gd.data.length && window.Plotly) ? gd : null;
  }

  /* Is the element with this id on screen? Off-screen views are not redrawn at every
   * tick (at the largest sizes that work is what held the clock back); the last update
   * they missed runs when they scroll into view. */
  var seen = {};
  function onScreen(id, whenShown) {
    var el = document.getElementById(id);
    if (!el || !window.IntersectionObserver) { return true; }
    var w = seen[id];
    if (!w || w.el !== el) {
      if (w && w.obs) { w.obs.disconnect(); }
      w = seen[id] = {el: el, visible: true, later: null, obs: null};
      w.obs = new IntersectionObserver(function (entries) {
        entries.forEach(function (e) {
          w.visible = e.isIntersecting;
          if (w.visible && w.later) { var f = w.later; w.later = null; f(); }
        });
      });
      w.obs.observe(el);
    }
    if (!w.visible) { w.later = whenShown; }
    return w.visible;
  }

  /* Run fn(gd, arg) on a plotly figure at most every PLOT_GAP_MS while it is on screen; a
   * newer arg replaces a waiting one, so plots show the latest phase and never hold the
   * clock back. */
  var PLOT_GAP_MS = 150;
  var pending = {};
  function latest(id, fn, arg) {
    if (!onScreen(id, function () { latest(id, fn, arg); })) { return; }
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

  /* The pipeline view: seven labelled columns left to right at phase t (pattern p).
   * Drawn in two parts: what never changes for a chain (titles, the clock face, the
   * pattern slots, the routing matrix R) once per chain, and per tick only the clock
   * hand, the picked pattern and its row, and the dice of columns four to seven (one
   * string per pattern, built once and reused). */
  function pipeStatic(spec, T) {
    var out = [];
    var push = function (s) { out.push(s); };
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
    // 1 clock: a dial of T ticks (the lit tick and the hand are dynamic)
    var cx = colX(0), cy = H / 2 - 8, rad = 40;
    push('<circle cx="' + cx + '" cy="' + cy + '" r="' + (rad + 6) + '" fill="#fbfcfe" stroke="#c3c9d4"/>');
    for (var k = 0; k < T; k++) {
      var ang = 2 * Math.PI * k / T - Math.PI / 2;
      push('<circle cx="' + (cx + rad * Math.cos(ang)).toFixed(1) + '" cy="' + (cy + rad * Math.sin(ang)).toFixed(1) +
           '" r="2.5" fill="#c3c9d4"><title>phase ' + k + '</title></circle>');
    }
    // 2 lookup: P pattern slots (the looked-up one is dynamic)
    var P = spec.sizes[1];
    for (var j = 0; j < P; j++) {
      var y = entryY(j, P), r = Math.max(2, Math.min(7, pitch(P) * 0.38));
      push('<circle cx="' + colX(1) + '" cy="' + y.toFixed(1) + '" r="' + r + '" fill="#dfe3ea" stroke="#8a93a3" ' +
           'stroke-width="0.5"><title>pattern ' + j + '</title></circle>');
    }
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
    return out.join("");
  }

  var diceCache = {key: null, byPattern: {}};
  function pipeDice(spec, p, key) {
    if (diceCache.key !== key) { diceCache = {key: key, byPattern: {}}; }
    var cache = diceCache.byPattern;
    if (cache[p] !== undefined) { return cache[p]; }
    var out = [];
    var push = function (s) { out.push(s); };
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
            // a white halo keeps the value readable where it crosses the arrow between columns
            push('<text x="' + (X + full / 2 + 4).toFixed(1) + '" y="' + (yy + 3.5).toFixed(1) + '" font-size="10" ' +
                 'paint-order="stroke" stroke="#fff" stroke-width="3" stroke-linejoin="round">' +
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
    cache[p] = out.join("");
    return cache[p];
  }

  function pipeDynamic(spec, T, t, p, key) {
    var out = [];
    var push = function (s) { out.push(s); };
    var cx = colX(0), cy = H / 2 - 8, rad = 40;
    var ta = 2 * Math.PI * t / T - Math.PI / 2;
    push('<circle cx="' + (cx + rad * Math.cos(ta)).toFixed(1) + '" cy="' + (cy + rad * Math.sin(ta)).toFixed(1) +
         '" r="5" fill="' + ACTIVE + '"><title>phase ' + t + '</title></circle>');
    push('<line x1="' + cx + '" y1="' + cy + '" x2="' + (cx + (rad - 8) * Math.cos(ta)).toFixed(1) + '" y2="' +
         (cy + (rad - 8) * Math.sin(ta)).toFixed(1) + '" stroke="' + ACTIVE + '" stroke-width="3" stroke-linecap="round"/>');
    push('<text x="' + cx + '" y="' + (cy + rad + 24) + '" text-anchor="middle" font-size="13" font-weight="700">t = ' + t + '</text>');
    var P = spec.sizes[1], rp = Math.max(2, Math.min(7, pitch(P) * 0.38)) * 1.3;
    push('<circle cx="' + colX(1) + '" cy="' + entryY(p, P).toFixed(1) + '" r="' + rp + '" fill="' + ACTIVE +
         '" stroke="#8a93a3" stroke-width="0.5"><title>pattern ' + p + '</title></circle>');
    push('<text x="' + (colX(1) + 12) + '" y="' + (entryY(p, P) + 4).toFixed(1) + '" font-size="11" font-weight="700">p = ' + p + '</text>');
    var x0 = colX(2) - 42, ch = pitch(P);
    push('<rect x="' + (x0 - 2) + '" y="' + (TOP + p * ch - 1).toFixed(1) + '" width="88" height="' + (ch + 2).toFixed(1) +
         '" fill="none" stroke="' + ACTIVE + '" stroke-width="2.5"/>');
    return out.join("");
  }

  /* The dice of pattern p as a ready <g> node: parsed once per pattern, then swapped in. */
  var diceNodes = {key: null, byPattern: {}};
  function diceNode(spec, p, key) {
    if (diceNodes.key !== key) { diceNodes = {key: key, byPattern: {}}; }
    var g = diceNodes.byPattern[p];
    if (!g) {
      g = document.createElementNS("http://www.w3.org/2000/svg", "g");
      g.setAttribute("class", "gen-dice");
      g.innerHTML = pipeDice(spec, p, key);
      diceNodes.byPattern[p] = g;
    }
    return g;
  }

  /* Draw phase t into the box: the static part only when the chain (key) changed. */
  function drawPipeline(box, spec, T, t, p, key) {
    var svg = box.firstElementChild;
    if (!svg || box._chainKey !== key) {
      var out = [];
      var push = function (s) { out.push(s); };
      push('<svg viewBox="0 0 ' + W + ' ' + H + '" width="100%" height="100%" ' +
         'preserveAspectRatio="xMidYMid meet" data-phase="' + t + '" data-pattern="' + p + '" ' +
         'font-family="inherit" font-size="11">');
      box.innerHTML = out.join("") + pipeStatic(spec, T) + '<g class="gen-dyn"></g><g class="gen-dice"></g></svg>';
      box._chainKey = key;
      svg = box.firstElementChild;
    }
    var dyn = svg.querySelector("g.gen-dyn"), dice = svg.lastElementChild, want = diceNode(spec, p, key);
    dyn.innerHTML = pipeDynamic(spec, T, t, p, key);
    if (dice !== want) { svg.replaceChild(want, dice); }
    svg.setAttribute("data-phase", String(t));
    svg.setAttribute("data-pattern", String(p));
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

  /* The clock: a timer in the page, not a Dash Interval. A tick through Dash updates a
   * store, and the renderer then re-checks the whole page; at the largest sizes that was
   * most of the main thread's work per tick, and on a busy machine it is what stretched
   * ticks to 0.4-0.7 s. Here each tick advances by the ticks that elapsed in real time (a
   * busy browser skips phases rather than falling behind) and draws the phase directly;
   * the phase goes back into the page's Dash store (so steps, mute and new parameters
   * continue from it) when the clock stops. One clock per page: /generator and /scanner. */
  function Clock(prefix, draw) {
    this.prefix = prefix; this.draw = draw; this.timer = null; this.period = 200;
    this.t = 0; this.frames = null; this.muted = true; this.startedAt = null; this.tickAt = null;
  }
  Clock.prototype.running = function () { return this.timer !== null; };
  Clock.prototype.phase = function (stored) {
    return this.running() ? this.t : ((typeof stored === "number" && isFinite(stored)) ? stored : 0);
  };
  Clock.prototype.start = function (t) {
    this.t = t; this.last = this.startedAt = performance.now(); this.schedule();
  };
  Clock.prototype.schedule = function () {
    var self = this, wait = Math.max(0, self.last + self.period - performance.now());
    self.timer = window.setTimeout(function () { self.fire(); }, wait);
  };
  Clock.prototype.fire = function () {
    if (!document.getElementById(this.prefix + "-phase-text")) { this.timer = null; return; }  // page left
    var now = performance.now(), steps = Math.max(1, Math.floor((now - this.last) / this.period));
    this.last += steps * this.period;
    this.tickAt = now;
    if (this.frames && this.frames.T) {
      this.t = (this.t + steps) % this.frames.T;
      this.draw(this.t);
    }
    this.schedule();
  };
  Clock.prototype.stop = function () {
    window.clearTimeout(this.timer);
    this.timer = null;
    window.dash_clientside.set_props(this.prefix + "-phase", {data: this.t});
  };
  /* the play button and the rate radio -> start / stop the clock, or set its period */
  Clock.prototype.control = function (phase, tps) {
    var v = Number(tps);
    this.period = Math.round(1000 / Math.min(Math.max(isFinite(v) && v > 0 ? v : 5, 1), 20));
    if (triggered().indexOf("-play.") < 0) { return NO(); }
    if (this.running()) { this.stop(); return "Play"; }
    this.start(this.phase(phase));
    return "Pause";
  };
  /* a step button or new frames -> the phase the page shows (the running clock follows) */
  Clock.prototype.step = function (frames, phase) {
    if (!frames || !frames.T) { return NO(); }
    this.frames = frames;
    var T = frames.T, t = this.phase(phase), prop = triggered();
    if (prop.indexOf("-back.") >= 0) { t = t - 1; } else if (prop.indexOf("-fwd.") >= 0) { t = t + 1; }
    t = ((t % T) + T) % T;
    if (this.running()) { this.t = t; }
    return t;
  };

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== text) { el.textContent = text; }
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

  /* Light the phase's path: only the elements whose state changes are touched (at the
   * largest sizes a full relight of every element is what made the clock stutter). */
  var litState = {};
  function lightGraph(cy, frames, ph) {
    var act = frames.active[ph.key], key = frames.gkey, want = [];
    act.nodes.forEach(function (n) { want.push(key + "n" + n); });
    act.edges.forEach(function (e) { want.push(key + "e" + e); });
    want.push(key + "n" + ph.t);
    if (!frames.clock_drawn || frames.clock_drawn[ph.t]) { want.push(key + "e" + ph.t); }
    var st = litState.gen;
    if (!st || st.cy !== cy || st.key !== key) { st = litState.gen = {cy: cy, key: key, on: {}}; }
    var on = {}, wanted = {};
    want.forEach(function (id) { wanted[id] = true; });
    cy.batch(function () {
      Object.keys(st.on).forEach(function (id) {
        if (!wanted[id]) { cy.getElementById(id).removeClass("lit"); }
      });
      want.forEach(function (id) {
        if (st.on[id]) { on[id] = true; return; }
        var el = cy.getElementById(id);
        if (el.nonempty()) { el.addClass("lit"); on[id] = true; }
      });
    });
    st.on = on;
  }

  var lastGen = null;  // the phase on the clock: what an off-screen view catches up to
  function lightLatest() {
    var cy = cyOf("gen-cyto");
    if (lastGen && cy && cy.nodes().length) { lightGraph(cy, lastGen.frames, lastGen.ph); }
  }

  function drawPhase(frames, ph) {
    lastGen = {frames: frames, ph: ph};
    var box = document.getElementById("gen-pipeline");
    if (box) { drawPipeline(box, frames.pipe, frames.T, ph.t, ph.p, frames.gkey + "/" + frames.T); }
    if (onScreen("gen-cyto", lightLatest)) { lightLatest(); }
    latest("gen-heat", function (gd, key) { return window.Plotly.relayout(gd, {shapes: frames.heat[key]}); }, ph.key);
    latest("gen-wave", function (gd, key) { return window.Plotly.restyle(gd, {y: [frames.wave_y[key]]}, [0]); }, ph.key);
    latest("gen-harm", function (gd, key) { return window.Plotly.restyle(gd, {y: [frames.harm_y[key]]}, [0]); }, ph.key);
  }

  /* one phase drawn everywhere: the pipeline, the graph, the plots, the text, the tone */
  function drawGen(t) {
    var frames = clocks.gen.frames, ph = phaseOf(frames, t);
    drawPhase(frames, ph);
    if (clocks.gen.muted === false) { playTone(frames, ph.p); }
    setText("gen-phase-text", "phase " + ph.t + " / " + frames.T + " \u00b7 pattern " + ph.p);
  }

  var clocks = {gen: new Clock("gen", drawGen), scan: null};
  window.__clocks = clocks;  // read by the browser tests (the clock's start and last tick)

  ns.generator = {
    /* step buttons / new frames -> the phase (wraps around the clock) */
    tick: function (_back, _fwd, frames, phase) { return clocks.gen.step(frames, phase); },

    /* new frames (parameters changed) -> the plotly figures, through Dash, once */
    setup: function (frames, phase) {
      if (!frames || !frames.T) { return [NO(), NO(), NO()]; }
      clocks.gen.frames = frames;
      var ph = phaseOf(frames, clocks.gen.phase(phase));
      return [heatFigure(frames, ph), waveFigure(frames, ph), harmFigure(frames, ph)];
    },

    /* a stored phase (a step, new frames, the clock stopped): draw it in place; the text is
     * written by drawGen, so the Dash output stays as it was */
    render: function (phase, frames, muted) {
      if (!frames || !frames.T) { return NO(); }
      var c = clocks.gen;
      c.frames = frames;
      c.muted = muted;
      drawGen(c.phase(phase));
      // the graph may still be laying out new elements: light it again once it has
      window.setTimeout(function () { if (onScreen("gen-cyto", lightLatest)) { lightLatest(); } }, 80);
      return NO();
    },

    play: function (_n, tps, phase) { return clocks.gen.control(phase, tps); },

    mute: function (_n, muted, phase, frames) {
      var audio = document.getElementById("gen-audio");
      if (muted === false) {
        if (audio) { audio.pause(); audio.muted = true; }
        clocks.gen.muted = true;
        return [true, "Unmute"];
      }
      clocks.gen.muted = false;
      if (frames && frames.T) { playTone(frames, phaseOf(frames, clocks.gen.phase(phase)).p); }
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

  /* The transpose graph: every node takes its column's verdict at phase t (within /
   * exceeds / no bound); nodes with a nonzero reverse value are outlined. Only the
   * layers and nodes whose state changed are touched. */
  var VERDICT_CLASSES = "within exceeds nobound";
  function colourReverse(cy, fr, t) {
    var ph = fr.phases[t], key = fr.gkey;
    var st = litState.scan;
    if (!st || st.cy !== cy || st.key !== key) { st = litState.scan = {cy: cy, key: key, layer: [], on: {}}; }
    var want = {};
    for (var i = 0; i < 7; i++) {
      for (var j = 0; j < ph.rev[i].length; j++) {
        if (ph.rev[i][j] !== 0) { want[key + "n" + (fr.offsets[i] + j)] = true; }
      }
    }
    var on = {};
    cy.batch(function () {
      for (var i = 0; i < 7; i++) {
        var cls = ph.bound[i] === null ? "nobound" : (ph.agree[i] ? "within" : "exceeds");
        if (st.layer[i] !== cls) {
          var layer = cy.nodes(".L" + i);
          if (layer.nonempty()) { layer.removeClass(VERDICT_CLASSES).addClass(cls); st.layer[i] = cls; }
        }
      }
      Object.keys(st.on).forEach(function (id) { if (!want[id]) { cy.getElementById(id).removeClass("hot"); } });
      Object.keys(want).forEach(function (id) {
        if (st.on[id]) { on[id] = true; return; }
        var el = cy.getElementById(id);
        if (el.nonempty()) { el.addClass("hot"); on[id] = true; }
      });
    });
    st.on = on;
  }

  function colourScanGraph(frames, t) {
    var cy = cyOf("scan-cyto");
    if (cy && cy.nodes().length && frames.gkey) { colourReverse(cy, frames, t); }
  }

  /* The transpose graph's elements: laying out a few hundred of them was a third of the
   * browser's work per change, for a graph below the fold. They go to cytoscape when it is
   * on screen, else when it scrolls into view (then coloured at the clock's phase). */
  var scanGraph = {latest: null, shown: null};
  var lastScan = null;
  function showScanGraph() {
    if (!scanGraph.latest || scanGraph.latest === scanGraph.shown) { return; }
    scanGraph.shown = scanGraph.latest;
    window.dash_clientside.set_props("scan-cyto", {elements: scanGraph.latest});
    window.setTimeout(function () { if (lastScan) { colourScanGraph(lastScan.frames, lastScan.t); } }, 120);
  }

  function drawScan(t) {
    var frames = clocks.scan.frames, T = frames.T;
    t = ((t % T) + T) % T;
    lastScan = {frames: frames, t: t};
    var box = document.getElementById("scan-pipeline");
    if (box) { box.innerHTML = drawReverse(frames, t); }
    colourScanGraph(frames, t);
    latest("scan-heat", function (gd, tt) {
      return window.Plotly.relayout(gd, {shapes: [{type: "rect", xref: "paper", x0: 0, x1: 1, yref: "y",
        y0: tt - 0.5, y1: tt + 0.5, line: {color: ACTIVE, width: 2.5}}]});
    }, t);
    var ok = frames.phases[t].agree.filter(Boolean).length;
    setText("scan-phase-text", "phase " + t + " / " + T + " \u00b7 pattern " + frames.lut[t] + " \u00b7 " + ok +
            " of 7 columns within their bound");
  }
  clocks.scan = new Clock("scan", drawScan);

  ns.scanner = {
    tick: function (_back, _fwd, frames, phase) { return clocks.scan.step(frames, phase); },
    render: function (phase, frames) {
      if (!frames || !frames.T) { return NO(); }
      var c = clocks.scan, t = c.phase(phase);
      c.frames = frames;
      drawScan(t);
      // new elements may still be arriving with the frames: colour again once they have
      window.setTimeout(function () { colourScanGraph(frames, ((t % frames.T) + frames.T) % frames.T); }, 120);
      return NO();
    },
    play: function (_n, tps, phase) { return clocks.scan.control(phase, tps); },
    graph: function (elements) {
      if (!elements) { return NO(); }
      scanGraph.latest = elements;
      if (!onScreen("scan-cyto", showScanGraph)) { return NO(); }
      scanGraph.shown = elements;
      return elements;
    }
  };
})();
