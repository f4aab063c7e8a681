import type { z } from 'zod';
import type { AuditWithVerdicts, Trial } from '../store/trialRepo.ts';
import { badge, bytesText, duration, href, html, money, page, pct, raw, type SafeHtml } from './html.ts';
import { computeLeaderboard } from './leaderboard.ts';
import { monitorCharts } from './monitorCharts.ts';
import {
  LEDGERS,
  type LedgerName,
  type LiveStatus,
  readTailCapped,
  type SampleFilter,
  type TrialData,
  type TrialSummary,
} from './trialData.ts';

export const TRACE_PAGE = 200;
export const LEDGER_PAGE = 100;
export const SAMPLES_PAGE = 50;

// ---- shared pieces ----

function gpuText(live: LiveStatus): string {
  const g = live.gpu;
  if (!g) return '–';
  const util = g.utilPercent === null ? '?' : `${Math.round(g.utilPercent)}%`;
  const mem =
    g.memoryUsedMiB === null
      ? ''
      : ` · ${(g.memoryUsedMiB / 1024).toFixed(1)}${g.memoryTotalMiB ? `/${(g.memoryTotalMiB / 1024).toFixed(0)}` : ''} GiB`;
  return `${util}${mem}${g.gpus > 1 ? ` (${g.gpus} GPUs)` : ''}`;
}

function scoreText(live: LiveStatus): string {
  if (!live.score) return '–';
  return live.score.source === 'final'
    ? pct(live.score.value)
    : `${pct(live.score.value)} (${live.score.source})`;
}

function timeLeftText(live: LiveStatus): string {
  return live.timeLeftSeconds === null ? '–' : duration(live.timeLeftSeconds);
}

function trialLink(id: string): SafeHtml {
  return html`<a class="mono trial-id" href="${href(['trials', id])}">${id}</a>`;
}

/** "N demo trial(s) hidden · show them" (or "hide"), for pages that leave the demo out by default. */
function demoToggle(
  hidden: number,
  includeDemo: boolean,
  base: string[],
  query: Record<string, string | undefined>,
): SafeHtml {
  if (hidden === 0) return html``;
  return includeDemo
    ? html`<p class="demo-note">Showing the demo's ${hidden} trial(s) (experiment <span class="mono">ptb-demo</span>). <a href="${href(base, query)}">Hide them</a></p>`
    : html`<p class="demo-note">${hidden} trial(s) of <code>ptb demo</code> are left out of results. <a href="${href(base, { ...query, demo: '1' })}">Show them</a></p>`;
}

/**
 * Paging links. `total` null means the line count is still being computed (a huge trace): the pager
 * shows what is known and app.js fills in the total from `totalSrc` when the index is complete.
 */
function pager(
  base: string[],
  query: Record<string, string | number | undefined>,
  offset: number,
  size: number,
  total: number | null,
  pending?: { known: number; totalSrc: string },
): SafeHtml {
  const count = total ?? pending?.known ?? 0;
  if (total !== null && total <= size) return html``;
  const last = Math.max(0, Math.floor((count - 1) / size) * size);
  const link = (label: string, to: number, rel: string, enabled: boolean) =>
    enabled
      ? html`<a class="page-link" rel="${rel}" data-page="${rel}" href="${href(base, { ...query, offset: to })}">${label}</a>`
      : html`<span class="page-link disabled" data-page="${rel}">${label}</span>`;
  const attrs =
    total === null && pending
      ? html` data-total-src="${pending.totalSrc}" data-base="${href(base, query)}" data-size="${size}" data-offset="${offset}"`
      : '';
  return html`<div class="pager"${attrs}>
    ${link('« First', 0, 'first', offset > 0)}
    ${link('‹ Previous', Math.max(0, offset - size), 'prev', offset > 0)}
    <span class="page-pos">${offset + 1}–${Math.min(count, offset + size)} of ${
      total === null ? `≥ ${count.toLocaleString('en-US')} (counting…)` : count.toLocaleString('en-US')
    }</span>
    ${link('Next ›', offset + size, 'next', offset + size < count)}
    ${link('Last »', last, 'last', total !== null && offset + size < total)}
  </div>`;
}

function trialRows(list: TrialSummary[]): SafeHtml {
  if (list.length === 0) return html`<tr><td colspan="12" class="empty">No trials.</td></tr>`;
  return html`${list.map(
    (t) => html`<tr data-trial="${t.id}">
      <td>${trialLink(t.id)}</td>
      <td><a href="${href(['trials'], { experiment: t.experiment })}">${t.experiment}</a></td>
      <td>${t.agent}${t.agentConfig ? html` <span class="dim">${t.agentConfig}</span>` : ''}</td>
      <td>${t.baseModel}</td>
      <td>${t.benchmark}</td>
      <td data-f="status">${badge(t.live.status)}</td>
      <td data-f="phase">${t.live.phase ?? '–'}</td>
      <td data-f="timeLeft">${timeLeftText(t.live)}</td>
      <td data-f="gpu">${gpuText(t.live)}</td>
      <td data-f="score">${scoreText(t.live)}</td>
      <td>${t.auditVerdict ? badge(t.auditVerdict) : '–'}</td>
      <td>${money(t.costUsd)}</td>
    </tr>`,
  )}`;
}

