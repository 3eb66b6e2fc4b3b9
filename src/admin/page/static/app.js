/*
 * casarray status page. Polls the admin API every second and draws what it
 * says with the DOM API only: text goes in through textContent and
 * attributes, never as markup, so nothing a member or a config says can
 * become script. No inline script or style: the page runs under
 * Content-Security-Policy "script-src 'self'; style-src 'self'".
 */
(function () {
  'use strict';

  /** Time between two polls of the API, in milliseconds. */
  var POLL_MS = 1000;
  /** Poll answers older than this make the page say it is stale, in ms. */
  var STALE_MS = 3000;
  /** How many lines the action log keeps. */
  var LOG_LINES = 8;

  /*
   * The admin token, as the user typed it. In this variable only: never in
   * the browser's storage, a cookie or the URL. Forgotten when the page is
   * reloaded or closed, and when the API refuses it (401).
   */
  var token = null;
  /** Whether read calls need the token too (admin listener not on loopback). */
  var readsNeedToken = false;

  var polling = false;
  var pollAgain = false;
  var timer = null;
  var lastOk = 0;
  var lastError = '';
  /** What each section last drew, to redraw only on change. */
  var drawn = {};
  /** The series' bound and spacing, from GET /api/series. */
  var capacity = 600;
  var intervalMs = 1000;

  var SVG = 'http://www.w3.org/2000/svg';

  function $(id) {
    return document.getElementById(id);
  }

  /* ---------- Building elements (text only, never markup) ---------- */

  function setProps(e, props) {
    Object.keys(props || {}).forEach(function (k) {
      var v = props[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'text') {
        e.textContent = String(v);
      } else if (k === 'on') {
        Object.keys(v).forEach(function (ev) { e.addEventListener(ev, v[ev]); });
      } else if (k === 'data') {
        Object.keys(v).forEach(function (dk) { e.dataset[dk] = String(v[dk]); });
      } else {
        e.setAttribute(k, v === true ? '' : String(v));
      }
    });
  }

  function append(e, children) {
    children.forEach(function (c) {
      if (Array.isArray(c)) {
        append(e, c);
      } else if (c !== null && c !== undefined && c !== false) {
        e.append(c instanceof Node ? c : document.createTextNode(String(c)));
      }
    });
  }

  /** h('td', {class: 'x', text: 'y'}, child...): an HTML element. */
  function h(tag, props) {
    var e = document.createElement(tag);
    setProps(e, props);
    append(e, Array.prototype.slice.call(arguments, 2));
    return e;
  }

  /** An SVG element, the same way. */
  function s(tag, props) {
    var e = document.createElementNS(SVG, tag);
    setProps(e, props);
    append(e, Array.prototype.slice.call(arguments, 2));
    return e;
  }

  /* ---------- Formatting ---------- */

  function fmtRate(v) {
    if (typeof v !== 'number' || !isFinite(v)) return '–';
    if (v >= 100) return v.toFixed(0);
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  function clock(ms) {
    var d = new Date(ms);
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  function day(unixSeconds) {
    return new Date(unixSeconds * 1000).toISOString().slice(0, 10);
  }

  function span(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + ' s';
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min';
    if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ' + Math.floor((seconds % 3600) / 60) + ' min';
    return Math.floor(seconds / 86400) + ' d ' + Math.floor((seconds % 86400) / 3600) + ' h';
  }

  function ago(ms) {
    return span((Date.now() - ms) / 1000) + ' ago';
  }

  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : many);
  }

  /* ---------- Talking to the API ---------- */

  function HttpError(status, message) {
    this.status = status;
    this.message = message;
  }

  /** One API call; resolves to the JSON answer, rejects with HttpError. */
  function call(method, path, body) {
    var headers = {};
    if (token !== null && (method !== 'GET' || readsNeedToken)) {
      headers.Authorization = 'Bearer ' + token;
    }
    var init = { method: method, headers: headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
        if (!r.ok) {
          var why = data && typeof data.error === 'string' ? data.error : text.trim().slice(0, 300);
          throw new HttpError(r.status, why || r.statusText || 'error');
        }
        return data;
      });
    }, function (e) {
      throw new HttpError(0, 'the admin listener did not answer (' + (e && e.message ? e.message : 'network error') + ')');
    });
  }

  /* ---------- Polling ---------- */

  function poll() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    clearTimeout(timer);
    Promise.all([
      call('GET', '/api/array'),
      call('GET', '/api/members'),
      call('GET', '/api/databases'),
      call('GET', '/api/overview'),
      call('GET', '/api/series')
    ]).then(function (answers) {
      lastOk = Date.now();
      lastError = '';
      hideBanner();
      draw({
        array: answers[0] || {},
        members: Array.isArray(answers[1]) ? answers[1] : [],
        databases: Array.isArray(answers[2]) ? answers[2] : [],
        overview: answers[3] || {},
        series: answers[4] || {}
      });
    }, function (e) {
      lastError = e && e.message ? e.message : String(e);
      if (e instanceof HttpError && e.status === 401) {
        readsNeedToken = true;
        token = null;
        askForReadToken();
      }
    }).then(function () {
      polling = false;
      showLive();
      if (pollAgain) {
        pollAgain = false;
        poll();
      } else {
        timer = setTimeout(poll, POLL_MS);
      }
    });
  }

  function showLive() {
    var live = $('live');
    var fresh = lastOk && Date.now() - lastOk < STALE_MS && !lastError;
    if (fresh) {
      live.dataset.state = 'live';
      live.textContent = '● Live: updated ' + clock(lastOk);
    } else if (lastOk) {
      live.dataset.state = 'stale';
      live.textContent = '⚠ Stale: last answer ' + ago(lastOk) + (lastError ? ' (' + lastError + ')' : '');
    } else {
      live.dataset.state = lastError ? 'stale' : 'connecting';
      live.textContent = lastError ? '⚠ No answer: ' + lastError : 'Connecting to the admin API…';
    }
  }

  function hideBanner() {
    var b = $('banner');
    b.hidden = true;
    b.replaceChildren();
  }

  function askForReadToken() {
    var b = $('banner');
    if (!b.hidden) return;
    b.replaceChildren(
      'This admin listener answers its read calls only with the admin token.',
      h('button', {
        type: 'button',
        on: {
          click: function () {
            ask({ title: 'Read the status', text: 'Give the admin token to read the status from this listener.', confirm: 'Show the status' })
              .then(function (ok) { if (ok) { hideBanner(); poll(); } });
          }
        }
      }, 'Give the token')
    );
    b.hidden = false;
  }

  /* ---------- Drawing ---------- */

  /**
   * Draws `make(input)` into the element `id` when `input` differs from
   * what it drew last; the focused control (by its data-key) keeps focus.
   */
  function section(id, input, make) {
    var key = JSON.stringify(input);
    if (drawn[id] === key) return;
    drawn[id] = key;
    var box = $(id);
    var active = document.activeElement;
    var keep = active && box.contains(active) && active.dataset ? active.dataset.key : null;
    box.replaceChildren(make(input));
    if (keep) focusByKey(keep);
  }

  /** Focuses the control drawn with data-key `key`, if there is one. */
  function focusByKey(key) {
    var e = document.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (e) e.focus();
  }

  function draw(d) {
    if (typeof d.series.capacity === 'number' && d.series.capacity > 1) capacity = d.series.capacity;
    if (typeof d.series.interval_ms === 'number' && d.series.interval_ms > 0) intervalMs = d.series.interval_ms;
    var name = d.array.name || 'casarray';
    $('array-name').textContent = name;
    document.title = name + ' · casarray status';
    var about = [];
    if (d.array.fqdn) about.push(d.array.fqdn);
    if (d.array.site) about.push('site ' + d.array.site);
    about.push(plural(d.members.length, 'member', 'members'));
    $('array-about').textContent = about.join(' · ');

    var tenSeconds = Math.floor(Date.now() / 10000);
    section('tiles', { m: d.members, o: d.overview, s: d.series, t: tenSeconds }, function () { return tiles(d); });
    section('members', { a: d.array.services, m: d.members, r: d.overview.rates, s: d.series.members }, function () { return membersTable(d); });
    section('databases', { db: d.databases, m: d.members.map(function (m) { return m.name; }) }, function () { return databases(d); });
    section('smtp', { h: d.overview.smtp, m: d.members }, function () { return smtp(d); });
    section('certs', { c: d.overview.certificates, r: d.overview.reloads, t: tenSeconds }, function () { return certificates(d); });
    section('blocked', { b: d.overview.blocked }, function () { return blocked(d); });
  }

  /** A sparkline of `values` (oldest first), right-aligned on the window. */
  function sparkline(values, label, cls, width, height) {
    width = width || 240;
    height = height || 40;
    values = Array.isArray(values) ? values : [];
    var n = values.length;
    var max = 1;
    values.forEach(function (v) { if (v > max) max = v; });
    // The time axis grows with the data: 2 minutes at first, then up to
    // the whole window the server keeps (10 minutes); newest on the right.
    var slots = Math.max(Math.min(capacity, Math.max(n, 120)), n, 2);
    var points = values.map(function (v, i) {
      var x = ((slots - n + i) / (slots - 1)) * width;
      var y = height - 1 - (Math.max(0, v) / max) * (height - 3);
      return x.toFixed(1) + ',' + y.toFixed(1);
    });
    var svg = s('svg', {
      class: 'spark' + (cls ? ' ' + cls : ''),
      viewBox: '0 0 ' + width + ' ' + height,
      preserveAspectRatio: 'none',
      role: 'img',
      'aria-label': label
    }, s('title', { text: label }));
    svg.append(s('line', { class: 'base', x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, 'vector-effect': 'non-scaling-stroke' }));
    if (n > 0) {
      var firstX = points[0].split(',')[0];
      var lastX = points[n - 1].split(',')[0];
      svg.append(s('polygon', { points: firstX + ',' + height + ' ' + points.join(' ') + ' ' + lastX + ',' + height }));
      svg.append(s('polyline', { points: points.join(' '), 'vector-effect': 'non-scaling-stroke' }));
    }
    return svg;
  }

  function seriesNote(values, unit) {
    if (!Array.isArray(values) || values.length === 0) return 'collecting samples…';
    var max = 0;
    values.forEach(function (v) { if (v > max) max = v; });
    return 'last ' + span(values.length * intervalMs / 1000) + ', peak ' + fmtRate(max) + ' ' + unit;
  }

  function tile(id, cls, label, value, unit, extra) {
    return h('div', { class: 'tile' + (cls ? ' ' + cls : ''), id: 'tile-' + id },
      h('p', { class: 'label', text: label }),
      h('p', { class: 'value' }, h('span', { class: 'v', text: value }), unit ? h('small', { text: ' ' + unit }) : null),
      extra);
  }

  function tiles(d) {
    var o = d.overview;
    var rates = o.rates || null;
    var box = document.createDocumentFragment();
    var req = d.series.requests_per_s || [];
    var err = d.series.errors_per_s || [];
    box.append(tile('requests', '', 'Requests', rates ? fmtRate(rates.requests_per_s) : '–', '/s', [
      sparkline(req, 'Requests per second, ' + seriesNote(req, 'per second')),
      h('p', { class: 'note', text: seriesNote(req, '/s') })
    ]));
    var errNow = rates ? rates.errors_per_s : 0;
    box.append(tile('errors', errNow > 0 ? 'down' : '', 'Errors (5xx)', rates ? fmtRate(errNow) : '–', '/s', [
      sparkline(err, 'Errors (5xx) per second, ' + seriesNote(err, 'per second'), 'bad'),
      h('p', { class: 'note', text: seriesNote(err, '/s') })
    ]));

    var healthy = 0;
    var draining = 0;
    d.members.forEach(function (m) {
      if (m.state === 'draining') draining += 1;
      else if (m.healthy) healthy += 1;
    });
    var total = d.members.length;
    var mcls = healthy === total ? 'up' : (healthy === 0 ? 'down' : 'warn');
    var notes = [];
    if (draining) notes.push(draining + ' draining');
    if (total - healthy - draining) notes.push((total - healthy - draining) + ' unhealthy');
    box.append(tile('members', mcls, 'Members healthy', healthy + ' of ' + total, '', h('p', {
      class: 'note',
      text: notes.length ? notes.join(', ') : (total ? 'all taking traffic' : 'no members')
    })));

    var certs = Array.isArray(o.certificates) ? o.certificates : [];
    if (certs.length) {
      var c = certs[0];
      var ccls = c.days_left < 0 ? 'down' : (c.days_left < 14 ? 'down' : (c.days_left < 30 ? 'warn' : 'up'));
      box.append(tile('certificate', ccls, 'Certificate', c.days_left < 0 ? 'expired' : String(c.days_left), c.days_left < 0 ? '' : (c.days_left === 1 ? 'day left' : 'days left'),
        h('p', { class: 'note', text: c.name + ', until ' + day(c.expires_unix) })));
    } else {
      box.append(tile('certificate', '', 'Certificate', '–', '', h('p', { class: 'note', text: 'none reported' })));
    }

    var started = typeof o.started_unix === 'number' ? o.started_unix : null;
    box.append(tile('uptime', '', 'Up for', started ? span(Date.now() / 1000 - started) : '–', '',
      h('p', { class: 'note', text: started ? 'since ' + new Date(started * 1000).toLocaleString() : 'start time unknown' })));
    return box;
  }

  function serviceNames(d) {
    var names = Array.isArray(d.array.services) ? d.array.services.slice() : [];
    d.members.forEach(function (m) {
      Object.keys(m.services || {}).forEach(function (svc) {
        if (names.indexOf(svc) < 0) names.push(svc);
      });
    });
    return names;
  }

  /** A member's overall status: a word for tests and screen readers, a class, a text. */
  function memberStatus(m) {
    var names = Object.keys(m.services || {});
    var down = names.filter(function (svc) { return m.services[svc] !== true; });
    if (m.state === 'draining') {
      return { word: 'draining', cls: 'draining', text: '◐ draining' + (down.length ? ' (' + down.length + ' down)' : '') };
    }
    if (names.length > 0 && down.length === names.length) {
      return { word: 'down', cls: 'down', text: '✗ down' };
    }
    if (down.length > 0) {
      return { word: 'unhealthy', cls: 'warn', text: '⚠ ' + down.length + ' of ' + names.length + ' down' };
    }
    return { word: 'healthy', cls: 'up', text: '✓ healthy' };
  }

  function healthCell(m, svc) {
    var services = m.services || {};
    if (!Object.prototype.hasOwnProperty.call(services, svc)) {
      return h('td', { class: 'cell none', title: m.name + ' does not take ' + svc, data: { service: svc, state: 'none' } },
        h('span', { 'aria-hidden': 'true', text: '—' }),
        h('span', { class: 'visually-hidden', text: 'not served' }));
    }
    var up = services[svc] === true;
    var check = (m.last_checks || {})[svc] || null;
    var draining = m.state === 'draining';
    var word = draining ? 'draining' : (up ? 'up' : 'down');
    var icon = draining ? '◐' : (up ? '✓' : '✗');
    var reason = check ? (check.detail || (check.ok ? 'passed' : 'failed')) : 'not checked yet';
    var when = check && typeof check.at_unix_ms === 'number' ? ' at ' + clock(check.at_unix_ms) : '';
    var title = m.name + ' ' + svc + ': ' + (up ? 'healthy' : 'unhealthy') + (draining ? ', draining' : '') +
      '. Last check' + when + ': ' + reason;
    return h('td', { class: 'cell ' + word, title: title, data: { service: svc, state: word } },
      h('span', { class: 'state', text: icon + ' ' + word }),
      draining ? h('span', { class: 'sub', text: up ? 'healthy' : 'unhealthy' }) : null,
      up && check ? h('span', { class: 'visually-hidden', text: ', last check: ' + reason }) : h('span', { class: 'reason', text: reason }));
  }

  function membersTable(d) {
    var services = serviceNames(d);
    var rates = (d.overview.rates && d.overview.rates.members) || {};
    var perMember = d.series.members || {};
    if (d.members.length === 0) return h('p', { class: 'muted', text: 'No members in the config.' });
    return h('table', { class: 'members-table' },
      h('caption', { class: 'visually-hidden', text: 'Members by service: up, down or draining, with the last health check' }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Member' }),
        h('th', { scope: 'col', text: 'Load' }),
        services.map(function (svc) { return h('th', { scope: 'col', text: svc }); }),
        h('th', { scope: 'col', text: 'Action' }))),
      h('tbody', {}, d.members.map(function (m) {
        var st = memberStatus(m);
        var draining = m.state === 'draining';
        var verb = draining ? 'Activate' : 'Drain';
        var inFlight = typeof m.in_flight === 'number' ? m.in_flight : null;
        return h('tr', { data: { member: m.name, status: st.word } },
          h('th', { scope: 'row' },
            h('span', { class: 'name', text: m.name }), ' ',
            h('span', { class: 'pill ' + st.cls, text: st.text }),
            m.fqdn ? h('span', { class: 'sub', text: m.fqdn }) : null,
            m.address ? h('span', { class: 'sub', text: m.address }) : null),
          h('td', { class: 'load' },
            h('span', { class: 'rate', text: fmtRate(rates[m.name]) + ' req/s' }),
            sparkline(perMember[m.name], 'Requests per second to ' + m.name + ', ' + seriesNote(perMember[m.name], 'per second'), '', 120, 24),
            h('span', { class: 'sub in-flight', text: inFlight === null ? 'in flight: –' : inFlight + ' in flight' })),
          services.map(function (svc) { return healthCell(m, svc); }),
          h('td', {}, h('button', {
            type: 'button',
            class: draining ? '' : 'warn',
            'aria-label': verb + ' ' + m.name,
            data: { key: 'member-' + m.name, action: draining ? 'activate' : 'drain', member: m.name },
            on: { click: function () { memberAction(m.name, draining ? 'activate' : 'drain'); } }
          }, verb)));
      })));
  }

  function hasCopies(databases) {
    return databases.some(function (db) { return Array.isArray(db.copies) && db.copies.length > 0; });
  }

  function moveButton(db, targets, preselect, text, label, key) {
    return h('button', {
      type: 'button',
      'aria-label': label,
      data: { key: key, action: 'move-active', database: db.name },
      on: { click: function () { moveAction(db.name, targets, preselect); } }
    }, text);
  }

  function databases(d) {
    var dbs = d.databases;
    var memberNames = d.members.map(function (m) { return m.name; });
    if (dbs.length === 0) return h('p', { class: 'muted', text: 'No databases in the config.' });
    if (!hasCopies(dbs)) {
      return h('div', {},
        h('p', { class: 'muted', text: 'No database copies reported: the members run no DAG (or [dag] enabled is off).' }),
        h('div', { class: 'scroll' }, h('table', {},
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', text: 'Database' }),
            h('th', { scope: 'col', text: 'RPC client access server' }),
            h('th', { scope: 'col', text: 'Action' }))),
          h('tbody', {}, dbs.map(function (db) {
            return h('tr', { data: { database: db.name } },
              h('th', { scope: 'row', text: db.name }),
              h('td', { text: db.rpc_client_access_server || '(unset: clients see what the server says)' }),
              h('td', {}, moveButton(db, memberNames, null, 'Move active copy…', 'Move the active copy of ' + db.name, 'move-' + db.name)));
          })))));
    }
    return h('div', { class: 'dbs' }, dbs.map(function (db) {
      var copies = Array.isArray(db.copies) ? db.copies.slice() : [];
      copies.sort(function (a, b) { return (a.activation_preference || 99) - (b.activation_preference || 99); });
      var servers = copies.map(function (c) { return c.server; });
      var active = typeof db.active === 'string' ? db.active : null;
      var facts = [
        ['Active', active ? active : 'none mounted'],
        ['Copies', String(copies.length)]
      ];
      if (typeof db.failovers === 'number') facts.push(['Failovers', String(db.failovers)]);
      if (db.rpc_client_access_server) facts.push(['RPC client access', db.rpc_client_access_server]);
      return h('article', { class: 'db', data: { database: db.name, active: active || '' } },
        h('header', {},
          h('h3', { text: db.name }),
          active ? h('span', { class: 'pill up', text: '● mounted on ' + active }) : h('span', { class: 'pill down', text: '✗ not mounted' })),
        h('dl', {}, facts.map(function (f) {
          return h('div', {}, h('dt', { text: f[0] }), h('dd', { text: f[1] }));
        })),
        copies.length === 0 ? h('p', { class: 'muted', text: 'No copies reported.' }) : h('div', { class: 'scroll' }, h('table', {},
          h('caption', { class: 'visually-hidden', text: 'Copies of ' + db.name }),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', text: 'Server' }),
            h('th', { scope: 'col', class: 'num', text: 'Pref.' }),
            h('th', { scope: 'col', text: 'Status' }),
            h('th', { scope: 'col', class: 'num', text: 'Copy queue' }),
            h('th', { scope: 'col', class: 'num', text: 'Replay queue' }),
            h('th', { scope: 'col', text: 'Action' }))),
          h('tbody', {}, copies.map(function (c) {
            var mounted = c.server === active || c.status === 'Mounted';
            var cls = copyClass(c.status);
            return h('tr', { class: mounted ? 'mounted' : '', data: { server: c.server, status: c.status || '' } },
              h('th', { scope: 'row' }, String(c.server), mounted ? h('span', { class: 'sub', text: 'active copy' }) : null),
              h('td', { class: 'num', text: c.activation_preference === undefined ? '–' : c.activation_preference }),
              h('td', {}, h('span', { class: 'pill ' + cls, text: copyIcon(cls) + ' ' + (c.status || 'unknown') })),
              h('td', { class: 'num', text: c.copy_queue === undefined || c.copy_queue === null ? '–' : c.copy_queue }),
              h('td', { class: 'num', text: c.replay_queue === undefined || c.replay_queue === null ? '–' : c.replay_queue }),
              h('td', {}, mounted ? h('span', { class: 'muted', text: '—' })
                : moveButton(db, servers, c.server, 'Make active', 'Make ' + c.server + ' the active copy of ' + db.name, 'move-' + db.name + '-' + c.server)));
          })))));
    }));
  }

  function copyClass(status) {
    switch (status) {
      case 'Mounted':
      case 'Healthy':
        return 'up';
      case 'Initializing':
      case 'Suspended':
      case 'Dismounted':
        return 'warn';
      case 'Failed':
      case 'ServiceDown':
        return 'down';
      default:
        return 'none';
    }
  }

  function copyIcon(cls) {
    return { up: '✓', warn: '⚠', down: '✗', none: '?' }[cls] || '?';
  }

  function smtp(d) {
    var hubs = Array.isArray(d.overview.smtp) ? d.overview.smtp : [];
    if (hubs.length === 0) {
      return h('p', { class: 'muted', text: 'No SMTP: listen.smtp is not set, or no member has an smtp address.' });
    }
    return h('table', {},
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Hub' }),
        h('th', { scope: 'col', text: 'SMTP health' }),
        h('th', { scope: 'col', class: 'num', text: 'Sessions open' }),
        h('th', { scope: 'col', class: 'num', text: 'Handed over' }))),
      h('tbody', {}, hubs.map(function (hub) {
        var m = d.members.filter(function (x) { return x.name === hub.member; })[0] || {};
        var check = (m.last_checks || {}).smtp;
        var draining = m.state === 'draining';
        var word = draining ? 'draining' : (hub.up ? 'up' : 'down');
        return h('tr', { data: { member: hub.member } },
          h('th', { scope: 'row', text: hub.member }),
          h('td', { title: check ? 'Last check at ' + clock(check.at_unix_ms) + ': ' + (check.detail || '') : 'not checked yet' },
            h('span', { class: 'pill ' + word, text: (draining ? '◐ ' : (hub.up ? '✓ ' : '✗ ')) + word }),
            !hub.up && check && check.detail ? h('span', { class: 'sub', text: check.detail }) : null),
          h('td', { class: 'num', text: hub.sessions }),
          h('td', { class: 'num', text: hub.connections }));
      })));
  }

  function certificates(d) {
    var o = d.overview;
    var list = h('ul', { class: 'facts' });
    var certs = Array.isArray(o.certificates) ? o.certificates : [];
    if (certs.length === 0) list.append(h('li', { class: 'muted', text: 'No certificate reported.' }));
    certs.forEach(function (c) {
      var cls = c.days_left < 14 ? 'down' : (c.days_left < 30 ? 'warn' : 'up');
      var left = c.days_left < 0 ? 'EXPIRED' : plural(c.days_left, 'day', 'days') + ' left';
      list.append(h('li', { data: { certificate: c.name } },
        h('strong', { text: c.name }), ' expires ', h('time', { datetime: day(c.expires_unix), text: day(c.expires_unix) }), ' ',
        h('span', { class: 'pill ' + cls, text: left })));
    });
    var r = o.reloads || {};
    var last = r.last;
    var reload = h('li', { id: 'reloads' },
      h('strong', { text: 'Reloads' }), ' since start: ',
      (r.success || 0) + ' applied, ' + (r.failure || 0) + ' refused. ',
      last ? ['Last: ', h('span', { class: 'pill ' + (last.result === 'success' ? 'up' : 'down'), text: last.result === 'success' ? '✓ success' : '✗ refused (old config kept)' }),
        ' at ' + clock(last.at_unix_ms) + ' (' + ago(last.at_unix_ms) + ')']
        : h('span', { class: 'muted', text: 'None since start.' }));
    list.append(reload);
    return list;
  }

  function blocked(d) {
    var b = d.overview.blocked;
    if (b === null || b === undefined || typeof b !== 'object') {
      return h('p', { class: 'muted', text: 'Not counted by this build (no casarray_blocked_requests_total).' });
    }
    var rules = Object.keys(b).sort(function (x, y) { return (b[y] - b[x]) || (x < y ? -1 : 1); });
    var total = rules.reduce(function (n, r) { return n + (b[r] || 0); }, 0);
    if (rules.length === 0) return h('p', { class: 'muted', text: 'No shield rules are on.' });
    return h('div', {},
      h('p', { class: 'muted', text: plural(total, 'request', 'requests') + ' refused with 403 since start.' }),
      h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Rule' }), h('th', { scope: 'col', class: 'num', text: 'Blocked' }))),
        h('tbody', {}, rules.map(function (rule) {
          return h('tr', { data: { rule: rule } }, h('th', { scope: 'row' }, h('code', { text: rule })), h('td', { class: 'num', text: b[rule] }));
        }))));
  }

  /* ---------- Actions ---------- */

  var pending = null;

  /**
   * Opens the confirmation dialog; resolves to {target} once confirmed
   * with a token (kept in `token`), or null when cancelled.
   */
  function ask(opts) {
    if (pending) pending(null);
    var dlg = $('confirm');
    $('confirm-title').textContent = opts.title;
    $('confirm-text').textContent = opts.text || '';
    $('go').textContent = opts.confirm || 'Confirm';
    var row = $('target-row');
    var select = $('target');
    var targets = opts.targets || null;
    select.replaceChildren.apply(select, (targets || []).map(function (t) { return h('option', { value: t, text: t }); }));
    if (opts.preselect) select.value = opts.preselect;
    row.hidden = !targets;
    var input = $('token');
    input.value = token || '';
    var opener = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key || null : null;
    return new Promise(function (resolve) {
      pending = function (answer) {
        pending = null;
        if (dlg.open) dlg.close();
        // The control that opened it may have been drawn again meanwhile.
        if (opener) focusByKey(opener);
        resolve(answer);
      };
      dlg.showModal();
      if (targets && !opts.preselect) select.focus();
      else input.focus();
    });
  }

  function setupDialog() {
    var dlg = $('confirm');
    $('confirm-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var typed = $('token').value.trim();
      if (!typed) return;
      token = typed;
      if (pending) pending({ target: $('target').value });
    });
    $('cancel').addEventListener('click', function () { if (pending) pending(null); });
    dlg.addEventListener('cancel', function (ev) {
      ev.preventDefault();
      if (pending) pending(null);
    });
    // Closed some other way (a form method=dialog, the browser): cancelled.
    // A dialog opened again meanwhile is not.
    dlg.addEventListener('close', function () { if (pending && !dlg.open) pending(null); });
  }

  function showResult(kind, text) {
    var r = $('result');
    r.className = 'result ' + kind;
    r.dataset.kind = kind;
    r.textContent = text;
    r.hidden = false;
    if (kind === 'pending') return;
    var log = $('log');
    if (log.firstElementChild && log.firstElementChild.classList.contains('muted')) log.replaceChildren();
    log.prepend(h('li', { class: kind }, clock(Date.now()) + ' ' + text));
    while (log.children.length > LOG_LINES) log.lastElementChild.remove();
  }

  /** Sends one mutation with the token and shows what happened. */
  function act(label, method, path, body, success) {
    showResult('pending', label + '…');
    return call(method, path, body).then(function (answer) {
      showResult('ok', label + ': done. ' + success(answer || {}));
    }, function (e) {
      var status = e instanceof HttpError ? e.status : 0;
      var why = (status ? 'HTTP ' + status + ': ' : '') + (e && e.message ? e.message : String(e));
      if (status === 401) {
        token = null;
        why += ' (the token was forgotten)';
      }
      showResult('bad', label + ': failed. ' + why);
    }).then(function () {
      poll();
    });
  }

  function memberAction(name, what) {
    var drain = what === 'drain';
    var verb = drain ? 'Drain' : 'Activate';
    ask({
      title: verb + ' ' + name + '?',
      text: drain
        ? 'No new request goes to ' + name + ' (its sticky clients move to the other members); requests in flight finish. It stays drained across restarts until activated.'
        : name + ' takes new requests again.',
      confirm: verb + ' ' + name
    }).then(function (answer) {
      if (!answer) return;
      act(verb + ' ' + name, 'POST', '/api/members/' + encodeURIComponent(name) + '/' + what, undefined, function (m) {
        return name + ' is ' + (m.state || 'changed') + '.';
      });
    });
  }

  function moveAction(database, targets, preselect) {
    ask({
      title: 'Move the active copy of ' + database + '?',
      text: 'Switchover: the chosen server mounts ' + database + ' and the current one dismounts it; mailboxes in it pause while it moves.',
      confirm: 'Move',
      targets: targets,
      preselect: preselect
    }).then(function (answer) {
      if (!answer) return;
      var server = answer.target;
      act('Move ' + database + ' to ' + server, 'POST', '/api/databases/' + encodeURIComponent(database) + '/move-active', { server: server }, function (db) {
        return database + ' is mounted on ' + (typeof db.active === 'string' ? db.active : server) + '.';
      });
    });
  }

  function start() {
    setupDialog();
    poll();
    setInterval(showLive, 1000);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
}());
