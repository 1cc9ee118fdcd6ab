// The live scoreboard: streams the top N with EventSource and falls back to polling when the stream fails or
// is refused, then tries the stream again with backoff. Same origin, no configuration, no dependencies.
'use strict';

(() => {
  // Which board window to show: ?board=x&window=week (the API's own name rules), else global / all time.
  const query = new URLSearchParams(window.location.search);
  const pick = (value, pattern, fallback) => (value && pattern.test(value) ? value : fallback);
  const BOARD = pick(query.get('board'), /^[a-z0-9][a-z0-9_-]{0,63}$/, 'global');
  const WINDOW = pick(query.get('window'), /^[a-z0-9_-]{1,32}$/, 'all');
  const isGlobalAll = BOARD === 'global' && WINDOW === 'all';
  const boardPath = `/api/v1/boards/${encodeURIComponent(BOARD)}`;
  const windowQuery = `window=${encodeURIComponent(WINDOW)}`;
  // global / all keeps the original routes (the same bytes and versions as the board routes).
  const TOP_URL = isGlobalAll ? '/api/v1/scores/top' : `${boardPath}/top?${windowQuery}`;
  const STREAM_URL = isGlobalAll ? '/api/v1/scores/stream' : `${boardPath}/stream?${windowQuery}`;
  const WS_PATH = `/ws/scores?board=${encodeURIComponent(BOARD)}&${windowQuery}`;
  // SSE is the default transport; ?transport=ws uses the WebSocket endpoint instead (same snapshots).
  const useWebSocket = query.get('transport') === 'ws';
  const DEFAULT_POLL_S = 5; // until the server's X-Poll-Interval says otherwise
  const STREAM_RETRY_MIN_MS = 2000;
  const STREAM_RETRY_MAX_MS = 60000;
  const POLL_RETRY_MAX_MS = 60000;
  const ANNOUNCE_EVERY_MS = 8000; // screen readers get a summary at most this often

  const el = {
    board: document.getElementById('board'),
    rows: document.getElementById('rows'),
    empty: document.getElementById('empty'),
    updated: document.getElementById('updated'),
    announcer: document.getElementById('announcer'),
    connection: document.getElementById('connection'),
    connectionText: document.getElementById('connection-text'),
    views: document.getElementById('views'),
    boardPicker: document.getElementById('board-picker'),
    boardPickerLabel: document.getElementById('board-picker-label'),
    windowTabs: document.getElementById('window-tabs'),
    nextReset: document.getElementById('next-reset'),
  };
  const numbers = new Intl.NumberFormat();
  const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

  // ---- rendering ---------------------------------------------------------------------------------------

  let version = null; // the ETag of what is on screen (the stream's event id is the same value)
  let shown = new Map(); // userId -> { rank, score, displayName } currently on screen

  /** Applies a /top body (from a poll or a stream event) unless it is the version already shown. */
  function apply(body, etag) {
    if (etag && etag === version) return;
    let entries;
    try {
      entries = JSON.parse(body);
    } catch {
      return; // a damaged payload must not break the page; the next one repairs it
    }
    if (!Array.isArray(entries)) return;
    version = etag || null;
    el.board.dataset.version = version || '';
    render(entries);
  }

  function render(entries) {
    const before = new Map();
    const rowsById = new Map();
    for (const tr of el.rows.rows) {
      before.set(tr.dataset.userId, tr.getBoundingClientRect().top);
      rowsById.set(tr.dataset.userId, tr);
    }
    const next = new Map();
    const changes = [];
    const shared = sharedNames(entries);
    for (const entry of entries) {
      const previous = shown.get(entry.userId);
      let tr = rowsById.get(entry.userId);
      if (tr) rowsById.delete(entry.userId);
      else tr = createRow(entry.userId);
      updateRow(tr, entry, previous, shared.has(nameKey(entry.displayName)));
      el.rows.appendChild(tr); // moves existing rows into the new order
      next.set(entry.userId, entry);
      changes.push({ entry, previous });
    }
    for (const tr of rowsById.values()) tr.remove(); // left the top N
    shown = next;
    el.empty.hidden = entries.length > 0;
    el.updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    animateMoves(before);
    announce(changes);
  }

  function createRow(userId) {
    const tr = document.createElement('tr');
    tr.dataset.userId = userId;
    const rank = document.createElement('td');
    rank.className = 'rank';
    const rankText = document.createElement('span');
    rankText.className = 'rank-value';
    const move = document.createElement('span');
    move.className = 'move';
    move.setAttribute('aria-hidden', 'true');
    rank.append(rankText, move);
    const name = document.createElement('th');
    name.scope = 'row';
    const score = document.createElement('td');
    score.className = 'score';
    const delta = document.createElement('span');
    delta.className = 'delta';
    delta.setAttribute('aria-hidden', 'true');
    const points = document.createElement('span');
    points.className = 'points';
    score.append(delta, points);
    tr.append(rank, name, score);
    return tr;
  }

  // Names are not unique, so one user could pose as another by taking their name: wherever two entries on
  // screen share a name (compared loosely: NFKC, case-folded), both show their user id beside it.
  const nameKey = (name) => name.normalize('NFKC').toLowerCase();
  function sharedNames(entries) {
    const seen = new Set();
    const shared = new Set();
    for (const e of entries) {
      const k = nameKey(e.displayName);
      if (seen.has(k)) shared.add(k);
      seen.add(k);
    }
    return shared;
  }

  // Names arrive from users: they are only ever set as text, never parsed as HTML.
  function updateRow(tr, entry, previous, showId) {
    const [rankCell, nameCell, scoreCell] = tr.cells;
    tr.dataset.rank = String(entry.rank);
    rankCell.firstChild.textContent = String(entry.rank);
    const nameText = document.createElement('span');
    nameText.className = 'name-text';
    nameText.textContent = entry.displayName;
    nameCell.replaceChildren(nameText);
    if (showId) {
      const id = document.createElement('span');
      id.className = 'user-id';
      id.textContent = `@${entry.userId}`;
      nameCell.append(' ', id);
    }
    nameCell.title = showId ? `${entry.displayName} (@${entry.userId})` : entry.displayName;
    const points = scoreCell.lastChild;
    points.textContent = numbers.format(entry.score);
    if (!previous) return;
    if (entry.rank !== previous.rank) {
      const up = entry.rank < previous.rank;
      flash(rankCell.lastChild, up ? 'up' : 'down', up ? '▲' : '▼');
    }
    if (entry.score !== previous.score) {
      const diff = entry.score - previous.score;
      flash(scoreCell.firstChild, 'show', `${diff > 0 ? '+' : '−'}${numbers.format(Math.abs(diff))}`);
      flash(points, 'bump');
    }
  }

  /** Restarts a CSS animation class (and clears it afterwards, for reduced motion). */
  function flash(node, cls, text) {
    if (text !== undefined) node.textContent = text;
    node.classList.remove('up', 'down', 'show', 'bump');
    void node.offsetWidth; // reflow, so removing and adding the class restarts the animation
    node.classList.add(cls);
    clearTimeout(node.clearTimer);
    node.clearTimer = setTimeout(() => node.classList.remove(cls), 3000);
  }

  /** FLIP: rows start where they were and glide to their new place. */
  function animateMoves(before) {
    if (reducedMotion.matches || typeof Element.prototype.animate !== 'function') return;
    for (const tr of el.rows.rows) {
      const oldTop = before.get(tr.dataset.userId);
      if (oldTop === undefined) {
        tr.animate([{ opacity: 0 }, { opacity: 1 }], { duration: 400, easing: 'ease-out' });
        continue;
      }
      const dy = oldTop - tr.getBoundingClientRect().top;
      if (Math.abs(dy) < 1) continue;
      tr.animate([{ transform: `translateY(${dy}px)` }, { transform: 'none' }], {
        duration: 550,
        easing: 'cubic-bezier(.2,.8,.2,1)',
      });
    }
  }

  let lastAnnounced = 0;
  let pendingAnnouncement = null;
  let announceTimer = null;

  /** A short, throttled summary for screen readers: a new leader matters most, then rank moves. */
  function announce(changes) {
    if (!changes.length) return;
    const leader = changes[0];
    let message;
    if (!leader.previous || leader.previous.rank !== 1) {
      message = `${leader.entry.displayName} leads with ${numbers.format(leader.entry.score)} points.`;
    } else {
      const mover = changes.find((c) => c.previous && c.entry.rank < c.previous.rank);
      if (mover) message = `${mover.entry.displayName} moved up to rank ${mover.entry.rank}.`;
    }
    if (!message) return;
    pendingAnnouncement = message;
    const wait = lastAnnounced + ANNOUNCE_EVERY_MS - Date.now();
    if (announceTimer) return;
    announceTimer = setTimeout(
      () => {
        announceTimer = null;
        lastAnnounced = Date.now();
        el.announcer.textContent = pendingAnnouncement;
      },
      Math.max(0, wait),
    );
  }

  // ---- connection state --------------------------------------------------------------------------------

  let state = 'connecting';
  let pollIntervalMs = DEFAULT_POLL_S * 1000;

  function setState(next) {
    const labels = {
      connecting: 'Connecting…',
      live: 'Live',
      polling: `Polling every ${Math.round(pollIntervalMs / 1000)} s`,
      reconnecting: 'Reconnecting…',
      offline: 'Offline',
    };
    const titles = {
      live: 'Updates arrive the moment scores change.',
      polling: 'Live updates are unavailable; checking for changes regularly.',
      reconnecting: 'The connection dropped; trying again.',
      offline: 'No connection; showing the last scores received.',
    };
    const text = labels[next];
    if (next === state && el.connectionText.textContent === text) return; // no repeated announcements
    state = next;
    el.connection.dataset.state = next;
    el.connectionText.textContent = text;
    el.connection.title = titles[next] || '';
  }

  const jitter = (ms) => Math.round(ms * (0.75 + Math.random() * 0.5));

  // ---- streaming ---------------------------------------------------------------------------------------

  let source = null;
  let streamFailures = 0; // consecutive failed attempts, for the backoff
  let streamRetryTimer = null;

  function openStream() {
    clearTimeout(streamRetryTimer);
    streamRetryTimer = null;
    if (useWebSocket) return openSocket();
    if (source || typeof window.EventSource !== 'function') return;
    const es = new EventSource(STREAM_URL);
    let errorsSinceOpen = 0;
    source = es;
    es.addEventListener('open', () => {
      errorsSinceOpen = 0;
      streamFailures = 0;
      stopPolling();
      setState('live');
    });
    es.addEventListener('scoreboard', (event) => {
      if (source !== es) return;
      apply(event.data, event.lastEventId);
    });
    es.addEventListener('error', () => {
      if (source !== es) return;
      // CLOSED: the browser gave up (refused, e.g. 503 at the stream limit, or not an event stream).
      // CONNECTING: the stream dropped and the browser retries after the server's retry hint; a second
      // error before it reopens means the server is not coming back at once, so poll meanwhile.
      errorsSinceOpen++;
      if (es.readyState === EventSource.CLOSED || errorsSinceOpen > 1) fallBack();
      else setState(navigator.onLine === false ? 'offline' : 'reconnecting');
    });
  }

  /** The WebSocket transport: the same snapshots; a refused or dropped socket falls back to polling. */
  function openSocket() {
    if (source || typeof window.WebSocket !== 'function') return;
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${window.location.host}${WS_PATH}`);
    source = ws;
    ws.addEventListener('open', () => {
      streamFailures = 0;
      stopPolling();
      setState('live');
    });
    ws.addEventListener('message', (event) => {
      if (source !== ws || typeof event.data !== 'string') return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'scoreboard') apply(JSON.stringify(message.top), message.version);
    });
    ws.addEventListener('close', () => {
      if (source === ws) fallBack();
    });
  }

  /** Closes the stream, polls instead, and schedules another stream attempt with exponential backoff. */
  function fallBack() {
    if (source) source.close();
    source = null;
    streamFailures++;
    const delay = Math.min(STREAM_RETRY_MAX_MS, STREAM_RETRY_MIN_MS * 2 ** (streamFailures - 1));
    clearTimeout(streamRetryTimer);
    streamRetryTimer = setTimeout(openStream, jitter(delay));
    startPolling();
  }

  // ---- polling -----------------------------------------------------------------------------------------

  let polling = false;
  let pollTimer = null;
  let pollAbort = null;
  let pollFailures = 0;

  function startPolling() {
    if (polling) return;
    polling = true;
    if (state !== 'offline') setState('reconnecting');
    poll();
  }

  function stopPolling() {
    polling = false;
    clearTimeout(pollTimer);
    pollTimer = null;
    if (pollAbort) pollAbort.abort(); // a late poll answer must not overwrite a newer streamed version
    pollAbort = null;
  }

  async function poll() {
    pollTimer = null;
    if (!polling) return;
    if (document.hidden) return; // resumed by visibilitychange: hidden tabs cost the server nothing
    const abort = new AbortController();
    pollAbort = abort;
    let delay;
    try {
      const headers = version ? { 'If-None-Match': version } : {};
      const res = await fetch(TOP_URL, { headers, cache: 'no-store', signal: abort.signal });
      const hinted = Number(res.headers.get('X-Poll-Interval'));
      if (hinted > 0) pollIntervalMs = hinted * 1000;
      if (res.status === 200) apply(await res.text(), res.headers.get('ETag'));
      else if (res.status !== 304) throw Object.assign(new Error(`HTTP ${res.status}`), { response: res });
      pollFailures = 0;
      delay = pollIntervalMs;
      if (polling) setState('polling');
    } catch (err) {
      if (abort.signal.aborted) return;
      pollFailures++;
      const retryAfter = err.response ? Number(err.response.headers.get('Retry-After')) : NaN;
      delay =
        retryAfter > 0
          ? retryAfter * 1000
          : Math.min(POLL_RETRY_MAX_MS, pollIntervalMs * 2 ** Math.min(pollFailures - 1, 4));
      if (polling) setState(navigator.onLine === false || pollFailures > 2 ? 'offline' : 'reconnecting');
    } finally {
      if (pollAbort === abort) pollAbort = null;
    }
    if (polling) pollTimer = setTimeout(poll, jitter(delay));
  }

  // ---- boards and windows ------------------------------------------------------------------------------

  const WINDOW_LABELS = { all: 'All time', day: 'Today', week: 'This week', month: 'This month' };
  let resetAt = null; // when the shown window resets (null: never)
  let resetTimer = null;

  /** A link to another view, keeping the transport choice. */
  function viewUrl(board, windowName) {
    const q = new URLSearchParams();
    if (board !== 'global') q.set('board', board);
    if (windowName !== 'all') q.set('window', windowName);
    if (useWebSocket) q.set('transport', 'ws');
    const s = q.toString();
    return s ? `/?${s}` : '/';
  }

  function renderViews(boards) {
    const board = boards.find((b) => b.id === BOARD);
    if (!board) return;
    el.boardPicker.replaceChildren(
      ...boards.map((b) => {
        const option = document.createElement('option');
        option.value = b.id;
        option.textContent = b.title; // titles come from admins: text only
        option.selected = b.id === BOARD;
        return option;
      }),
    );
    el.boardPickerLabel.hidden = boards.length < 2;
    el.windowTabs.replaceChildren(
      ...board.windows.map((w) => {
        const li = document.createElement('li');
        const a = document.createElement('a');
        a.href = viewUrl(board.id, w.name);
        a.textContent = WINDOW_LABELS[w.name] || w.name;
        a.dataset.window = w.name;
        if (w.name === WINDOW) a.setAttribute('aria-current', 'page');
        li.append(a);
        return li;
      }),
    );
    const shown = board.windows.find((w) => w.name === WINDOW);
    resetAt = shown && shown.nextReset ? new Date(shown.nextReset).getTime() : null;
    el.views.hidden = board.windows.length < 2 && boards.length < 2;
    document.title = `${board.title} – ${WINDOW_LABELS[WINDOW] || WINDOW} – Live scoreboard`;
    tickReset();
  }

  function formatLeft(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return `${d} d ${h} h`;
    if (h > 0) return `${h} h ${m} min`;
    if (m > 0) return `${m} min ${s % 60} s`;
    return `${s % 60} s`;
  }

  /** The time to the next reset, once a second; at the reset the board list is read again for the next one. */
  function tickReset() {
    clearTimeout(resetTimer);
    if (resetAt === null) {
      el.nextReset.hidden = true;
      return;
    }
    const left = resetAt - Date.now();
    el.nextReset.hidden = false;
    el.nextReset.textContent = `Resets in ${formatLeft(left)}`;
    if (left <= 0) {
      resetAt = null;
      setTimeout(loadBoards, 1000 + Math.random() * 2000);
      return;
    }
    resetTimer = setTimeout(tickReset, 1000);
  }

  async function loadBoards() {
    try {
      const res = await fetch('/api/v1/boards', { cache: 'no-store' });
      if (res.ok) renderViews((await res.json()).boards);
    } catch {
      // the tabs are a convenience: the scoreboard itself keeps working without them
    }
  }

  el.boardPicker.addEventListener('change', () => {
    window.location.assign(viewUrl(el.boardPicker.value, 'all'));
  });

  // ---- page lifecycle ----------------------------------------------------------------------------------

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && polling && !pollTimer && !pollAbort) poll();
  });
  window.addEventListener('offline', () => setState('offline'));
  window.addEventListener('online', () => {
    // Back online: try the stream at once rather than waiting out the backoff.
    streamFailures = 0;
    if (!source) openStream();
    if (polling) {
      clearTimeout(pollTimer);
      poll();
    }
  });

  void loadBoards();
  if (typeof window.EventSource === 'function') openStream();
  else startPolling();
})();