function trialTable(list: TrialSummary[], liveSrc: string): SafeHtml {
  return html`<table class="trials" data-live-src="${liveSrc}">
    <thead><tr><th>Trial</th><th>Experiment</th><th>Agent</th><th>Base model</th><th>Benchmark</th><th>Status</th>
    <th>Phase</th><th>Time left</th><th>GPU</th><th>Score</th><th>Audit</th><th>Cost</th></tr></thead>
    <tbody>${trialRows(list)}</tbody>
  </table>`;
}

// ---- pages ----

export function homePage(data: TrialData, opts: { includeDemo?: boolean } = {}): string {
  const includeDemo = opts.includeDemo === true;
  const experiments = data.experiments({ includeDemo });
  const running = data.summaries({ status: 'running', includeDemo });
  const statuses = ['running', 'pending', 'completed', 'failed', 'interrupted'] as const;
  const body = html`<h1>Experiments</h1>
  <table class="experiments">
    <thead><tr><th>Experiment</th><th>Trials</th>${statuses.map((s) => html`<th>${s}</th>`)}<th>Created</th></tr></thead>
    <tbody>${
      experiments.length === 0
        ? html`<tr><td colspan="8" class="empty">No experiments yet. Start one with <code>ptb run</code>.</td></tr>`
        : experiments.map(
            (e) => html`<tr data-experiment="${e.name}">
          <td><a href="${href(['trials'], { experiment: e.name })}">${e.name}</a></td>
          <td>${e.trials}</td>
          ${statuses.map((s) => html`<td>${e.byStatus[s] ?? 0}</td>`)}
          <td class="dim">${e.createdAt}</td>
        </tr>`,
          )
    }</tbody>
  </table>
  ${demoToggle(data.demoTrialCount(), includeDemo, [], {})}
  <h2>Running now</h2>
  ${trialTable(running, href(['api', 'trials'], { status: 'running', demo: includeDemo ? '1' : undefined }))}`;
  return page({ title: 'Experiments', active: '/', body });
}

export function trialsPage(
  data: TrialData,
  filter: { experiment?: string; status?: Trial['status']; includeDemo?: boolean },
): string {
  const list = data.summaries(filter);
  const experiments = data.experiments({ includeDemo: filter.includeDemo }).map((e) => e.name);
  if (filter.experiment && !experiments.includes(filter.experiment)) experiments.push(filter.experiment);
  const demo = filter.includeDemo ? '1' : undefined;
  const statuses = ['pending', 'running', 'interrupted', 'completed', 'failed'];
  const body = html`<h1>Trials${filter.experiment ? html` of <span class="mono">${filter.experiment}</span>` : ''}</h1>
  <form class="filters" method="get" action="/trials">
    <label>Experiment <select name="experiment"><option value="">all</option>${experiments.map(
      (e) => html`<option value="${e}"${e === filter.experiment ? raw(' selected') : ''}>${e}</option>`,
    )}</select></label>
    <label>Status <select name="status"><option value="">all</option>${statuses.map(
      (s) => html`<option value="${s}"${s === filter.status ? raw(' selected') : ''}>${s}</option>`,
    )}</select></label>
    ${demo ? html`<input type="hidden" name="demo" value="1">` : ''}
    <button type="submit">Filter</button>
  </form>
  ${filter.experiment ? '' : demoToggle(data.demoTrialCount(), filter.includeDemo === true, ['trials'], { status: filter.status })}
  ${trialTable(list, href(['api', 'trials'], { experiment: filter.experiment, status: filter.status, demo }))}`;
  return page({ title: 'Trials', active: '/trials', body });
}

function kv(rows: [string, unknown][]): SafeHtml {
  return html`<table class="kv">${rows.map(([k, v]) => html`<tr><th>${k}</th><td>${v ?? '–'}</td></tr>`)}</table>`;
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2) ?? 'null';
}

function verdictsSection(audits: AuditWithVerdicts[]): SafeHtml {
  if (audits.length === 0) return html`<p class="empty">Not audited yet.</p>`;
  const render = (a: AuditWithVerdicts) => html`<div class="audit" data-audit="${a.id}">
    <p>${badge(a.combined)} <span class="dim">${a.created_at} · policy ${a.policy}</span></p>
    <p>${a.summary}</p>
    ${a.verdicts.map(
      (v) => html`<div class="verdict v-${v.verdict}">
        <h4>${badge(v.verdict)} <span class="mono">${v.detector}</span> <span class="dim">v${v.version}</span></h4>
        ${v.rule ? html`<p><b>Rule:</b> ${v.rule}</p>` : ''}
        <p>${v.summary}</p>
        ${
          v.evidence.length
            ? html`<ul class="evidence">${v.evidence.map((e) => {
                const { source, detail, ...extra } = e;
                return html`<li><span class="mono">${source}</span>: ${detail}${
                  Object.keys(extra).length ? html`<pre>${json(extra)}</pre>` : ''
                }</li>`;
              })}</ul>`
            : ''
        }
      </div>`,
    )}
  </div>`;
  const latest = audits.at(-1)!;
  const earlier = audits.slice(0, -1);
  return html`${render(latest)}${
    earlier.length
      ? html`<details><summary>${earlier.length} earlier audit(s)</summary>${earlier.reverse().map(render)}</details>`
      : ''
  }`;
}

