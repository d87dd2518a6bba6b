// Leadchat sales dashboard: the live feed of PROTOCOL §4 (/admin/ws), the
// archive API of §3 and a 14-day chart. Plain browser JavaScript, no build
// step. Everything a visitor typed reaches the page through textContent,
// never through HTML parsing.
'use strict';

(() => {
  const PRIORITIES = ['low', 'medium', 'high', 'critical'];
  const HOT = 2; // rank of `high`: from here on a lead is worth a jump
  const TOKEN_KEY = 'leadchat.adminToken';
  const BACKOFF_BASE_MS = 1000;
  const BACKOFF_CAP_MS = 30000;
  const CHART_DAYS = 14;

  const $ = (id) => document.getElementById(id);
  const rank = (p) => Math.max(0, PRIORITIES.indexOf(p));
  const label = (p) => (p ? p[0].toUpperCase() + p.slice(1) : '—');
  const displayName = (s) => (s && s.name) || 'Anonymous visitor';

  /** `el('td', {className: 'num'}, 'text', child)`: a DOM node, text escaped. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k in node && !k.startsWith('aria')) node[k] = v;
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    live: new Map(), // session_id -> SESSION, as the feed last told it
    seenRank: new Map(), // session_id -> priority rank last seen, to spot a new hot lead
    hasSnapshot: false,
    unacked: new Set(), // hot leads nobody has opened yet
    detail: null, // {id, kind: 'live'|'archived', lastSeq, ended}
    archive: { offset: 0, total: 0, loaded: false },
  };

  // ---------------------------------------------------------------- time

  const timeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  function parseTime(t) {
    const d = t ? new Date(t) : null;
    return d && !Number.isNaN(d.getTime()) ? d : null;
  }

  function relative(d) {
    const s = Math.round((Date.now() - d.getTime()) / 1000);
    if (s < 10) return 'just now';
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return timeFmt.format(d);
  }

  /** A <time> that keeps saying "2 min ago" as minutes pass. */
  function timeEl(t, relativeStyle) {
    const d = parseTime(t);
    if (!d) return el('span', { className: 'muted' }, '—');
    return el('time', {
      dateTime: d.toISOString(),
      title: timeFmt.format(d),
      dataset: relativeStyle ? { rel: '1' } : {},
    }, relativeStyle ? relative(d) : timeFmt.format(d));
  }

  setInterval(() => {
    for (const t of document.querySelectorAll('time[data-rel]')) {
      t.textContent = relative(new Date(t.dateTime));
    }
  }, 10000);

  // ---------------------------------------------------------------- API

  class Unauthorized extends Error {}

  async function api(path, opts = {}) {
    const res = await fetch(path, {
      method: opts.method || 'GET',
      headers: { Authorization: `Bearer ${opts.token || state.token}` },
      cache: 'no-store',
    });
    if (res.status === 401) throw new Unauthorized('unauthorized');
    if (opts.raw) return res;
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) {
      const err = new Error((body && body.message) || `HTTP ${res.status}`);
      err.status = res.status;
      err.code = body && body.error;
      throw err;
    }
    return body;
  }

  function apiFailed(err) {
    if (err instanceof Unauthorized) signOut('The admin token was refused; sign in again.');
    else toast(`Request failed: ${err.message}`, 'error');
  }

  /** The PDF needs the bearer header, so a plain link cannot fetch it. */
  async function downloadReport(id) {
    try {
      const res = await api(`/api/sessions/${encodeURIComponent(id)}/report.pdf`, { raw: true });
      if (!res.ok) {
        let msg = `HTTP ${res.status}`;
        try { msg = (await res.json()).message || msg; } catch { /* keep status */ }
        throw new Error(msg);
      }
      const url = URL.createObjectURL(await res.blob());
      const a = el('a', { href: url, download: `session_${id}.pdf` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      apiFailed(err);
    }
  }

  function reportLink(id, text) {
    return el('a', {
      href: `/api/sessions/${encodeURIComponent(id)}/report.pdf`,
      className: 'pdf-link',
      dataset: { report: id },
      'aria-label': `Download PDF report of session ${id}`,
    }, text || 'PDF');
  }

  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a[data-report]');
    if (!a) return;
    ev.preventDefault();
    ev.stopPropagation();
    downloadReport(a.dataset.report);
  }, true);

  // The detail panel sits under the top bar, whose height depends on what it says.
  new ResizeObserver(() => {
    document.documentElement.style.setProperty('--topbar-h', `${document.querySelector('.topbar').offsetHeight}px`);
  }).observe(document.querySelector('.topbar'));

  // ---------------------------------------------------------------- sign-in

  function showLogin(message) {
    $('app').hidden = true;
    $('login').hidden = false;
    $('signout').hidden = true;
    $('login-error').textContent = message || '';
    setConn('idle', 'Not connected');
    $('token').focus();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('token').value.trim();
    $('login-error').textContent = '';
    try {
      await api('/api/sessions?limit=1', { token });
    } catch (err) {
      $('login-error').textContent = err instanceof Unauthorized
        ? 'That token was refused.'
        : err.code === 'admin_disabled'
          ? 'The admin API is disabled on this server (LEADCHAT_ADMIN_TOKEN is not set).'
          : `The server did not answer: ${err.message}`;
      return;
    }
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    start();
  });

  function signOut(message) {
    feed.wanted = false;
    if (feed.ws) feed.ws.close();
    clearTimeout(feed.timer);
    clearInterval(feed.countdown);
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.live.clear();
    state.seenRank.clear();
    state.unacked.clear();
    state.hasSnapshot = false;
    closeDetail();
    renderLive();
    showLogin(message);
  }

  $('signout').addEventListener('click', () => signOut(''));

  function start() {
    $('login').hidden = true;
    $('app').hidden = false;
    $('signout').hidden = false;
    updateNotifyButton();
    route();
    connect();
  }

  // ---------------------------------------------------------------- feed

  const feed = { ws: null, attempt: 0, timer: null, countdown: null, wanted: false };

  function setConn(kind, text, countdown) {
    const box = $('conn');
    box.dataset.state = kind;
    $('conn-text').textContent = text;
    $('conn-countdown').textContent = countdown || '';
    $('conn-retry').hidden = kind !== 'reconnecting';
    const stale = kind !== 'live' && state.hasSnapshot;
    $('live-stale').hidden = !stale;
    $('live-table').classList.toggle('stale', stale);
  }

  function connect() {
    clearTimeout(feed.timer);
    clearInterval(feed.countdown);
    feed.wanted = true;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/admin/ws?token=${encodeURIComponent(state.token)}`);
    feed.ws = ws;
    let opened = false;
    setConn(feed.attempt ? 'reconnecting' : 'connecting', feed.attempt ? 'Reconnecting…' : 'Connecting…');
    ws.onopen = () => { opened = true; };
    ws.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (frame && typeof frame === 'object') onFrame(frame);
    };
    ws.onclose = () => {
      if (feed.ws !== ws) return;
      feed.ws = null;
      if (feed.wanted) onDrop(opened);
    };
  }

  async function onDrop(wasOpen) {
    // A browser is not told why an upgrade failed: ask the API whether the
    // token still holds before retrying for ever.
    if (!wasOpen) {
      try {
        await api('/api/sessions?limit=1');
      } catch (err) {
        if (err instanceof Unauthorized) { signOut('The admin token was refused; sign in again.'); return; }
      }
    }
    if (!feed.wanted) return;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** feed.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    feed.attempt += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setConn('reconnecting', 'Reconnecting…', `in ${left} s (attempt ${feed.attempt})`);
    };
    tick();
    feed.countdown = setInterval(tick, 1000);
    feed.timer = setTimeout(connect, delay);
  }

  $('conn-retry').addEventListener('click', () => { if (state.token) connect(); });
  window.addEventListener('online', () => { if (state.token && !feed.ws) connect(); });

  function send(frame) {
    if (feed.ws && feed.ws.readyState === WebSocket.OPEN) feed.ws.send(JSON.stringify(frame));
  }

  function onFrame(f) {
    switch (f.type) {
      case 'snapshot': return onSnapshot(f.sessions || []);
      case 'session_updated': return f.session && onUpdated(f.session);
      case 'session_ended': return onEnded(f);
      case 'transcript': return onTranscript(f);
      case 'message': return onMessage(f);
      case 'error': return toast(`Feed: ${f.message || f.code || 'error'}`, 'error');
      default: return undefined; // unknown frames are ignored, as the protocol asks
    }
  }

  function onSnapshot(sessions) {
    const alert = state.hasSnapshot; // a reconnect: whatever turned hot meanwhile is news
    const next = new Map();
    for (const s of sessions) {
      next.set(s.session_id, s);
      noteRank(s, alert);
    }
    for (const id of state.live.keys()) {
      if (!next.has(id)) state.unacked.delete(id);
    }
    state.live = next;
    state.hasSnapshot = true;
    feed.attempt = 0;
    clearInterval(feed.countdown);
    setConn('live', 'Live');
    const d = state.detail;
    if (d && d.kind === 'live' && !d.ended) {
      if (next.has(d.id)) {
        renderDetailSession(next.get(d.id));
        send({ type: 'watch', session_id: d.id });
      } else {
        markDetailEnded(null);
      }
    }
    renderLive();
    updateHotUi();
  }

  function onUpdated(s) {
    state.live.set(s.session_id, s);
    noteRank(s, true);
    const d = state.detail;
    if (d && d.id === s.session_id && d.kind === 'live') renderDetailSession(s);
    renderLive();
    updateHotUi();
  }

  function onEnded(f) {
    const s = state.live.get(f.session_id);
    state.live.delete(f.session_id);
    state.unacked.delete(f.session_id);
    renderLive();
    updateHotUi();
    const who = s ? displayName(s) : 'A visitor';
    toast(`${who}'s chat ended (${f.reason || 'ended'}); it is in the archive.`);
    const d = state.detail;
    if (d && d.id === f.session_id) markDetailEnded(f.reason);
    refreshArchiveSoon();
  }

  // ---------------------------------------------------------------- hot leads

  function noteRank(s, alert) {
    const r = rank(s.priority);
    const before = state.seenRank.get(s.session_id);
    state.seenRank.set(s.session_id, r);
    if (alert && r >= HOT && (before === undefined || r > before)) raiseHot(s);
  }

  function raiseHot(s) {
    const id = s.session_id;
    const open = state.detail && state.detail.id === id;
    if (!open) state.unacked.add(id);
    flashRow(id);
    const org = s.organization ? ` (${s.organization})` : '';
    const text = `New ${s.priority} lead: ${displayName(s)}${org}, score ${s.lead_score ?? '—'}.`;
    announce(text);
    state.lastHot = id;
    $('hot-banner-text').textContent = text;
    $('hot-banner').dataset.priority = s.priority;
    $('hot-banner').hidden = open;
    if ('Notification' in window && Notification.permission === 'granted') {
      try {
        const n = new Notification(`${label(s.priority)} lead: ${displayName(s)}`, {
          body: `${s.organization || s.email || ''} · score ${s.lead_score ?? '—'}`.replace(/^ · /, ''),
          tag: `leadchat-${id}`,
        });
        n.onclick = () => { window.focus(); openDetail(id, 'live'); n.close(); };
      } catch { /* some browsers allow notifications only from a service worker */ }
    }
  }

  function updateHotUi() {
    const n = state.unacked.size;
    document.title = `${n ? `(${n}) ` : ''}Leadchat · Sales dashboard`;
    if (state.lastHot && !state.unacked.has(state.lastHot)) $('hot-banner').hidden = true;
  }

  $('hot-banner-open').addEventListener('click', () => {
    if (state.lastHot) openDetail(state.lastHot, state.live.has(state.lastHot) ? 'live' : 'archived');
  });
  $('hot-banner-dismiss').addEventListener('click', () => {
    $('hot-banner').hidden = true;
  });

  function announce(text) {
    const a = $('announcer');
    a.textContent = '';
    // A fresh text node after a tick makes screen readers speak a repeat too.
    setTimeout(() => { a.textContent = text; }, 50);
  }

  function toast(text, kind) {
    const t = el('div', { className: `toast ${kind || ''}`, role: kind === 'error' ? 'alert' : undefined }, text);
    $('toasts').append(t);
    setTimeout(() => t.remove(), 6000);
  }

  function updateNotifyButton() {
    const b = $('notify-btn');
    if (!('Notification' in window)) { b.hidden = true; return; }
    b.hidden = false;
    const p = Notification.permission;
    b.disabled = p !== 'default';
    b.dataset.permission = p;
    b.textContent = p === 'granted' ? 'Desktop alerts on' : p === 'denied' ? 'Desktop alerts blocked' : 'Enable desktop alerts';
  }

  $('notify-btn').addEventListener('click', async () => {
    try { await Notification.requestPermission(); } catch { /* old callback form: ignored */ }
    updateNotifyButton();
  });

  // ---------------------------------------------------------------- live table

  function compareUrgency(a, b) {
    return rank(b.priority) - rank(a.priority)
      || (b.lead_score || 0) - (a.lead_score || 0)
      || (parseTime(b.last_interaction)?.getTime() || 0) - (parseTime(a.last_interaction)?.getTime() || 0);
  }

  const rows = new Map(); // session_id -> <tr>
  let renderQueued = false;

  function renderLive() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; renderLiveNow(); });
  }

  function leadCell(s) {
    return el('td', { className: 'lead', dataset: { label: 'Lead' } },
      el('strong', {}, displayName(s)),
      s.organization ? el('span', { className: 'org' }, s.organization) : null,
      s.email ? el('span', { className: 'muted email' }, s.email) : null);
  }

  function badge(p) {
    return el('span', { className: `badge p-${PRIORITIES.includes(p) ? p : 'low'}` }, label(p));
  }

  function renderLiveNow() {
    const body = $('live-body');
    const focusedId = document.activeElement && document.activeElement.closest && document.activeElement.closest('#live-body tr')?.dataset.id;
    const sorted = [...state.live.values()].sort(compareUrgency);
    sorted.forEach((s, i) => {
      let tr = rows.get(s.session_id);
      if (!tr) {
        tr = el('tr', { tabIndex: 0, dataset: { id: s.session_id } });
        rows.set(s.session_id, tr);
      }
      const isNew = state.unacked.has(s.session_id);
      tr.className = `p-${s.priority}${isNew ? ' is-new' : ''}${state.detail && state.detail.id === s.session_id ? ' selected' : ''}${tr.classList.contains('flash') ? ' flash' : ''}`;
      tr.dataset.priority = s.priority;
      tr.setAttribute('aria-label', `${label(s.priority)} priority, ${displayName(s)}${s.organization ? `, ${s.organization}` : ''}, score ${s.lead_score ?? 0}${isNew ? ', new' : ''}`);
      tr.replaceChildren(
        el('td', { dataset: { label: 'Priority' } }, badge(s.priority), isNew ? el('span', { className: 'new' }, 'New') : null),
        leadCell(s),
        el('td', { className: 'num score', dataset: { label: 'Score' } }, s.lead_score ?? 0),
        el('td', { className: 'num', dataset: { label: 'Queries' } }, s.total_queries ?? 0),
        el('td', { dataset: { label: 'Last activity' } }, timeEl(s.last_interaction, true)),
        el('td', { className: 'state', dataset: { label: 'State' } }, s.state || '—'),
      );
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    });
    for (const [id, tr] of rows) {
      if (!state.live.has(id)) { tr.remove(); rows.delete(id); }
    }
    if (focusedId && document.activeElement === document.body && rows.has(focusedId)) rows.get(focusedId).focus();
    $('live-empty').hidden = sorted.length > 0;
    $('live-count').textContent = String(sorted.length);
  }

  function flashRow(id) {
    requestAnimationFrame(() => {
      const tr = rows.get(id);
      if (!tr) return;
      tr.classList.remove('flash');
      void tr.offsetWidth; // restart the animation
      tr.classList.add('flash');
      setTimeout(() => tr.classList.remove('flash'), 4000);
    });
  }

  /** Enter/Space open a row, arrows move between rows: a table you can drive from the keyboard. */
  function wireRows(tbody, kind) {
    tbody.addEventListener('click', (ev) => {
      if (ev.target.closest('a, button')) return;
      const tr = ev.target.closest('tr[data-id]');
      if (tr) openDetail(tr.dataset.id, kind);
    });
    tbody.addEventListener('keydown', (ev) => {
      const tr = ev.target.closest('tr[data-id]');
      if (!tr || ev.target !== tr) return;
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        openDetail(tr.dataset.id, kind);
      } else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
        ev.preventDefault();
        const next = ev.key === 'ArrowDown' ? tr.nextElementSibling : tr.previousElementSibling;
        if (next) next.focus();
      }
    });
  }
  wireRows($('live-body'), 'live');
  wireRows($('archive-body'), 'archived');

  // ---------------------------------------------------------------- detail

  function openDetail(id, kind) {
    const prev = state.detail;
    if (prev && prev.kind === 'live' && !prev.ended && (prev.id !== id || kind !== 'live')) send({ type: 'unwatch' });
    if (kind === 'live' && !state.live.has(id)) kind = 'archived';
    state.detail = { id, kind, lastSeq: 0, ended: false };
    state.unacked.delete(id);
    if (state.lastHot === id) $('hot-banner').hidden = true;
    updateHotUi();
    $('detail').hidden = false;
    document.body.classList.add('detail-open');
    $('detail-transcript').replaceChildren(el('li', { className: 'muted empty-line' }, 'Loading the transcript…'));
    $('detail-signals').replaceChildren();
    $('detail-facts').replaceChildren();
    $('detail-report').replaceChildren();
    if (kind === 'live') {
      renderDetailSession(state.live.get(id));
      setDetailStatus('live', 'Watching live');
      $('detail-report').replaceChildren(el('button', { type: 'button', className: 'danger', id: 'end-chat' }, 'End this chat'));
      send({ type: 'watch', session_id: id });
    } else {
      $('detail-title').textContent = 'Archived session';
      setDetailStatus('loading', 'Loading…');
      loadArchivedDetail(id, 0);
    }
    renderLive();
    $('detail').scrollTop = 0;
    $('detail-title').focus();
  }

  function closeDetail() {
    const d = state.detail;
    if (!d) return;
    if (d.kind === 'live' && !d.ended) send({ type: 'unwatch' });
    state.detail = null;
    $('detail').hidden = true;
    document.body.classList.remove('detail-open');
    renderLive();
    const row = document.querySelector(`tr[data-id="${CSS.escape(d.id)}"]`);
    if (row) row.focus();
  }

  $('detail-close').addEventListener('click', closeDetail);

  // Ends a live chat as an admin (reason `admin`): the visitor sees it end and
  // the report goes out as for any other end.
  $('detail-report').addEventListener('click', async (ev) => {
    if (!ev.target.closest('#end-chat')) return;
    const d = state.detail;
    if (!d || d.kind !== 'live' || d.ended) return;
    const who = displayName(state.live.get(d.id));
    if (!window.confirm(`End the chat with ${who}? The visitor sees it end and the report is sent.`)) return;
    ev.target.disabled = true;
    try {
      await api(`/api/sessions/${encodeURIComponent(d.id)}/end`, { method: 'POST' });
    } catch (err) {
      ev.target.disabled = false;
      apiFailed(err);
    }
  });
  $('detail').addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeDetail(); });

  function setDetailStatus(kind, text) {
    const box = $('detail-status');
    box.dataset.state = kind;
    box.textContent = text;
  }

  function fact(name, ...value) {
    return [el('dt', {}, name), el('dd', {}, ...value)];
  }

  function renderDetailSession(s) {
    if (!s) return;
    const title = $('detail-title');
    title.replaceChildren(el('span', { className: 'name' }, displayName(s)), ' ', badge(s.priority));
    const facts = [
      s.organization ? fact('Organization', s.organization) : [],
      s.email ? fact('E-mail', el('a', { href: `mailto:${encodeURIComponent(s.email).replace(/%40/g, '@')}` }, s.email)) : [],
      s.phone ? fact('Phone', el('a', { href: `tel:${s.phone}` }, s.phone)) : [],
      fact('Lead score', el('strong', { className: 'score' }, s.lead_score ?? 0),
        s.engagement_score !== undefined ? ` · engagement ${s.engagement_score}` : ''),
      fact('Queries', s.total_queries ?? 0),
      fact('First contact', timeEl(s.first_interaction, false)),
      fact('Last activity', timeEl(s.last_interaction, true)),
      s.finalized_at ? fact('Ended', timeEl(s.finalized_at, false), s.end_reason ? ` · by ${s.end_reason}` : '') : [],
      s.mail ? fact('Report mail', el('span', { className: `mail m-${s.mail.status}` }, s.mail.status),
        s.mail.attempts ? ` · ${s.mail.attempts} attempt${s.mail.attempts === 1 ? '' : 's'}` : '',
        s.mail.last_error ? el('span', { className: 'muted block' }, s.mail.last_error) : '') : [],
      s.node ? fact('Node', s.node) : [],
    ];
    $('detail-facts').replaceChildren(...facts.flat());
    renderSignals(s.signals);
  }

  function renderSignals(signals) {
    const list = $('detail-signals');
    const items = (Array.isArray(signals) ? signals : []).map((g) => {
      const pts = Number(g.points) || 0;
      const evidence = Array.isArray(g.evidence) ? g.evidence.join(', ') : g.evidence;
      return el('li', {},
        el('span', { className: `pts ${pts < 0 ? 'neg' : ''}` }, `${pts >= 0 ? '+' : ''}${pts}`),
        el('span', { className: 'sig' }, String(g.name || g.signal || 'signal').replace(/_/g, ' ')),
        evidence ? el('q', {}, evidence) : null);
    });
    list.replaceChildren(...(items.length ? items : [el('li', { className: 'muted' }, 'No signals yet.')]));
  }

  function transcriptLine(m) {
    const who = m.role === 'user' ? 'Visitor' : m.role === 'bot' ? 'Bot' : (m.role || '?');
    const at = parseTime(m.at);
    return el('li', { className: `line role-${m.role}`, dataset: { seq: m.seq } },
      el('div', { className: 'meta' }, el('span', { className: 'who' }, who),
        at ? el('time', { dateTime: at.toISOString(), title: timeFmt.format(at) }, clockFmt.format(at)) : null),
      el('p', {}, m.text ?? ''));
  }

  function setTranscript(lines) {
    const sorted = [...lines].sort((a, b) => (a.seq || 0) - (b.seq || 0));
    $('detail-transcript').replaceChildren(...sorted.map(transcriptLine));
    if (!sorted.length) $('detail-transcript').append(el('li', { className: 'muted empty-line' }, 'Nothing said yet.'));
    state.detail.lastSeq = sorted.length ? sorted[sorted.length - 1].seq || 0 : 0;
    scrollTranscript(true);
  }

  function onTranscript(f) {
    const d = state.detail;
    if (!d || d.id !== f.session_id) return;
    setTranscript(f.history || []);
  }

  function onMessage(f) {
    const d = state.detail;
    if (!d || d.id !== f.session_id || (f.seq && f.seq <= d.lastSeq)) return;
    const log = $('detail-transcript');
    const placeholder = log.querySelector('.empty-line');
    if (placeholder) placeholder.remove();
    const pinned = nearBottom();
    log.append(transcriptLine(f));
    d.lastSeq = f.seq || d.lastSeq;
    scrollTranscript(pinned);
  }

  // The transcript scrolls on its own and follows the newest line, unless
  // the reader scrolled up to read something older.
  function nearBottom() {
    const box = $('detail-transcript');
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }
  function scrollTranscript(follow) {
    const box = $('detail-transcript');
    if (follow) box.scrollTop = box.scrollHeight;
  }

  function markDetailEnded(reason) {
    const d = state.detail;
    d.ended = true;
    $('detail-report').replaceChildren();
    setDetailStatus('ended', `Chat ended${reason ? ` (${reason})` : ''} — fetching the archived report…`);
    // The archive commits just after the feed says "ended": give it a moment.
    loadArchivedDetail(d.id, 1);
  }

  async function loadArchivedDetail(id, attempt) {
    if (attempt) await new Promise((r) => setTimeout(r, Math.min(4000, 500 * attempt)));
    if (!state.detail || state.detail.id !== id) return;
    let s;
    try {
      s = await api(`/api/sessions/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err.status === 404 && attempt < 8) return loadArchivedDetail(id, attempt + 1);
      if (err.status === 404) { setDetailStatus('ended', 'Not in the archive (yet).'); return; }
      apiFailed(err);
      return;
    }
    if (!state.detail || state.detail.id !== id) return;
    if (!s.report && attempt && attempt < 8) {
      renderArchived(s);
      return loadArchivedDetail(id, attempt + 1);
    }
    renderArchived(s);
  }

  function renderArchived(s) {
    state.detail.kind = 'archived';
    state.detail.ended = true;
    renderDetailSession(s);
    setDetailStatus('archived', `Archived — ended ${s.end_reason ? `by ${s.end_reason}` : ''}`.trim());
    setTranscript(s.transcript || []);
    $('detail-report').replaceChildren(
      s.report
        ? reportLink(s.session_id, 'Download PDF report')
        : el('span', { className: 'muted' }, 'The PDF report is not rendered yet.'));
  }

  // ---------------------------------------------------------------- archive

  let archiveTimer = null;
  let archiveSeq = 0;

  function archiveQuery() {
    const form = new FormData($('filters'));
    const q = new URLSearchParams();
    for (const [k, v] of form) {
      const value = String(v).trim();
      if (value) q.set(k, value);
    }
    q.set('offset', String(state.archive.offset));
    return q;
  }

  async function loadArchive() {
    const seq = ++archiveSeq;
    const q = archiveQuery();
    $('archive-status').textContent = 'Loading…';
    let page;
    try {
      page = await api(`/api/sessions?${q}`);
    } catch (err) {
      if (seq !== archiveSeq) return;
      $('archive-status').textContent = err instanceof Unauthorized ? '' : `Could not load the archive: ${err.message}`;
      if (err instanceof Unauthorized) apiFailed(err);
      return;
    }
    if (seq !== archiveSeq) return; // a newer query won
    state.archive.loaded = true;
    state.archive.total = page.total || 0;
    const items = page.sessions || [];
    $('archive-body').replaceChildren(...items.map(archiveRow));
    $('archive-table').hidden = !items.length;
    const first = items.length ? page.offset + 1 : 0;
    const last = page.offset + items.length;
    $('archive-status').textContent = items.length
      ? `Showing ${first}–${last} of ${page.total} archived session${page.total === 1 ? '' : 's'}.`
      : 'No archived session matches these filters.';
    $('page-info').textContent = items.length ? `${first}–${last} of ${page.total}` : '';
    $('page-prev').disabled = page.offset <= 0;
    $('page-next').disabled = last >= page.total;
    document.querySelector('.pager').hidden = page.offset <= 0 && last >= page.total;
  }

  function archiveRow(s) {
    return el('tr', {
      tabIndex: 0,
      className: `p-${s.priority}`,
      dataset: { id: s.session_id, priority: s.priority },
      'aria-label': `${displayName(s)}, ${label(s.priority)} priority, score ${s.lead_score ?? 0}`,
    },
    el('td', { dataset: { label: 'Ended' } }, timeEl(s.finalized_at, false)),
    leadCell(s),
    el('td', { dataset: { label: 'Priority' } }, badge(s.priority)),
    el('td', { className: 'num score', dataset: { label: 'Score' } }, s.lead_score ?? 0),
    el('td', { className: 'num', dataset: { label: 'Queries' } }, s.total_queries ?? 0),
    el('td', { dataset: { label: 'Ended by' } }, s.end_reason || '—'),
    el('td', { dataset: { label: 'Mail' } }, el('span', { className: `mail m-${s.mail_status}` }, s.mail_status || '—')),
    el('td', { dataset: { label: 'Report' } }, reportLink(s.session_id, 'PDF')));
  }

  function reloadArchiveFromStart() {
    state.archive.offset = 0;
    loadArchive();
  }

  $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); reloadArchiveFromStart(); });
  $('filters').addEventListener('reset', () => setTimeout(reloadArchiveFromStart, 0));
  $('filters').addEventListener('change', (ev) => { if (ev.target.id !== 'f-q') reloadArchiveFromStart(); });
  $('f-q').addEventListener('input', () => {
    clearTimeout(archiveTimer);
    archiveTimer = setTimeout(reloadArchiveFromStart, 350);
  });
  $('page-prev').addEventListener('click', () => {
    state.archive.offset = Math.max(0, state.archive.offset - Number($('f-limit').value));
    loadArchive();
  });
  $('page-next').addEventListener('click', () => {
    state.archive.offset += Number($('f-limit').value);
    loadArchive();
  });

  let refreshTimers = [];
  function refreshArchiveSoon() {
    refreshTimers.forEach(clearTimeout);
    // The archive row lands a moment after the feed's `session_ended`.
    refreshTimers = [700, 2500].map((ms) => setTimeout(() => {
      if (!$('view-archive').hidden) { loadArchive(); loadChart(); } else state.archive.loaded = false;
    }, ms));
  }

  // ---------------------------------------------------------------- chart

  function utcDay(d) { return d.toISOString().slice(0, 10); }

  /** The last CHART_DAYS days ending today (UTC), zeros where the server had nothing. */
  function fillDays(days) {
    const byDay = new Map(days.map((d) => [d.day, d]));
    const out = [];
    const today = new Date();
    for (let i = CHART_DAYS - 1; i >= 0; i--) {
      const day = utcDay(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i)));
      const d = byDay.get(day) || {};
      out.push({ day, low: +d.low || 0, medium: +d.medium || 0, high: +d.high || 0, critical: +d.critical || 0 });
    }
    return out;
  }

  async function loadChart() {
    const box = $('chart');
    let data;
    try {
      data = await api(`/api/stats/daily?days=${CHART_DAYS}`);
    } catch (err) {
      if (err instanceof Unauthorized) return apiFailed(err);
      box.replaceChildren(el('p', { className: 'muted' }, err.status === 404
        ? 'Daily figures are not available from this server yet.'
        : `Could not load the daily figures: ${err.message}`));
      return;
    }
    drawChart(box, fillDays(data.days || []));
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    for (const c of children) n.append(c);
    return n;
  }

  /** A y-axis top split in four whole-number steps of 1, 2 or 5 × 10^k. */
  function niceMax(v) {
    const raw = Math.max(1, Math.ceil(v / 4));
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw);
    return step * 4;
  }

  let chartDays = null;
  // Drawn at the box's own width, so text stays at its real size on any screen.
  let chartWidth = 0;
  new ResizeObserver(() => {
    const w = $('chart').clientWidth;
    if (chartDays && w && w !== chartWidth) drawChart($('chart'), chartDays);
  }).observe($('chart'));

  function drawChart(box, days) {
    chartDays = days;
    chartWidth = box.clientWidth;
    const W = Math.max(320, Math.round(box.clientWidth || 720)); const H = 250;
    const m = { top: 22, right: 10, bottom: 38, left: 36 };
    const iw = W - m.left - m.right; const ih = H - m.top - m.bottom;
    const totals = days.map((d) => PRIORITIES.reduce((n, p) => n + d[p], 0));
    const max = niceMax(Math.max(0, ...totals));
    const y = (v) => m.top + ih - (v / max) * ih;
    const slot = iw / days.length;
    const bw = Math.min(56, slot * 0.68);
    const sum = PRIORITIES.map((p) => `${days.reduce((n, d) => n + d[p], 0)} ${p}`);
    const all = totals.reduce((a, b) => a + b, 0);
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'chart-t chart-d', class: 'chart-svg' },
      svg('title', { id: 'chart-t' }, 'Archived sessions per day by priority'),
      svg('desc', { id: 'chart-d' }, `Last ${days.length} days: ${all} sessions (${sum.reverse().join(', ')}).`));
    for (let i = 0; i <= 4; i++) {
      const v = (max / 4) * i;
      root.append(
        svg('line', { x1: m.left, x2: W - m.right, y1: y(v), y2: y(v), class: i ? 'grid' : 'axis' }),
        svg('text', { x: m.left - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, String(v)));
    }
    const monthFmt = new Intl.DateTimeFormat(undefined, { month: 'short', timeZone: 'UTC' });
    days.forEach((d, i) => {
      const x = m.left + slot * i + (slot - bw) / 2;
      const date = new Date(`${d.day}T00:00:00Z`);
      const dayLabel = `${date.getUTCDate()} ${monthFmt.format(date)}`;
      let acc = 0;
      const g = svg('g', { class: 'bar', 'data-day': d.day });
      for (const p of PRIORITIES) {
        if (!d[p]) continue;
        const h = y(acc) - y(acc + d[p]);
        g.append(svg('rect', { x, y: y(acc + d[p]), width: bw, height: Math.max(0, h - 1), class: `seg p-${p}` },
          svg('title', {}, `${dayLabel}: ${d[p]} ${p}`)));
        acc += d[p];
      }
      if (totals[i]) g.append(svg('text', { x: x + bw / 2, y: y(totals[i]) - 5, class: 'total', 'text-anchor': 'middle' }, String(totals[i])));
      const showMonth = i === 0 || date.getUTCDate() === 1;
      g.append(svg('text', { x: x + bw / 2, y: H - m.bottom + 15, class: 'tick', 'text-anchor': 'middle' }, String(date.getUTCDate())));
      if (showMonth) g.append(svg('text', { x: x + bw / 2, y: H - m.bottom + 30, class: 'tick month', 'text-anchor': 'middle' }, monthFmt.format(date)));
      root.append(g);
    });
    // The same figures as a table, for screen readers and for copying.
    const table = el('table', { className: 'visually-hidden' },
      el('caption', {}, 'Archived sessions per day by priority'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Day'), ...PRIORITIES.map((p) => el('th', { scope: 'col' }, label(p))), el('th', { scope: 'col' }, 'Total'))),
      el('tbody', {}, ...days.map((d, i) => el('tr', {}, el('th', { scope: 'row' }, d.day), ...PRIORITIES.map((p) => el('td', {}, d[p])), el('td', {}, totals[i])))));
    box.replaceChildren(root, table);
  }

  // ---------------------------------------------------------------- views

  function route() {
    const view = location.hash === '#archive' ? 'archive' : 'live';
    $('view-live').hidden = view !== 'live';
    $('view-archive').hidden = view !== 'archive';
    for (const [tab, name] of [['tab-live', 'live'], ['tab-archive', 'archive']]) {
      if (name === view) $(tab).setAttribute('aria-current', 'page');
      else $(tab).removeAttribute('aria-current');
    }
    if (view === 'archive' && state.token) {
      loadArchive();
      loadChart();
    }
  }
  window.addEventListener('hashchange', route);

  if (state.token) start();
  else showLogin('');
})();
