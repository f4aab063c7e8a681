// ptb view: live status. Polls the JSON API and writes values with textContent only (never HTML):
// everything shown may come from an agent.
const POLL_MS = 3000;

function pct(v) {
  return v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}%`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m` : `${m}m ${String(s % 60).padStart(2, '0')}s`;
}

function gpuText(live) {
  const g = live.gpu;
  if (!g) return '–';
  const util = g.utilPercent === null ? '?' : `${Math.round(g.utilPercent)}%`;
  let mem = '';
  if (g.memoryUsedMiB !== null) {
    mem = ` · ${(g.memoryUsedMiB / 1024).toFixed(1)}`;
    if (g.memoryTotalMiB) mem += `/${(g.memoryTotalMiB / 1024).toFixed(0)}`;
    mem += ' GiB';
  }
  return `${util}${mem}${g.gpus > 1 ? ` (${g.gpus} GPUs)` : ''}`;
}

function scoreText(live) {
  if (!live.score) return '–';
  return live.score.source === 'final'
    ? pct(live.score.value)
    : `${pct(live.score.value)} (${live.score.source})`;
}

function setBadge(el, text) {
  const span = document.createElement('span');
  span.className = `badge b-${String(text).replace(/[^a-z_]/gi, '')}`;
  span.textContent = text;
  el.replaceChildren(span);
}

function fill(root, live) {
  const set = (field, text) => {
    const el = root.querySelector(`[data-f="${field}"]`);
    if (el && el.textContent !== text) el.textContent = text;
  };
  const status = root.querySelector('[data-f="status"]');
  if (status && status.textContent !== live.status) setBadge(status, live.status);
  set('phase', live.phase ?? '–');
  set('gpu', gpuText(live));
  set('score', scoreText(live));
  const left = root.querySelector('[data-f="timeLeft"]');
  if (left) {
    left.dataset.seconds = live.timeLeftSeconds === null ? '' : String(live.timeLeftSeconds);
    left.dataset.at = String(Date.now());
    left.textContent = live.timeLeftSeconds === null ? '–' : duration(live.timeLeftSeconds);
  }
}

async function getJson(url) {
  const res = await fetch(url, { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

/** Trial tables: update the live cells of each row; a new or vanished trial reloads the page. */
function pollTables() {
  for (const table of document.querySelectorAll('table[data-live-src]')) {
    const src = table.dataset.liveSrc;
    const tick = async () => {
      if (document.hidden) return;
      try {
        const list = await getJson(src);
        const shown = [...table.querySelectorAll('tr[data-trial]')].map((r) => r.dataset.trial);
        const ids = list.map((t) => t.id);
        if (shown.length !== ids.length || shown.some((id, i) => id !== ids[i])) {
          location.reload();
          return;
        }
        for (const t of list) {
          const row = [...table.querySelectorAll('tr[data-trial]')].find((r) => r.dataset.trial === t.id);
          if (row) fill(row, t.live);
        }
        table.dataset.polled = String(Date.now());
      } catch {
        // The server may be restarting; try again at the next tick.
      }
    };
    setInterval(tick, POLL_MS);
  }
}

/** The live header of a trial page. */
function pollTrial() {
  const root = document.querySelector('[data-live-trial]');
  if (!root) return;
  const id = root.dataset.liveTrial;
  const tick = async () => {
    if (document.hidden) return;
    try {
      const detail = await getJson(`/api/trials/${encodeURIComponent(id)}`);
      fill(root, detail.trial.live);
      root.dataset.polled = String(Date.now());
    } catch {
      // try again at the next tick
    }
  };
  setInterval(tick, POLL_MS);
}

/** Count the time left down between polls. */
function countdown() {
  setInterval(() => {
    for (const el of document.querySelectorAll('[data-f="timeLeft"][data-seconds]')) {
      if (el.dataset.seconds === '') continue;
      const at = Number(el.dataset.at ?? el.dataset.loaded ?? Date.now());
      if (!el.dataset.at) el.dataset.at = String(at);
      const left = Number(el.dataset.seconds) - (Date.now() - at) / 1000;
      el.textContent = duration(left);
    }
  }, 1000);
}

function replaceLink(pager, rel, url, enabled) {
  const old = pager.querySelector(`[data-page="${rel}"]`);
  if (!old) return;
  const el = document.createElement(enabled ? 'a' : 'span');
  if (enabled) {
    el.href = url;
    el.rel = rel;
  }
  el.className = enabled ? 'page-link' : 'page-link disabled';
  el.dataset.page = rel;
  el.textContent = old.textContent;
  old.replaceWith(el);
}

/** A huge trace is served before its line count is known: fill the count in when the server has it. */
function fillTotals() {
  const pagers = [...document.querySelectorAll('.pager[data-total-src]')];
  if (pagers.length === 0) return;
  const src = pagers[0].dataset.totalSrc;
  const fmt = (n) => n.toLocaleString('en-US');
  const tick = async () => {
    let total = null;
    try {
      total = (await getJson(src)).total;
    } catch {
      // retry below
    }
    if (typeof total !== 'number') {
      setTimeout(tick, 400);
      return;
    }
    for (const el of document.querySelectorAll('[data-f="lines"]')) el.textContent = fmt(total);
    for (const p of pagers) {
      const size = Number(p.dataset.size);
      const offset = Number(p.dataset.offset);
      const base = p.dataset.base;
      const sep = base.includes('?') ? '&' : '?';
      const last = Math.max(0, Math.floor((total - 1) / size) * size);
      p.querySelector('.page-pos').textContent =
        `${offset + 1}–${Math.min(total, offset + size)} of ${fmt(total)}`;
      replaceLink(p, 'next', `${base}${sep}offset=${offset + size}`, offset + size < total);
      replaceLink(p, 'last', `${base}${sep}offset=${last}`, offset + size < total);
      p.removeAttribute('data-total-src');
      p.dataset.counted = String(total);
    }
  };
  setTimeout(tick, 200);
}

pollTables();
pollTrial();
countdown();
fillTotals();