/** The resource monitor ledger as charts over time (GPU, CPU, memory, disk, each with its unit). */
function monitorSection(data: TrialData, t: Trial): SafeHtml {
  const samples = data.monitorSamples(t);
  if (samples.length === 0) return html``;
  const charts = monitorCharts(samples);
  const gpus = samples.some((s) => s.gpus.length > 0);
  return html`<h3 id="monitor">Resources over time</h3>
  <p class="dim">${samples.length} monitor sample(s), one a minute while the agent ran${gpus ? '' : '; no GPU in this trial'}.</p>
  <div class="plots monitor-charts">${charts.map(
    (c) =>
      html`<figure class="plot" data-chart="${c.key}"><figcaption>${c.title}</figcaption>${raw(c.svg)}</figure>`,
  )}</div>`;
}

export function trialPage(data: TrialData, t: Trial): string {
  const d = data.detail(t);
  const s = d.trial;
  const base = ['trials', t.id];
  const ledgers = Object.entries(d.ledgers);
  const mc = d.ledgers.model_calls?.extra as {
    calls?: number;
    inputTokens?: number;
    outputTokens?: number;
    costUsd?: number;
    unpriced?: number;
  };
  const body = html`<h1 class="mono">${t.id}</h1>
  <section class="live" data-live-trial="${t.id}">
    <div><span class="label">Status</span> <span data-f="status">${badge(s.live.status)}</span></div>
    <div><span class="label">Phase</span> <span data-f="phase">${s.live.phase ?? '–'}</span></div>
    <div><span class="label">Time left</span> <span data-f="timeLeft" data-seconds="${s.live.timeLeftSeconds ?? ''}">${timeLeftText(s.live)}</span></div>
    <div><span class="label">GPU</span> <span data-f="gpu">${gpuText(s.live)}</span></div>
    <div><span class="label">Score</span> <span data-f="score">${scoreText(s.live)}</span></div>
  </section>
  <nav class="sub">
    <a href="${href([...base, 'trace'])}">Trajectory</a>
    <a href="${href([...base, 'samples'])}">Samples</a>
    <a href="${href(['compare'], { a: t.id })}">Compare…</a>
    <a href="#ledgers">Ledgers</a>
    <a href="#verdicts">Verdicts</a>
  </nav>
  <div class="cols">
  <section><h2>Spec</h2>
  ${kv([
    ['Experiment', html`<a href="${href(['trials'], { experiment: s.experiment })}">${s.experiment}</a>`],
    ['Agent', `${s.agent}${s.agentConfig ? ` · ${s.agentConfig}` : ''}`],
    ['Base model', s.baseModel],
    ['Benchmark', s.benchmark],
    ['Budget', `${t.hours} h · ${t.gpus} GPU(s)`],
    ['Seed', t.seed],
    ['Sandbox', t.sandbox],
    ['Engine', d.spec.engine],
    ['Source', d.source],
    ['Directory', html`<span class="mono">${d.dir}</span>`],
  ])}
  <details><summary>Full spec (JSON)</summary><pre>${json(d.spec)}</pre></details>
  </section>
  ${schedulerSection(data, t)}
  <section><h2>Outcome</h2>
  ${kv([
    ['Agent outcome', s.agentOutcome],
    ['Agent time', duration(d.agentSeconds)],
    ['Accuracy (evaluated)', pct(s.accuracy)],
    ['Final score', pct(s.finalScore)],
    ['Substituted by base score', s.substituted === null ? '–' : s.substituted ? 'yes' : 'no'],
    ['Audit', s.auditVerdict ? badge(s.auditVerdict) : '–'],
    ['Tokens in / out', `${d.inputTokens ?? '–'} / ${d.outputTokens ?? '–'}`],
    ['Cost', money(s.costUsd)],
    ['Created', s.createdAt],
    ['Finished', d.finishedAt],
    ['Error', d.error ? html`<span class="error">${d.error}</span>` : null],
  ])}
  </section>
  </div>
  <section><h2>Phases</h2>
  <table><thead><tr><th>Phase</th><th>Status</th><th>Started</th><th>Finished</th><th>Error</th></tr></thead><tbody>
  ${d.phases.map(
    (p) =>
      html`<tr><td>${p.phase}</td><td>${badge(p.status)}</td><td class="dim">${p.started_at}</td><td class="dim">${p.finished_at ?? '–'}</td><td>${p.error ?? ''}</td></tr>`,
  )}
  </tbody></table></section>
  <section><h2>Prompt</h2>
  ${
    d.prompt
      ? html`<details${d.prompt.text.length < 4000 ? raw(' open') : ''}><summary>prompt.txt (${bytesText(d.prompt.bytes)})</summary><pre class="prompt">${d.prompt.text}${d.prompt.truncated ? '\n… (cut)' : ''}</pre></details>`
      : html`<p class="empty">No prompt.txt.</p>`
  }</section>
  <section><h2>Trajectory</h2>
  <p><a href="${href([...base, 'trace'])}">Raw trace (solve_out.txt)</a> ${bytesText(d.trace.solveOutBytes)}
  · <a href="${href([...base, 'trace'], { source: 'events' })}">Parsed events (trajectory.json)</a> ${bytesText(d.trace.trajectoryBytes)}</p>
  </section>
  <section id="ledgers"><h2>Ledgers</h2>
  <table><thead><tr><th>Ledger</th><th>Entries</th><th>Notes</th></tr></thead><tbody>
  ${ledgers.map(
    ([
      name,
      l,
    ]) => html`<tr><td>${l.exists ? html`<a href="${href([...base, 'ledgers', name])}">${l.title}</a>` : l.title}</td>
      <td>${l.exists ? l.count : 'none'}</td>
      <td>${
        name === 'model_calls' && l.exists && mc
          ? `${mc.inputTokens} in / ${mc.outputTokens} out tokens · ${money(mc.costUsd)}${mc.unpriced ? ` (+${mc.unpriced} unpriced)` : ''}`
          : name === 'egress' && l.exists
            ? `${l.extra.denied} denied`
            : ''
      }</td></tr>`,
  )}
  </tbody></table>
  ${monitorSection(data, t)}</section>
  <section id="verdicts"><h2>Verdicts</h2>${verdictsSection(d.audits)}</section>
  <section><h2>Metrics</h2>${
    d.metrics === undefined
      ? html`<p class="empty">No metrics.json.</p>`
      : html`<pre>${json(d.metrics)}</pre>`
  }
  <p>${d.samples ? html`<a href="${href([...base, 'samples'])}">${d.samples.count} per-sample results</a>` : 'No per-sample results.'}</p>
  </section>`;
  return page({ title: t.id, active: '/trials', body });
}

