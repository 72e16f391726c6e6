// habitat tracker page: reads the tracker API every few seconds and draws with
// plain SVG (no map tiles, no library, nothing fetched from elsewhere).
"use strict";

(function () {
  const body = document.body;
  const root = body.dataset.root || "";
  const refreshMs = Number(body.dataset.refresh) || 10000;
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_TRACK_PAGES = 10; // 10 pages of 1000 points
  const state = { selected: new URLSearchParams(location.search).get("payload"), payloads: [] };
  // For tests and curious users: how many refreshes this page load has done.
  window.tracker = { refreshes: 0, loadedAt: Date.now() };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    const node = tag in SVG_TAGS ? document.createElementNS(SVG, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  const SVG_TAGS = { svg: 1, polyline: 1, circle: 1, line: 1, text: 1, rect: 1, g: 1 };

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    return answer;
  }

  async function allPages(url, key, maxPages) {
    let items = [];
    for (let page = 0; url && page < maxPages; page++) {
      const answer = await getJSON(url);
      items = items.concat(answer[key]);
      url = answer.next;
    }
    return items;
  }

  function api(path, params) {
    const query = new URLSearchParams(params || {}).toString();
    return root + "/api/" + path + (query ? "?" + query : "");
  }

  function age(seconds) {
    const s = Math.max(0, Math.round(Date.now() / 1000 - seconds));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  function utc(iso) { return iso ? iso.replace("T", " ").replace("Z", "") : ""; }
  function metres(value) { return value === null || value === undefined ? "–" : value + " m"; }

  // -- the payload list ------------------------------------------------------

  function renderPayloads(payloads) {
    const tbody = $("payloads").tBodies[0];
    tbody.replaceChildren();
    for (const p of payloads) {
      const row = el("tr", { "data-callsign": p.callsign });
      if (p.callsign === state.selected) row.className = "selected";
      const link = el("a", { href: "?payload=" + encodeURIComponent(p.callsign) }, p.callsign);
      const cell = el("td");
      cell.append(link);
      const badge = el("span", { class: "state state-" + p.state }, p.state);
      const stateCell = el("td");
      stateCell.append(badge);
      row.append(
        cell, stateCell,
        el("td", {}, metres(p.position && p.position.altitude)),
        el("td", { class: "wide" }, metres(p.max_altitude)),
        el("td", { class: "wide" }, p.strings),
        el("td", { title: p.last_heard_iso }, age(p.last_heard)),
      );
      row.addEventListener("click", (event) => { event.preventDefault(); select(p.callsign); });
      tbody.append(row);
    }
    if (!payloads.length) {
      const row = el("tr");
      row.append(el("td", { colspan: 6 }, "No payload heard in the last 24 hours."));
      tbody.append(row);
    }
  }

  // -- the selected payload --------------------------------------------------

  function niceStep(span, count) {
    const raw = span / count;
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * magnitude >= raw) return m * magnitude;
    return 10 * magnitude;
  }

  // Equirectangular: x = longitude * cos(mean latitude), y = latitude; north up.
  function drawTrack(svg, points) {
    svg.replaceChildren();
    const W = 400, H = 300, M = 28;
    if (!points.length) { svg.append(el("text", { x: M, y: H / 2 }, "no position yet")); return; }
    const lats = points.map((p) => p.latitude), lons = points.map((p) => p.longitude);
    const minLat = Math.min(...lats), maxLat = Math.max(...lats);
    const minLon = Math.min(...lons), maxLon = Math.max(...lons);
    const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const spanX = Math.max((maxLon - minLon) * k, 1e-4), spanY = Math.max(maxLat - minLat, 1e-4);
    const scale = Math.min((W - 2 * M) / spanX, (H - 2 * M) / spanY); // px per degree of latitude
    const x0 = W / 2 - ((minLon + maxLon) / 2) * k * scale, y0 = H / 2 + ((minLat + maxLat) / 2) * scale;
    const px = (p) => [x0 + p.longitude * k * scale, y0 - p.latitude * scale];
    const xy = points.map(px);
    svg.append(el("polyline", {
      id: "track-line", fill: "none", stroke: "#1d3557", "stroke-width": 2,
      "stroke-linejoin": "round", points: xy.map((q) => q[0].toFixed(1) + "," + q[1].toFixed(1)).join(" "),
    }));
    const [lx, ly] = xy[xy.length - 1];
    svg.append(el("circle", { id: "track-latest", cx: lx.toFixed(1), cy: ly.toFixed(1), r: 5, fill: "#e63946" }));
    svg.append(el("circle", { cx: xy[0][0].toFixed(1), cy: xy[0][1].toFixed(1), r: 3.5, fill: "#2a9d8f" }));
    // The extent in degrees.
    svg.append(el("text", { x: 4, y: 14 }, "lat " + minLat.toFixed(4) + "° to " + maxLat.toFixed(4) + "°"));
    svg.append(el("text", { x: 4, y: 30 }, "lon " + minLon.toFixed(4) + "° to " + maxLon.toFixed(4) + "°"));
    // Scale bar: 1 degree of latitude is 111.32 km (WGS 84, mean).
    const kmPerPx = 111.32 / scale;
    const km = niceStep(kmPerPx * (W / 4), 1);
    const bar = km / kmPerPx;
    const g = el("g", { id: "track-scale" });
    g.append(el("line", { x1: M, y1: H - 16, x2: M + bar, y2: H - 16, stroke: "#1d2430", "stroke-width": 2 }));
    g.append(el("line", { x1: M, y1: H - 20, x2: M, y2: H - 12, stroke: "#1d2430" }));
    g.append(el("line", { x1: M + bar, y1: H - 20, x2: M + bar, y2: H - 12, stroke: "#1d2430" }));
    g.append(el("text", { x: M + bar / 2, y: H - 24, "text-anchor": "middle" }, km >= 1 ? km + " km" : km * 1000 + " m"));
    svg.append(g);
  }

  function drawAltitude(svg, points) {
    svg.replaceChildren();
    const W = 400, H = 300, L = 50, R = 10, T = 12, B = 28;
    const usable = points.filter((p) => typeof p.altitude === "number");
    if (!usable.length) { svg.append(el("text", { x: L, y: H / 2 }, "no altitude yet")); return; }
    const t0 = usable[0].time, t1 = Math.max(usable[usable.length - 1].time, t0 + 1);
    const top = Math.max(...usable.map((p) => p.altitude), 1);
    const bottom = Math.min(0, ...usable.map((p) => p.altitude));
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
    const y = (a) => H - B - (a - bottom) / (top - bottom) * (H - T - B);
    const step = niceStep(top - bottom, 4);
    for (let a = Math.ceil(bottom / step) * step; a <= top; a += step) {
      svg.append(el("line", { x1: L, x2: W - R, y1: y(a), y2: y(a), stroke: "#e3e6ea" }));
      svg.append(el("text", { x: L - 4, y: y(a) + 4, "text-anchor": "end" }, a));
    }
    const hhmm = (t) => new Date(t * 1000).toISOString().slice(11, 16);
    svg.append(el("text", { x: L, y: H - 8 }, hhmm(t0)));
    svg.append(el("text", { x: W - R, y: H - 8, "text-anchor": "end" }, hhmm(t1)));
    svg.append(el("polyline", {
      id: "altitude-line", fill: "none", stroke: "#e63946", "stroke-width": 2,
      points: usable.map((p) => x(p.time).toFixed(1) + "," + y(p.altitude).toFixed(1)).join(" "),
    }));
  }

  function renderSelected(summary, points, units, problems) {
    $("selected").hidden = false;
    $("selected-name").textContent = state.selected;
    const latest = points[points.length - 1];
    $("selected-state").textContent = summary ? summary.state : "not heard in the last 24 hours";
    const altitude = $("latest-altitude");
    altitude.textContent = latest ? metres(latest.altitude) : "–";
    altitude.dataset.value = latest && latest.altitude !== null ? latest.altitude : "";
    $("latest-rate").textContent = summary && summary.vertical_rate !== null ? summary.vertical_rate + " m/s" : "–";
    $("latest-position").textContent = latest ? latest.latitude + "°, " + latest.longitude + "°" : "–";
    $("latest-time").textContent = latest ? utc(latest.time_iso) + " UTC" : "–";
    $("export-csv").href = api("payloads/" + encodeURIComponent(state.selected) + "/track.csv");
    $("export-kml").href = api("payloads/" + encodeURIComponent(state.selected) + "/track.kml");
    drawTrack($("track"), points);
    drawAltitude($("altitude"), points);

    const fields = $("fields").tBodies[0];
    fields.replaceChildren();
    for (const [name, value] of Object.entries(latest ? latest.fields : {})) {
      const row = el("tr");
      row.append(el("th", {}, name), el("td", {}, value + (units[name] ? " " + units[name] : "")));
      fields.append(row);
    }
    const receivers = $("receivers").tBodies[0];
    receivers.replaceChildren();
    for (const r of latest ? latest.receivers : []) {
      const row = el("tr");
      const mhz = r.frequency ? (r.frequency / 1e6).toFixed(4) + " MHz" : "–";
      row.append(el("td", {}, r.callsign), el("td", {}, utc(r.time_created_iso)), el("td", {}, mhz));
      receivers.append(row);
    }
    const list = $("problems");
    list.replaceChildren();
    for (const p of problems) {
      const item = el("li");
      item.append(el("code", {}, p.sentence.trim()), document.createTextNode(" — " + p.reason + " (" + utc(p.time_iso) + " UTC)"));
      list.append(item);
    }
    if (!problems.length) list.append(el("li", {}, "None: every string heard parsed."));
  }

  // -- listeners ---------------------------------------------------------------

  function renderListeners(listeners) {
    const tbody = $("listeners").tBodies[0];
    tbody.replaceChildren();
    for (const l of listeners) {
      const info = l.information ? Object.entries(l.information.data).map(([k, v]) => k + ": " + v).join(", ") : "–";
      const t = l.telemetry && l.telemetry.data;
      const where = t ? t.latitude + "°, " + t.longitude + "°, " + metres(t.altitude) : "–";
      const when = l.telemetry || l.information;
      const row = el("tr");
      row.append(el("td", {}, l.callsign), el("td", {}, l.strings), el("td", {}, info),
        el("td", {}, where), el("td", {}, when ? utc(when.time_created_iso) : "–"));
      tbody.append(row);
    }
  }

  // -- refresh -------------------------------------------------------------------

  let busy = false;
  async function refresh() {
    if (busy) return; // the previous refresh is still reading: skip this tick
    busy = true;
    try {
      state.payloads = await allPages(api("payloads"), "payloads", 5);
      renderPayloads(state.payloads);
      if (state.selected) {
        const callsign = encodeURIComponent(state.selected);
        let units = {};
        let url = api("payloads/" + callsign + "/telemetry");
        let points = [];
        for (let page = 0; url && page < MAX_TRACK_PAGES; page++) {
          const answer = await getJSON(url);
          points = points.concat(answer.points);
          units = Object.assign(units, answer.units);
          url = answer.next;
        }
        const problems = (await getJSON(api("payloads/" + callsign + "/problems"))).problems;
        const summary = state.payloads.find((p) => p.callsign === state.selected);
        renderSelected(summary, points, units, problems);
      } else {
        $("selected").hidden = true;
      }
      renderListeners(await allPages(api("listeners"), "listeners", 2));
      $("status").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
      $("status").classList.remove("error");
    } catch (error) {
      $("status").textContent = "could not update: " + error.message;
      $("status").classList.add("error");
    } finally {
      busy = false;
    }
    window.tracker.refreshes += 1;
  }

  function select(callsign) {
    state.selected = callsign;
    const url = new URL(location.href);
    url.searchParams.set("payload", callsign);
    history.pushState({ payload: callsign }, "", url);
    refresh();
  }

  window.addEventListener("popstate", () => {
    state.selected = new URLSearchParams(location.search).get("payload");
    refresh();
  });

  refresh();
  setInterval(refresh, refreshMs);
})();