export function tracePage(
  data: TrialData,
  t: Trial,
  q: { offset: number; q: string; from: number; source: 'raw' | 'events' },
): string {
  const base = ['trials', t.id, 'trace'];
  const head = html`<h1>Trajectory of ${trialLink(t.id)}</h1>
  <nav class="sub">
    <a href="${href(base)}"${q.source === 'raw' ? raw(' class="active"') : ''}>Raw trace</a>
    <a href="${href(base, { source: 'events' })}"${q.source === 'events' ? raw(' class="active"') : ''}>Parsed events</a>
  </nav>
  <form class="search" method="get" action="${href(base)}">
    ${q.source === 'events' ? html`<input type="hidden" name="source" value="events">` : ''}
    <input type="search" name="q" value="${q.q}" placeholder="Search the trace" aria-label="Search">
    <button type="submit">Search</button>
    ${q.q ? html`<a href="${href(base, { source: q.source === 'events' ? 'events' : undefined })}">clear</a>` : ''}
  </form>`;
  const pageOf = (n: number) => Math.floor(n / TRACE_PAGE) * TRACE_PAGE;
  let body: SafeHtml;
  if (q.source === 'events') {
    if (q.q) {
      const r = data.eventsSearch(t, q.q, q.from);
      body = html`<p class="search-summary">${r.matches.length} matching event(s)${r.nextFrom !== null ? ' (first results)' : ''}</p>
      <ol class="events">${r.matches.map((m) => eventItem(m.n, m.event, `${href(base, { source: 'events', offset: pageOf(m.n) })}#E${m.n}`))}</ol>
      ${r.nextFrom !== null ? html`<a data-page="more" href="${href(base, { source: 'events', q: q.q, from: r.nextFrom })}">More results</a>` : ''}`;
    } else {
      const r = data.eventsPage(t, q.offset, TRACE_PAGE);
      body = r.exists
        ? html`<p class="dim">${r.format ?? ''} ${r.model ?? ''} · ${r.total} events</p>
          ${pager(base, { source: 'events' }, q.offset, TRACE_PAGE, r.total)}
          <ol class="events">${r.events.map((e) => eventItem(e.n, e.event))}</ol>
          ${pager(base, { source: 'events' }, q.offset, TRACE_PAGE, r.total)}`
        : html`<p class="empty">No trajectory.json for this trial.</p>`;
    }
  } else if (q.q) {
    const r = data.traceSearch(t, q.q, q.from);
    body = html`<p class="search-summary">${r.matches.length} matching line(s)${r.nextFrom !== null ? ' (first results)' : ''} in ${r.total.toLocaleString('en-US')} lines</p>
    <table class="trace"><tbody>${r.matches.map(
      (m) =>
        html`<tr><td class="ln"><a href="${href(base, { offset: pageOf(m.n) }) + `#L${m.n + 1}`}">${m.n + 1}</a></td><td class="ts">${m.ts ?? ''}</td><td class="tx">${m.text}${m.truncated ? html`<span class="cut"> … (line cut)</span>` : ''}</td></tr>`,
    )}</tbody></table>
    ${r.nextFrom !== null ? html`<a data-page="more" href="${href(base, { q: q.q, from: r.nextFrom })}">More results</a>` : ''}`;
  } else {
    const r = data.tracePage(t, q.offset, TRACE_PAGE);
    const pending =
      r.total === null
        ? { known: r.known, totalSrc: href(['api', 'trials', t.id, 'trajectory'], { limit: 1 }) }
        : undefined;
    body = r.exists
      ? html`<p class="dim">solve_out.txt · <span data-f="lines">${
          r.total === null
            ? `≥ ${r.known.toLocaleString('en-US')} (counting…)`
            : r.total.toLocaleString('en-US')
        }</span> lines · ${bytesText(r.bytes)}</p>
        ${pager(base, {}, q.offset, TRACE_PAGE, r.total, pending)}
        <table class="trace"><tbody>${r.lines.map(
          (l) =>
            html`<tr id="L${l.n + 1}"><td class="ln"><a href="#L${l.n + 1}">${l.n + 1}</a></td><td class="ts">${l.ts ?? ''}</td><td class="tx">${l.text}${l.truncated ? html`<span class="cut"> … (line cut)</span>` : ''}</td></tr>`,
        )}</tbody></table>
        ${pager(base, {}, q.offset, TRACE_PAGE, r.total, pending)}`
      : html`<p class="empty">No solve_out.txt for this trial.</p>`;
  }
  return page({ title: `Trajectory ${t.id}`, active: '/trials', body: html`${head}${body}` });
}

function eventItem(n: number, event: unknown, link?: string): SafeHtml {
  const e = (event && typeof event === 'object' ? event : { text: String(event) }) as Record<string, unknown>;
  const kind = typeof e.kind === 'string' ? e.kind : 'raw';
  const role = typeof e.role === 'string' ? e.role : '';
  const tool = e.tool && typeof e.tool === 'object' ? (e.tool as Record<string, unknown>) : null;
  const text = typeof e.text === 'string' ? e.text : '';
  return html`<li id="E${n}" class="ev ev-${kind.replace(/[^a-z_]/g, '')}">
    <div class="ev-head">${link ? html`<a href="${link}">#${n}</a>` : html`<a href="#E${n}">#${n}</a>`} ${badge(kind, 'kind')} ${role} <span class="dim">${typeof e.ts === 'string' ? e.ts : ''}</span>
    ${tool?.name ? html` <span class="mono">${String(tool.name)}</span>` : ''}${e.isError ? html` ${badge('error', 'flagged')}` : ''}</div>
    ${text ? html`<pre class="ev-text">${text}</pre>` : ''}
    ${tool?.input !== undefined ? html`<pre class="ev-tool">${json(tool.input)}</pre>` : ''}
    ${e.usage ? html`<div class="dim">usage ${JSON.stringify(e.usage)}</div>` : ''}
    ${!text && !tool && kind === 'raw' && e.raw !== undefined ? html`<pre class="ev-text">${typeof e.raw === 'string' ? e.raw : json(e.raw)}</pre>` : ''}
  </li>`;
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '–';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function ledgerPage(data: TrialData, t: Trial, name: LedgerName, offset: number): string {
  const def = LEDGERS[name];
  const r = data.ledgerPage(t, name, offset, LEDGER_PAGE);
  const columns = Object.keys((def.schema as unknown as z.ZodObject).shape);
  const base = ['trials', t.id, 'ledgers', name];
  const body = html`<h1>${def.title} of ${trialLink(t.id)}</h1>
  <nav class="sub">${Object.entries(LEDGERS).map(
    ([n, l]) =>
      html`<a href="${href(['trials', t.id, 'ledgers', n])}"${n === name ? raw(' class="active"') : ''}>${l.title}</a>`,
  )}</nav>
  ${name === 'monitor' ? monitorSection(data, t) : ''}
  ${
    r.exists
      ? html`${pager(base, {}, offset, LEDGER_PAGE, r.total)}
    <table class="ledger" data-ledger="${name}"><thead><tr><th>#</th>${columns.map((c) => html`<th>${c}</th>`)}</tr></thead>
    <tbody>${r.rows.map((row) =>
      row.ok && 'row' in row
        ? html`<tr><td class="ln">${row.n + 1}</td>${columns.map((c) => html`<td>${cell((row.row as Record<string, unknown>)[c])}</td>`)}</tr>`
        : html`<tr class="bad"><td class="ln">${row.n + 1}</td><td colspan="${columns.length}">${'error' in row ? row.error : ''}: <span class="mono">${'raw' in row ? row.raw : ''}</span></td></tr>`,
    )}</tbody></table>
    ${pager(base, {}, offset, LEDGER_PAGE, r.total)}`
      : html`<p class="empty">This trial has no ${def.title.toLowerCase()} ledger.</p>`
  }`;
  return page({ title: `${def.title} ${t.id}`, active: '/trials', body });
}

type SamplesResult = ReturnType<TrialData['samplesPageOf']>;

/** Filter form, pager and table of per-sample results (a trial's final evaluation or any eval run). */
function samplesSection(
  r: SamplesResult,
  base: string[],
  q: { offset: number; filter: SampleFilter; q: string },
  mean: number | null,
): SafeHtml {
  const query = { filter: q.filter === 'all' ? undefined : q.filter, q: q.q || undefined };
  return html`<form class="search" method="get" action="${href(base)}">
      <select name="filter">${(['all', 'right', 'wrong'] as const).map(
        (f) => html`<option value="${f}"${f === q.filter ? raw(' selected') : ''}>${f}</option>`,
      )}</select>
      <input type="search" name="q" value="${q.q}" placeholder="Search id, answer, response" aria-label="Search samples">
      <button type="submit">Filter</button></form>
    <p class="dim">${r.matched} of ${r.total} samples · mean score ${pct(mean)}</p>
    ${pager(base, query, q.offset, SAMPLES_PAGE, r.matched)}
    <table class="samples"><thead><tr><th>#</th><th>Sample</th><th>Score</th><th>Answer</th><th>Finish</th><th>Response</th></tr></thead>
    <tbody>${r.rows.map(
      (
        s,
      ) => html`<tr data-sample="${s.id}" class="${s.score > 0 ? 'right' : 'wrong'}"><td class="ln">${s.n + 1}</td><td class="mono">${s.id}</td><td>${s.score}</td><td>${s.answer ?? '–'}</td><td>${s.finishReason ?? '–'}</td>
      <td>${s.response === null ? '–' : html`<details><summary>${s.response.slice(0, 120)}${s.response.length > 120 ? '…' : ''}</summary><pre>${s.response}</pre></details>`}</td></tr>`,
    )}</tbody></table>
    ${pager(base, query, q.offset, SAMPLES_PAGE, r.matched)}`;
}

export function samplesPage(
  data: TrialData,
  t: Trial,
  q: { offset: number; filter: SampleFilter; q: string },
): string {
  const path = data.samplesFile(t);
  const r = data.samplesPageOf(path, q.offset, SAMPLES_PAGE, q.filter, q.q);
  const base = ['trials', t.id, 'samples'];
  const body = html`<h1>Samples of ${trialLink(t.id)}</h1>
  ${
    r.exists
      ? samplesSection(r, base, q, data.meanScoreOf(path))
      : html`<p class="empty">No per-sample results for this trial (no samples.jsonl under its eval/ directory).</p>`
  }`;
  return page({ title: `Samples ${t.id}`, active: '/trials', body });
}

// ---- evaluations ----

function evalLink(id: string): SafeHtml {
  return html`<a class="mono eval-id" href="${href(['evals', id])}">${id}</a>`;
}

export function evalsPage(data: TrialData, opts: { includeDemo?: boolean } = {}): string {
  const includeDemo = opts.includeDemo === true;
  const runs = data.evalRuns({ includeDemo });
  const hidden = includeDemo ? 0 : data.evalRuns({ includeDemo: true }).length - runs.length;
  const body = html`<h1>Evaluations</h1>
  <p class="dim">Every evaluation run: <code>ptb eval</code>, baselines and trials' final evaluations, newest first.</p>
  ${
    hidden > 0
      ? html`<p class="demo-note">${hidden} evaluation(s) of <code>ptb demo</code> are left out. <a href="${href(['evals'], { demo: '1' })}">Show them</a></p>`
      : ''
  }
  <table class="evals"><thead><tr><th>Run</th><th>Benchmark</th><th>Model</th><th>Engine</th><th>Status</th><th>Accuracy</th><th>Samples</th><th>Trial</th><th>Created</th></tr></thead>
  <tbody>${
    runs.length === 0
      ? html`<tr><td colspan="9" class="empty">No evaluations yet. Run one with <code>ptb eval -m MODEL -b BENCHMARK</code>.</td></tr>`
      : runs.map(
          (r) => html`<tr data-eval="${r.id}">
      <td>${evalLink(r.id)}${r.demo ? html` ${badge('demo', 'demo')}` : ''}</td>
      <td>${r.benchmark}</td>
      <td class="model" title="${r.model}">${r.model}</td>
      <td>${r.engine}</td>
      <td>${badge(r.status)}</td>
      <td>${pct(r.accuracy)}</td>
      <td>${r.samples === null ? '–' : html`<a href="${href(['evals', r.id])}#samples">${r.samples}</a>`}</td>
      <td>${r.trialId ? trialLink(r.trialId) : '–'}</td>
      <td class="dim">${r.createdAt}</td>
    </tr>`,
        )
  }</tbody></table>`;
  return page({ title: 'Evaluations', active: '/evals', body });
}

export function evalPage(
  data: TrialData,
  runId: string,
  q: { offset: number; filter: SampleFilter; q: string },
): string | null {
  const row = data.evalRun(runId);
  if (!row) return null;
  const run = data.evalRuns({ includeDemo: true }).find((r) => r.id === row.id) ?? data.evalRunSummary(row);
  const path = data.evalSamplesFile(row);
  const r = data.samplesPageOf(path, q.offset, SAMPLES_PAGE, q.filter, q.q);
  const parsed = (text: string | null): unknown => {
    if (text === null) return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  };
  const body = html`<h1>Evaluation ${html`<span class="mono">${run.id}</span>`}</h1>
  <div class="cols"><section><h2>Run</h2>
  ${kv([
    ['Benchmark', run.benchmark],
    ['Model', html`<span class="mono">${run.model}</span>`],
    ['Engine', run.engine],
    ['Status', badge(run.status)],
    ['Accuracy', pct(run.accuracy)],
    ['Trial', run.trialId ? trialLink(run.trialId) : null],
    ['Demo', run.demo ? 'yes (ptb demo)' : null],
    ['Created', run.createdAt],
    ['Finished', run.finishedAt],
    ['Directory', html`<span class="mono">${run.outDir}</span>`],
    ['Error', run.error ? html`<span class="error">${run.error}</span>` : null],
  ])}</section>
  <section><h2>Metrics</h2><pre>${row.metrics_json ? json(parsed(row.metrics_json)) : '–'}</pre>
  <details><summary>Configuration (JSON)</summary><pre>${json(parsed(row.config_json))}</pre></details></section></div>
  <section id="samples"><h2>Samples</h2>${
    r.exists
      ? samplesSection(r, ['evals', run.id], q, data.meanScoreOf(path))
      : html`<p class="empty">This run wrote no samples.jsonl.</p>`
  }</section>`;
  return page({ title: `Evaluation ${run.id}`, active: '/evals', body });
}

/** Experiments to choose from on the leaderboard, with the chosen ones ticked, and the demo switch. */
function leaderboardFilter(data: TrialData, chosen: readonly string[], includeDemo: boolean): SafeHtml {
  const experiments = data.experiments({ includeDemo });
  const hidden = includeDemo ? 0 : data.experiments({ includeDemo: true }).length - experiments.length;
  return html`<form class="filters lb-filter" method="get" action="/leaderboard">
    <fieldset><legend>Experiments${chosen.length ? html` (${chosen.length} chosen)` : ' (all)'}</legend>
    ${experiments.map(
      (e) =>
        html`<label class="exp-choice"><input type="checkbox" name="experiment" value="${e.name}"${chosen.includes(e.name) ? raw(' checked') : ''}> <span class="mono">${e.name}</span> <span class="dim">${e.trials}</span></label>`,
    )}
    </fieldset>
    <label><input type="checkbox" name="demo" value="1"${includeDemo ? raw(' checked') : ''}> include <code>ptb demo</code>${hidden ? ` (${hidden} experiment${hidden > 1 ? 's' : ''} hidden)` : ''}</label>
    <button type="submit">Apply</button>
    ${chosen.length || includeDemo ? html`<a href="/leaderboard">reset</a>` : ''}
  </form>`;
}

export function leaderboardPage(
  data: TrialData,
  filter: { experiments?: readonly string[]; includeDemo?: boolean } = {},
): string {
  const chosen = filter.experiments ?? [];
  const includeDemo = filter.includeDemo === true;
  const form = leaderboardFilter(data, chosen, includeDemo);
  const lb = computeLeaderboard(data.trials, { experiments: chosen, includeDemo });
  if (!lb.ok) {
    const body = html`<h1>Leaderboard</h1>${form}<p class="error">${lb.error}</p>${lb.hint ? html`<p>${lb.hint}</p>` : ''}`;
    return page({ title: 'Leaderboard', active: '/leaderboard', body });
  }
  const body = html`<h1>Leaderboard</h1>
  ${form}
  <table class="leaderboard"><thead><tr>${lb.header.map((h) => html`<th>${h}</th>`)}</tr></thead>
  <tbody>${
    lb.rows.length === 0
      ? html`<tr><td colspan="${lb.header.length}" class="empty">No trials yet.</td></tr>`
      : lb.rows.map((r) => html`<tr class="lb-${r.kind}">${r.cells.map((c) => html`<td>${c}</td>`)}</tr>`)
  }</tbody></table>
  <ul class="notes">${lb.notes.map((n) => html`<li>${n}</li>`)}</ul>
  <div class="plots">${lb.plots.map((p) => html`<figure class="plot"><figcaption>${p.title}</figcaption>${raw(p.svg)}</figure>`)}</div>
  <h2>Runs</h2>
  <table class="runs"><thead><tr><th>Agent</th><th>Run</th><th>Experiment</th><th>Average</th><th>Complete</th><th>Problems</th></tr></thead><tbody>${lb.runs.map(
    (
      r,
    ) => html`<tr><td>${r.row}</td><td>${r.run}</td><td><a href="${href(['trials'], { experiment: r.experiment })}">${r.experiment}</a></td>
      <td>${pct(r.avg)}</td><td>${r.complete ? 'yes' : 'no'}</td><td class="dim">${r.problems.join('; ')}</td></tr>`,
  )}</tbody></table>`;
  return page({ title: 'Leaderboard', active: '/leaderboard', body });
}

export function compareData(data: TrialData, a: Trial, b: Trial) {
  const sa = data.samples(a);
  const sb = data.samples(b);
  let diff = null;
  if (a.benchmark === b.benchmark && sa.length && sb.length) {
    const mb = new Map(sb.map((s) => [s.id, s]));
    const ma = new Map(sa.map((s) => [s.id, s]));
    const counts = { bothRight: 0, onlyA: 0, onlyB: 0, bothWrong: 0, missingInA: 0, missingInB: 0 };
    const differing: { id: string; a: number; b: number; answerA: string | null; answerB: string | null }[] =
      [];
    for (const x of sa) {
      const y = mb.get(x.id);
      if (!y) {
        counts.missingInB++;
        continue;
      }
      const ra = x.score > 0;
      const rb = y.score > 0;
      if (ra && rb) counts.bothRight++;
      else if (ra) counts.onlyA++;
      else if (rb) counts.onlyB++;
      else counts.bothWrong++;
      if (x.score !== y.score)
        differing.push({ id: x.id, a: x.score, b: y.score, answerA: x.answer, answerB: y.answer });
    }
    for (const y of sb) if (!ma.has(y.id)) counts.missingInA++;
    diff = { counts, differing: differing.slice(0, 500), differingTotal: differing.length };
  }
  const side = (t: Trial) => ({
    ...data.summary(t),
    latestAudit: data.trials.latestAudit(t.id) ?? null,
    samples: t === a ? sa.length : sb.length,
  });
  return { a: side(a), b: side(b), sameBenchmark: a.benchmark === b.benchmark, diff };
}

export function comparePage(
  data: TrialData,
  a: Trial | undefined,
  b: Trial | undefined,
  ids: { a: string; b: string },
): string {
  const all = data.trials.list();
  const picker = (name: 'a' | 'b', chosen: string) =>
    html`<select name="${name}"><option value="">choose a trial</option>${all.map(
      (t) =>
        html`<option value="${t.id}"${t.id === chosen ? raw(' selected') : ''}>${t.id} · ${t.experiment} · ${t.benchmark}</option>`,
    )}</select>`;
  const form = html`<form class="filters" method="get" action="/compare">
    <label>A ${picker('a', a?.id ?? ids.a)}</label> <label>B ${picker('b', b?.id ?? ids.b)}</label> <button type="submit">Compare</button></form>`;
  let content = html``;
  if (a && b) {
    const c = compareData(data, a, b);
    const row = (label: string, f: (s: typeof c.a) => unknown) => {
      const va = f(c.a);
      const vb = f(c.b);
      const same = cell(va) === cell(vb);
      return html`<tr${same ? '' : raw(' class="differs"')}><th>${label}</th><td>${cell(va)}</td><td>${cell(vb)}</td></tr>`;
    };
    const verdicts = (s: typeof c.a) =>
      s.latestAudit
        ? s.latestAudit.verdicts
            .map((v) => `${v.detector}: ${v.verdict}${v.rule ? ` (${v.rule})` : ''}`)
            .join('; ') || s.latestAudit.combined
        : null;
    content = html`<table class="compare"><thead><tr><th></th><th>A: ${trialLink(c.a.id)}</th><th>B: ${trialLink(c.b.id)}</th></tr></thead><tbody>
      ${row('Experiment', (s) => s.experiment)}
      ${row('Agent', (s) => `${s.agent}${s.agentConfig ? ` · ${s.agentConfig}` : ''}`)}
      ${row('Base model', (s) => s.baseModel)}
      ${row('Benchmark', (s) => s.benchmark)}
      ${row('Budget (h)', (s) => s.hours)}
      ${row('Seed', (s) => s.seed)}
      ${row('Status', (s) => s.status)}
      ${row('Agent outcome', (s) => s.agentOutcome)}
      ${row('Agent time', (s) => duration(s.live.agentSeconds))}
      ${row('Accuracy', (s) => pct(s.accuracy))}
      ${row('Final score', (s) => pct(s.finalScore))}
      ${row('Substituted', (s) => (s.substituted === null ? null : s.substituted ? 'yes' : 'no'))}
      ${row('Audit', (s) => s.auditVerdict)}
      ${row('Verdicts', verdicts)}
      ${row('Cost', (s) => money(s.costUsd))}
      ${row('Samples', (s) => s.samples)}
    </tbody></table>
    ${
      c.diff
        ? html`<h2>Per-sample difference (${a.benchmark})</h2>
      <table class="kv diff-counts">${Object.entries({
        'Both right': c.diff.counts.bothRight,
        'Only A right': c.diff.counts.onlyA,
        'Only B right': c.diff.counts.onlyB,
        'Both wrong': c.diff.counts.bothWrong,
        'Only in A': c.diff.counts.missingInB,
        'Only in B': c.diff.counts.missingInA,
      }).map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`)}</table>
      <table class="samples-diff"><thead><tr><th>Sample</th><th>A score</th><th>B score</th><th>A answer</th><th>B answer</th></tr></thead><tbody>${c.diff.differing.map(
        (d) =>
          html`<tr data-sample="${d.id}"><td><span class="mono">${d.id}</span> <a href="${href(['trials', a.id, 'samples'], { q: d.id })}">A</a> <a href="${href(['trials', b.id, 'samples'], { q: d.id })}">B</a></td><td>${d.a}</td><td>${d.b}</td><td>${d.answerA ?? '–'}</td><td>${d.answerB ?? '–'}</td></tr>`,
      )}</tbody></table>${c.diff.differingTotal > c.diff.differing.length ? html`<p class="dim">${c.diff.differingTotal - c.diff.differing.length} more differing samples not shown.</p>` : ''}`
        : html`<p class="dim">${c.sameBenchmark ? 'Per-sample results are missing for one of the trials.' : 'Different benchmarks: no per-sample comparison.'}</p>`
    }`;
  } else if (ids.a || ids.b) {
    content = html`<p class="empty">Choose two existing trials.</p>`;
  }
  return page({
    title: 'Compare',
    active: '/compare',
    body: html`<h1>Compare two trials</h1>${form}${content}`,
  });
}

/** A trial run by a batch scheduler: where and how it runs, its restarts, and its Slurm log. */
function schedulerSection(data: TrialData, t: Trial): SafeHtml {
  const sched = data.scheduled(t.id);
  const lost = data.trials.lostAttempts(t.id);
  if (!sched && lost.length === 0) return html``;
  const lostText = lost.length
    ? `${lost.length} (${lost.map((l) => `${l.phase}: ${l.reason}, ${duration(l.seconds)} lost`).join('; ')})`
    : '0';
  return html`<section><h2>Scheduler</h2>
  ${kv([
    ['State', sched ? badge(sched.state) : null],
    ['Slurm state', sched?.schedulerState ?? null],
    ['Job', sched?.job ?? null],
    ['Node', sched?.node ?? null],
    ['Restarts', lostText],
    ['Why', sched?.reason ?? null],
    ['Log', sched ? html`<a href="${href(['trials', t.id, 'log'])}">${sched.log}</a>` : null],
  ])}
  </section>`;
}

/** The tail of a scheduled trial's Slurm log (appended across requeues and resubmissions). */
export function schedulerLogPage(data: TrialData, t: Trial): string {
  const sched = data.scheduled(t.id);
  const log = sched ? readTailCapped(sched.log, 256 * 1024) : null;
  const body = html`<h1 class="mono"><a href="${href(['trials', t.id])}">${t.id}</a> · Slurm log</h1>
  ${
    !sched
      ? html`<p>This trial was not run by a batch scheduler.</p>`
      : !log
        ? html`<p>No log yet at <span class="mono">${sched.log}</span> (the task has not started).</p>`
        : html`<p class="mono">${sched.log} · ${bytesText(log.bytes)}${log.truncated ? ' · the last 256 KiB' : ''}</p>
  <pre>${log.text}</pre>`
  }`;
  return page({ title: `${t.id} log`, active: 'trials', body });
}

export function errorPage(status: number, message: string): string {
  return page({
    title: String(status),
    body: html`<h1>${status}</h1><p class="error">${message}</p><p><a href="/">Back to experiments</a></p>`,
  });
}
