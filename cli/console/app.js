// The outdial console: one page, five views (campaigns, one campaign, one call, start a
// campaign, the do-not-call list), routed by the URL's fragment. It talks only to the server
// that served it (`outdial console`), which forwards `/api/...` to the outdial API and signs
// those requests itself. No build step: this file runs as written.
//
// Live views poll: the campaign page once a second, lists every few seconds. A view's timers
// stop when another view opens, and the chart keeps a fixed window of points, so a page left
// open all day holds the same memory as one opened a minute ago.
'use strict';

(() => {
  const view = document.getElementById('view');
  const flash = document.getElementById('flash');

  // The server's token arrives once, in the address `outdial console` printed; the page keeps
  // it for this tab and takes it out of the address bar.
  const TOKEN_KEY = 'outdial-console-token';
  const given = new URLSearchParams(location.search).get('token');
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    history.replaceState(null, '', `/${location.hash}`);
  }
  const token = sessionStorage.getItem(TOKEN_KEY) || '';
  const guarded = (headers = {}) => ({ 'X-Outdial-Console': token, ...headers });

  // ---------------------------------------------------------------- the API

  /** An answer that was not a success, read from its problem details. */
  class Problem extends Error {
    constructor(status, body) {
      const title = (body && body.title) || `HTTP ${status}`;
      super(body && body.detail ? `${title}: ${body.detail}` : title);
      this.status = status;
      this.body = body || {};
    }
  }

  /** The JSON of an answer (a problem for a failure), whatever it holds. */
  async function read(answer) {
    const text = await answer.text();
    let parsed = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { title: `HTTP ${answer.status}`, detail: text.slice(0, 300) };
      }
    }
    if (!answer.ok) throw new Problem(answer.status, parsed);
    return parsed;
  }

  /**
   * Calls the outdial API through the console's server; the parsed JSON body, or null.
   * `signal` aborts it when its view closes.
   */
  async function api(method, path, { body, headers = {}, signal } = {}) {
    return read(await fetch(`/api${path}`, { method, body, signal, headers: guarded(headers) }));
  }

  /** An id from the address, as it may appear in an API path. */
  const ID = /^(cmp|call)_[A-Za-z0-9_-]{1,64}$/;
  const seg = (id) => encodeURIComponent(id);

  /** The enumerations of the API's OpenAPI document the views use, fetched once. */
  let typesPromise = null;
  function types() {
    if (!typesPromise) {
      typesPromise = fetch('/console/types.json', { headers: guarded() })
        .then(read)
        .catch((e) => {
          // Asked again by the next view rather than failing every view until a reload.
          typesPromise = null;
          throw e;
        });
    }
    return typesPromise;
  }

  // ---------------------------------------------------------------- building the page

  /** An element: `h('a', {href: '#'}, 'text', child)`. Text is always set as text. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /**
   * A phone number with all but its first two and last two digits hidden; text with fewer
   * than seven digits (not a number at all) is shown as written.
   */
  function mask(number) {
    const s = String(number || '');
    const digits = s.replace(/\D/g, '').length;
    if (digits < 7) return s;
    let seen = 0;
    return s.replace(/\d/g, (d) => {
      seen += 1;
      return seen <= 2 || seen > digits - 2 ? d : '•';
    });
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: 'medium',
    timeStyle: 'medium',
  });
  function when(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : timeFormat.format(d);
  }
  function clock(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso || '';
    return `${d.toLocaleTimeString(undefined, { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  }
  const percent = (x) => `${(100 * (Number(x) || 0)).toFixed(1)} %`;
  const rate = (x) => (Number(x) || 0).toFixed(1);

  function status(s) {
    return h('span', { class: `badge s-${String(s).toLowerCase()}` }, s);
  }

  let flashTimer = null;
  function say(message, kind = 'info') {
    if (flash.textContent === message) return;
    flash.textContent = message;
    flash.className = kind;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => {
      flash.textContent = '';
    }, 6000);
  }

  function failure(e) {
    const problem = e instanceof Problem ? e : null;
    const items = ((problem && problem.body.errors) || []).map((f) =>
      h('li', {}, h('code', {}, f.field || ''), ` ${f.reason || ''}`),
    );
    return h(
      'div',
      { class: 'error', role: 'alert' },
      h('p', {}, e.message || String(e)),
      items.length ? h('ul', {}, items) : null,
    );
  }

  /**
   * Replaces `container`'s children by `nodes`, keeping keyboard focus on the same link or
   * control (same `href` or `id`) when the focus was inside it.
   */
  function refill(container, ...nodes) {
    const focused = document.activeElement;
    const key =
      focused && container.contains(focused)
        ? focused.getAttribute('href') || (focused.id && `#${focused.id}`)
        : null;
    container.replaceChildren(...nodes);
    if (!key) return;
    const again = [...container.querySelectorAll('a[href], [id]')].find(
      (el) => el.getAttribute('href') === key || (el.id && `#${el.id}` === key),
    );
    if (again) again.focus({ preventScroll: true });
  }

  /** A table of `rows` (arrays of cells) under `headers`, with a caption. */
  function table(caption, headers, rows, attrs = {}) {
    return h(
      'table',
      attrs,
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h(
        'tbody',
        {},
        rows.length
          ? rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))
          : h('tr', {}, h('td', { colspan: headers.length, class: 'none' }, 'None yet')),
      ),
    );
  }

  /** A two-column table of the non-zero entries of `counts`, largest first. */
  function countTable(caption, what, counts, unit = 'calls') {
    const rows = Object.entries(counts || {})
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => [k, String(n)]);
    return table(caption, [what, unit], rows, { class: 'counts' });
  }

  /** Asks before doing something that cannot be taken back; resolves to true or false. */
  function confirmed(title, text, yes) {
    const dialog = document.getElementById('confirm');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = text;
    document.getElementById('confirm-ok').textContent = yes;
    return new Promise((resolve) => {
      const done = () => {
        dialog.removeEventListener('close', done);
        resolve(dialog.returnValue === 'ok');
      };
      dialog.returnValue = '';
      dialog.addEventListener('close', done);
      dialog.showModal();
    });
  }
  for (const button of document.querySelectorAll('#confirm button')) {
    button.addEventListener('click', () => document.getElementById('confirm').close(button.value));
  }

  /**
   * Runs `tick` now and then every `ms` (from the start of one run to the next, so a slow
   * answer does not slow the rate), never two at once, until the view closes, the tick
   * answers `false` (nothing more will change), or the API answers 404 (shown in place of the
   * view). A hidden tab skips its ticks. Unless `counted` is false, the view's element counts
   * successful ticks in `data-updates`.
   */
  function every(ms, tick, signal, counted = true) {
    let timer = null;
    const run = async () => {
      if (signal.aborted) return;
      const started = performance.now();
      let again = true;
      if (!document.hidden) {
        try {
          again = (await tick()) !== false;
          if (signal.aborted) return;
          if (counted) view.dataset.updates = String(Number(view.dataset.updates || 0) + 1);
        } catch (e) {
          if (signal.aborted) return;
          if (e instanceof Problem && e.status === 404) {
            view.replaceChildren(h('h1', {}, 'Not found'), failure(e), h('p', {}, h('a', { href: '#/campaigns' }, 'Campaigns')));
            return;
          }
          say(`Could not refresh: ${e.message}`, 'error');
        }
      }
      if (again && !signal.aborted) timer = setTimeout(run, Math.max(0, ms - (performance.now() - started)));
    };
    signal.addEventListener('abort', () => clearTimeout(timer));
    run();
  }

  // ---------------------------------------------------------------- campaigns

  async function campaignsView(params, signal) {
    const t = await types();
    if (signal.aborted) return;
    const chosen = params.get('status') || '';
    const statusSelect = h(
      'select',
      { id: 'filter-status', name: 'status' },
      h('option', { value: '' }, 'Any status'),
      t.campaign_status.map((s) => h('option', { value: s, selected: s === chosen }, s)),
    );
    const nameInput = h('input', {
      id: 'filter-name',
      name: 'name',
      type: 'search',
      value: params.get('name') || '',
      autocomplete: 'off',
    });
    const body = h('div', { id: 'campaign-list' });
    const more = h('button', { type: 'button', hidden: true }, 'Show more');
    // A filter changes the address in place (no new view, so focus stays on the control)
    // and refreshes the list at once.
    let refreshNow = () => {};
    const apply = () => {
      const q = new URLSearchParams();
      if (statusSelect.value) q.set('status', statusSelect.value);
      if (nameInput.value) q.set('name', nameInput.value);
      history.replaceState(null, '', `/#/campaigns${q.toString() ? `?${q}` : ''}`);
      pages = 1;
      refreshNow();
    };
    statusSelect.addEventListener('change', apply);
    nameInput.addEventListener('input', apply);
    view.replaceChildren(
      h('h1', {}, 'Campaigns'),
      h(
        'div',
        { class: 'filters', role: 'search' },
        h('label', { for: 'filter-status' }, 'Status'),
        statusSelect,
        h('label', { for: 'filter-name' }, 'Name contains'),
        nameInput,
      ),
      body,
      more,
    );

    // Dial rates come from the change in `placed` between two refreshes.
    const last = new Map();
    let pages = 1;
    more.addEventListener('click', () => {
      pages += 1;
      refreshNow();
    });
    // Each refresh is numbered: an answer older than the last one drawn is dropped.
    let asked = 0;
    let drawn = 0;
    const refresh = async () => {
      const mine = ++asked;
      const wanted = statusSelect.value;
      const items = [];
      let cursor = null;
      for (let page = 0; page < pages; page += 1) {
        const q = new URLSearchParams({ limit: '25' });
        if (wanted) q.set('status', wanted);
        if (cursor) q.set('cursor', cursor);
        const answer = await api('GET', `/campaigns?${q}`, { signal });
        items.push(...answer.campaigns);
        cursor = answer.next_cursor;
        if (!cursor) break;
      }
      if (mine < drawn || signal.aborted) return;
      drawn = mine;
      more.hidden = !cursor;
      {
        const needle = nameInput.value.toLowerCase();
        const now = performance.now();
        const rows = items
          .filter((c) => !needle || String(c.name).toLowerCase().includes(needle))
          .map((c) => {
            const seen = last.get(c.campaign_id);
            const placed = c.counts ? c.counts.placed : 0;
            const dps = seen && now > seen.at ? ((placed - seen.placed) * 1000) / (now - seen.at) : 0;
            last.set(c.campaign_id, { placed, at: now });
            return [
              h('a', { href: `#/campaigns/${seg(c.campaign_id)}` }, c.name),
              status(c.status),
              h(
                'span',
                { class: 'progress' },
                h('progress', { max: 1, value: c.progress, 'aria-label': `${c.name} progress` }),
                ` ${percent(c.progress)} of ${c.contacts}`,
              ),
              String(c.counts ? c.counts.live : 0),
              c.status === 'ACTIVE' ? `${rate(Math.max(dps, 0))}/s` : '–',
              when(c.created_at),
            ];
          });
        refill(
          body,
          table(
            `Newest first; refreshed every 2 seconds${needle ? '; the name filter searches the pages shown' : ''}`,
            ['Name', 'Status', 'Progress', 'Live calls', 'Dial rate', 'Started'],
            rows,
            { id: 'campaigns' },
          ),
        );
      }
    };
    refreshNow = () => refresh().catch((e) => say(e.message, 'error'));
    every(2000, refresh, signal);
  }

  // ---------------------------------------------------------------- one campaign

  /** The last five minutes of a number per second, for the chart. */
  const WINDOW = 300;

  function chart(container) {
    const data = [[], [], []];
    const plot = new uPlot(
      {
        width: Math.max(container.clientWidth, 320),
        height: 240,
        scales: { x: { time: true }, live: { auto: true } },
        series: [
          {},
          { label: 'Dials per second', stroke: '#0b57d0', width: 2, fill: 'rgba(11,87,208,0.08)' },
          { label: 'Live calls', stroke: '#b3261e', width: 2, scale: 'live' },
        ],
        axes: [
          {},
          { label: 'dials/s', stroke: '#0b57d0' },
          { label: 'live calls', side: 1, scale: 'live', stroke: '#b3261e', grid: { show: false } },
        ],
      },
      data,
      container,
    );
    const resize = () => plot.setSize({ width: Math.max(container.clientWidth, 320), height: 240 });
    window.addEventListener('resize', resize);
    return {
      add(t, dps, live) {
        data[0].push(t);
        data[1].push(dps);
        data[2].push(live);
        // Five minutes of points by time, however often the ticks came.
        while (data[0].length > 1 && data[0][0] < t - WINDOW) for (const s of data) s.shift();
        plot.setData(data);
      },
      destroy() {
        window.removeEventListener('resize', resize);
        plot.destroy();
      },
    };
  }

  async function campaignView(id, signal) {
    const t = await types();
    if (signal.aborted) return;
    const heading = h('h1', {}, 'Campaign');
    const meta = h('p', { class: 'meta' });
    const actions = h('div', { class: 'actions' });
    const tiles = h('dl', { class: 'tiles' });
    const chartBox = h('div', {
      class: 'chart',
      role: 'img',
      'aria-label': 'Dials per second and live calls over the last five minutes',
    });
    const tables = h('div', { class: 'grid' });
    const callsBox = h('div', { id: 'calls' });
    const callStatus = h(
      'select',
      { id: 'calls-status' },
      h('option', { value: '' }, 'Any status'),
      t.call_status.map((s) => h('option', { value: s }, s)),
    );
    const updated = h('p', { class: 'updated', id: 'updated' });
    view.replaceChildren(
      h('p', {}, h('a', { href: '#/campaigns' }, '← Campaigns')),
      heading,
      meta,
      actions,
      tiles,
      h('h2', {}, 'Dialing'),
      chartBox,
      updated,
      tables,
      h('h2', {}, 'Calls'),
      h('div', { class: 'filters' }, h('label', { for: 'calls-status' }, 'Status'), callStatus),
      callsBox,
    );
    const plot = chart(chartBox);
    signal.addEventListener('abort', () => plot.destroy());

    const control = (verb, label, ask) =>
      h(
        'button',
        {
          type: 'button',
          id: `campaign-${verb}`,
          class: verb === 'cancel' ? 'danger' : '',
          // Enabled by the first answer, for the status it gives.
          disabled: true,
          onclick: async () => {
            if (ask && !(await confirmed(...ask))) return;
            try {
              await api('POST', `/campaigns/${seg(id)}/${verb}`, {
                headers: { 'Idempotency-Key': crypto.randomUUID() },
              });
              say(`${label}: done.`);
            } catch (e) {
              say(`${label}: ${e.message}`, 'error');
            }
          },
        },
        label,
      );
    const pause = control('pause', 'Pause', [
      'Pause this campaign?',
      'No new call is dialed until you resume it. Calls in progress go on to their end.',
      'Pause',
    ]);
    const resume = control('resume', 'Resume', null);
    const cancel = control('cancel', 'Cancel campaign', [
      'Cancel this campaign?',
      'Every call not yet dialed is cancelled, and the campaign cannot be resumed. Calls in progress go on to their end.',
      'Cancel the campaign',
    ]);
    actions.replaceChildren(pause, resume, cancel);

    let previous = null;
    let lastStatus = null;
    // A little more often than once a second, so that timer slack never stretches a gap
    // past a second.
    every(
      950,
      async () => {
        const c = await api('GET', `/campaigns/${seg(id)}`, { signal });
        const now = performance.now();
        const counts = c.counts;
        const dps =
          previous && now > previous.at
            ? Math.max(0, ((counts.placed - previous.placed) * 1000) / (now - previous.at))
            : 0;
        previous = { placed: counts.placed, at: now };
        plot.add(Date.now() / 1000, dps, counts.live);
        heading.replaceChildren(c.name, ' ', status(c.status));
        meta.textContent = `${c.campaign_id} · from ${c.from || (c.caller_pool && c.caller_pool.pool) || ''} · started ${when(c.created_at)} · ${c.spec.pacing.calls_per_second} calls/s, at most ${c.spec.pacing.max_concurrent} at once · ${c.spec.purpose}`;
        pause.disabled = c.status !== 'ACTIVE';
        resume.disabled = c.status !== 'PAUSED';
        cancel.disabled = c.status === 'CANCELLED' || c.status === 'COMPLETED';
        const answered = counts.placed ? counts.answered / counts.placed : 0;
        const tile = (label, value, key) => [h('dt', {}, label), h('dd', { id: `tile-${key}` }, value)];
        refill(
          tiles,
          ...tile('Contacts', String(c.contacts), 'contacts'),
          ...tile('Done', percent(c.progress), 'done'),
          ...tile('Live calls', String(counts.live), 'live'),
          ...tile('Dialing now', `${rate(dps)}/s`, 'rate'),
          ...tile('Attempts placed', String(counts.placed), 'placed'),
          ...tile('Answered', `${counts.answered} (${percent(answered)})`, 'answered'),
        );
        refill(
          tables,
          countTable('Calls by status', 'status', counts.by_status),
          countTable('Attempts ended', 'outcome', counts.outcomes, 'attempts'),
          countTable('Script outcomes', 'outcome', counts.script_outcomes),
          countTable('Who answered', 'verdict', counts.verdicts),
          countTable('Not dialed (skipped)', 'reason', counts.skipped),
          countTable('Waiting (held)', 'reason', counts.held),
        );
        if (lastStatus !== null && lastStatus !== c.status) refreshCalls().catch(() => {});
        lastStatus = c.status;
        updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      },
      signal,
    );

    let callsTick = 0;
    // Each refresh is numbered: an answer older than the last one drawn is dropped.
    let asked = 0;
    let drawn = 0;
    const refreshCalls = async () => {
      const mine = ++asked;
      const wanted = callStatus.value;
      const q = new URLSearchParams({ limit: '50' });
      if (wanted) q.set('status', wanted);
      const page = await api('GET', `/campaigns/${seg(id)}/calls?${q}`, { signal });
      if (mine < drawn || signal.aborted) return;
      drawn = mine;
      refill(
        callsBox,
        table(
          `The first ${page.calls.length} calls${wanted ? ` in ${wanted}` : ''}; refreshed every 5 seconds`,
          ['Call', 'Number', 'Status', 'Attempt', 'Outcome', 'Script', 'Reason', 'Updated'],
          page.calls.map((x) => [
            h('a', { href: `#/calls/${seg(x.call_id)}` }, x.call_id.slice(0, 13)),
            mask(x.to),
            status(x.status),
            String(x.attempt),
            x.outcome || '',
            x.script_outcome || '',
            x.reason || '',
            when(x.updated_at),
          ]),
          { id: 'call-list' },
        ),
      );
    };
    callStatus.addEventListener('change', () => refreshCalls().catch((e) => say(e.message, 'error')));
    every(
      1000,
      async () => {
        callsTick += 1;
        if (callsTick % 5 === 1) await refreshCalls();
      },
      signal,
      false,
    );
  }

  // ---------------------------------------------------------------- one call

  const TERMINAL = new Set(['COMPLETED', 'BUSY', 'NO_ANSWER', 'DECLINED', 'INVALID_NUMBER', 'FAILED', 'CANCELLED', 'LOST']);

  function finalReason(c) {
    if (!TERMINAL.has(c.status)) return `In progress (${c.status})`;
    const parts = [c.status];
    if (c.outcome && c.outcome !== c.status) parts.push(`last attempt ${c.outcome}`);
    if (c.sip_code && c.sip_code !== '0') parts.push(`SIP ${c.sip_code}`);
    if (c.script_outcome) parts.push(`script: ${c.script_outcome}`);
    if (c.reason) parts.push(`reason: ${c.reason}`);
    if (c.last_error) parts.push(`error: ${c.last_error}`);
    return parts.join(' · ');
  }

  async function callView(id, signal) {
    const box = h('div');
    view.replaceChildren(box);
    const hangup = h(
      'button',
      {
        type: 'button',
        id: 'call-hangup',
        class: 'danger',
        onclick: async () => {
          if (!(await confirmed('Hang up this call?', 'The call is ended now.', 'Hang up'))) return;
          try {
            await api('POST', `/calls/${seg(id)}/hangup`, { headers: { 'Idempotency-Key': crypto.randomUUID() } });
            say('Hang-up requested.');
          } catch (e) {
            say(e.message, 'error');
          }
        },
      },
      'Hang up',
    );
    every(
      2000,
      async () => {
        const c = await api('GET', `/calls/${seg(id)}`, { signal });
        const history = c.history || [];
        const first = history.length ? new Date(history[0].at).getTime() : 0;
        const attempts = new Map();
        for (const e of history) {
          const a = attempts.get(e.attempt) || { first: e.at, last: e.at, status: e.status, events: 0 };
          a.last = e.at;
          a.status = e.status;
          a.events += 1;
          attempts.set(e.attempt, a);
        }
        const fields = [
          ['Number', c.to],
          ['From', c.from],
          ['Status', status(c.status)],
          ['Final', finalReason(c)],
          ['Attempt', String(c.attempt)],
          ['Answered', c.answered ? 'yes' : 'no'],
          ['Digits pressed', (c.digits || []).join(', ') || 'none'],
          ['Who answered', c.verdict || ''],
          ['Reference', c.ref || ''],
          ['Time zone', c.tz || ''],
          ['Variables', Object.entries(c.vars || {}).map(([k, v]) => `${k}=${v}`).join(', ')],
          ['Created', when(c.created_at)],
          ['Answered at', when(c.answered_at)],
          ['Ended', when(c.ended_at)],
          ['Transaction', c.transaction_id || ''],
        ].filter(([, v]) => v !== '');
        refill(
          box,
          h('p', {}, h('a', { href: `#/campaigns/${seg(c.campaign_id)}` }, '← Campaign')),
          h('h1', {}, 'Call ', h('code', {}, c.call_id)),
          ...(TERMINAL.has(c.status) ? [] : [hangup]),
          h('dl', { class: 'record', id: 'call-record' }, fields.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
          table(
            'Attempts',
            ['Attempt', 'First event', 'Last event', 'Status after', 'Events'],
            [...attempts.entries()].map(([n, a]) => [String(n), clock(a.first), clock(a.last), status(a.status), String(a.events)]),
            { id: 'attempts' },
          ),
          table(
            'Event timeline: each event the PSTN audio service sent, and what outdial answered',
            ['Time', '+ms', 'Attempt', 'Seq', 'Event', 'Status after', 'Answered with', 'Detail'],
            history.map((e) => [
              clock(e.at),
              String(new Date(e.at).getTime() - first),
              String(e.attempt),
              String(e.seq),
              h('code', {}, e.event_type),
              status(e.status),
              (e.actions || []).join(', ') || '—',
              [
                e.digits && e.digits.length ? `pressed ${e.digits.join(', ')}` : '',
                e.detail || '',
                e.sip_code && e.sip_code !== '0' ? `SIP ${e.sip_code}` : '',
                e.last_error ? `error: ${e.last_error}` : '',
              ]
                .filter(Boolean)
                .join(' · '),
            ]),
            { id: 'timeline' },
          ),
        );
        // An ended call changes no more: the page stops asking.
        return !TERMINAL.has(c.status);
      },
      signal,
    );
  }

  // ---------------------------------------------------------------- start a campaign

  const SAMPLE_SPEC = {
    name: 'Appointment reminders',
    from: '+15555550199',
    pacing: { calls_per_second: 5, max_concurrent: 20 },
    retry: { max_attempts: 2 },
    script: {
      caller_name: 'Riverside Clinic',
      start: 'greet',
      steps: {
        greet: { say: 'Hello {{name}}, this is Riverside Clinic with a reminder of your appointment on {{date}}.', next: 'menu' },
        menu: {
          gather: { say: 'Press 1 to confirm or 2 to cancel.', min_digits: 1, max_digits: 1, timeout_ms: 5000, repeat: 2 },
          branches: { 1: 'confirm', 2: 'decline' },
          no_input: 'goodbye',
        },
        confirm: { say: 'Thank you. See you then.', outcome: 'confirmed' },
        decline: { say: 'Your appointment is cancelled.', outcome: 'declined' },
        goodbye: { say: 'We will call again. Goodbye.', outcome: 'no_input' },
      },
    },
  };

  /** JSON with every character past ASCII escaped, so that it fits in an HTTP header. */
  function asciiJson(value) {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }

  /**
   * Splits a CSV into parts of whole lines, each starting with the header, of at most `rows`
   * data lines and `bytes` characters, as `outdial campaign start` does; each part with the
   * file line its first data line is on.
   */
  function parts(csv, rows, bytes) {
    const lines = csv.replace(/^\uFEFF/, '').split(/\r?\n/);
    if (lines.at(-1) === '') lines.pop();
    const header = lines.shift() || '';
    const out = [];
    let current = [];
    let size = 0;
    let first = 2;
    lines.forEach((line, i) => {
      if (current.length === rows || (current.length && size + line.length + 1 > bytes)) {
        out.push({ text: `${[header, ...current].join('\n')}\n`, first });
        current = [];
        size = header.length + 1;
      }
      if (!current.length) {
        first = i + 2;
        size = header.length + 1;
      }
      current.push(line);
      size += line.length + 1;
    });
    if (current.length) out.push({ text: `${[header, ...current].join('\n')}\n`, first });
    return out;
  }

  function startView() {
    const specText = h('textarea', { id: 'spec', rows: 18, spellcheck: 'false' }, JSON.stringify(SAMPLE_SPEC, null, 2));
    const csvText = h('textarea', { id: 'csv', rows: 8, spellcheck: 'false', placeholder: 'to,name,date\n+15555550100,Ada,Tuesday at 10' });
    const summary = h('p', { id: 'preview-summary', 'aria-live': 'polite' });
    const result = h('div', { id: 'preview' });
    const check = h('button', { type: 'button', id: 'check' }, 'Check');
    const send = h('button', { type: 'button', id: 'send', disabled: true }, 'Start the campaign');

    // What was checked is what is sent: a change after the check asks for a new one, and an
    // answer to an older check is dropped. An upload that failed part-way resumes from the
    // part that failed, with the same idempotency keys, so nothing is created twice.
    let generation = 0;
    let checked = null;
    let upload = null;
    const changed = () => {
      generation += 1;
      checked = null;
      upload = null;
      send.disabled = true;
      send.textContent = 'Start the campaign';
    };
    const readInto = (target) => async (event) => {
      const file = event.target.files[0];
      if (file) target.value = await file.text();
      changed();
      summary.textContent = '';
      result.replaceChildren();
    };
    const specFile = h('input', { id: 'spec-file', type: 'file', accept: '.json,application/json', onchange: readInto(specText) });
    const csvFile = h('input', { id: 'csv-file', type: 'file', accept: '.csv,text/csv', onchange: readInto(csvText) });
    for (const input of [specText, csvText]) input.addEventListener('input', changed);

    check.addEventListener('click', async () => {
      changed();
      const mine = generation;
      summary.textContent = 'Checking…';
      result.replaceChildren();
      let spec;
      try {
        spec = JSON.parse(specText.value);
      } catch (e) {
        summary.textContent = '';
        result.replaceChildren(failure(new Error(`The spec is not JSON: ${e.message}`)));
        return;
      }
      if (spec && spec.spec) spec = spec.spec;
      const csv = csvText.value;
      try {
        const p = await read(
          await fetch('/console/preview', {
            method: 'POST',
            headers: guarded({ 'Content-Type': 'application/json' }),
            body: JSON.stringify({ spec, csv }),
          }),
        );
        if (mine !== generation) return;
        const faults = [...p.spec_errors, ...p.list_errors];
        if (faults.length) {
          summary.textContent = 'Not yet: fix these first.';
          result.replaceChildren(failure(new Problem(422, { title: 'Not yet', detail: 'fix these first', errors: faults })));
          return;
        }
        summary.textContent = `${p.rows_total} rows: ${p.accepted} will be called, ${p.rejected} rejected. The do-not-call list and the account's allowed countries are checked when it is sent.`;
        result.replaceChildren(
          table(
            p.rows_truncated ? `The first ${p.rows.length} rows, rejected first` : 'Every row, rejected first',
            ['Line', 'Number', 'Result', 'Field', 'Reason'],
            p.rows.map((r) => [String(r.line), mask(r.to), r.ok ? 'will be called' : h('strong', {}, 'rejected'), r.field || '', r.reason || '']),
            { id: 'preview-rows' },
          ),
        );
        checked = { spec, csv };
        send.disabled = p.accepted === 0;
      } catch (e) {
        if (mine !== generation) return;
        summary.textContent = '';
        result.replaceChildren(failure(e));
      }
    });

    send.addEventListener('click', async () => {
      if (!checked) return;
      send.disabled = true;
      if (!upload) {
        upload = {
          key: crypto.randomUUID(),
          parts: parts(checked.csv, 50000, 4500000),
          next: 0,
          campaign: null,
          accepted: 0,
          rejected: [],
          rejectedCount: 0,
        };
      }
      const u = upload;
      try {
        while (u.next < u.parts.length) {
          const part = u.parts[u.next];
          const answer = await api('POST', u.campaign ? `/campaigns/${seg(u.campaign)}/contacts` : '/campaigns', {
            body: part.text,
            headers: { 'Content-Type': 'text/csv', 'Idempotency-Key': `${u.key}-${u.next}`, 'X-Outdial-Spec': asciiJson(checked.spec) },
          });
          u.campaign = u.campaign || answer.campaign_id;
          u.accepted += answer.accepted;
          u.rejectedCount += answer.rejected_count;
          // Rejected rows' lines are the file's, not the part's (its line 2 is `first`).
          for (const r of answer.rejected || []) u.rejected.push({ ...r, line: r.line + part.first - 2 });
          u.next += 1;
        }
        say(`Started: ${u.accepted} contacts accepted, ${u.rejectedCount} rejected.`);
        location.hash = `#/campaigns/${seg(u.campaign)}`;
      } catch (e) {
        const sent = u.campaign
          ? h('p', {}, 'Campaign ', h('a', { href: `#/campaigns/${seg(u.campaign)}` }, u.campaign), ` was created: ${u.next} of ${u.parts.length} parts sent. Press the button again to send the rest (nothing is sent twice).`)
          : h('p', {}, 'Nothing was created. Press the button again to retry with the same idempotency key.');
        result.replaceChildren(failure(e), sent);
        send.textContent = u.campaign ? 'Send the rest' : 'Try again';
        send.disabled = false;
      }
    });

    view.replaceChildren(
      h('h1', {}, 'Start a campaign'),
      h(
        'div',
        { class: 'two' },
        h(
          'section',
          {},
          h('h2', {}, 'Spec'),
          h('label', { for: 'spec-file' }, 'Read a spec file'),
          specFile,
          h('label', { for: 'spec' }, 'Or edit it here (JSON, as POST /campaigns takes it)'),
          specText,
        ),
        h(
          'section',
          {},
          h('h2', {}, 'Contacts'),
          h('label', { for: 'csv-file' }, 'Read a CSV file'),
          csvFile,
          h('label', { for: 'csv' }, 'Or paste it here (a header row with a to, phone or number column)'),
          csvText,
        ),
      ),
      h('div', { class: 'actions' }, check, send),
      summary,
      result,
    );
  }

  // ---------------------------------------------------------------- do-not-call

  function dncView() {
    const number = h('input', { id: 'dnc-number', type: 'tel', autocomplete: 'off', placeholder: '+15555550100', required: true });
    const out = h('div', { id: 'dnc-result', 'aria-live': 'polite' });
    const path = () => `/dnc/${encodeURIComponent(number.value.trim())}`;
    const act = (label, fn) => h('button', { type: 'button', id: `dnc-${label.toLowerCase()}`, onclick: fn }, label);
    const show = (node) => out.replaceChildren(node);
    const lookup = async () => {
      try {
        const e = await api('GET', path());
        show(h('p', { class: 'listed' }, `${e.e164} is on the list: added ${when(e.added_at)}${e.source ? ` (${e.source})` : ''}.`));
      } catch (e) {
        if (e.status === 404) show(h('p', { class: 'clear' }, `${number.value.trim()} is not on the list.`));
        else show(failure(e));
      }
    };
    view.replaceChildren(
      h('h1', {}, 'Do-not-call list'),
      h('p', {}, 'Numbers on the list are never dialed: a campaign skips them, and a contact list rejects them.'),
      h('div', { class: 'filters' }, h('label', { for: 'dnc-number' }, 'Phone number (E.164)'), number),
      h(
        'div',
        { class: 'actions' },
        act('Look up', lookup),
        act('Add', async () => {
          try {
            await api('PUT', path(), { headers: { 'Content-Type': 'application/json' }, body: '{}' });
            await lookup();
          } catch (e) {
            show(failure(e));
          }
        }),
        act('Remove', async () => {
          if (!(await confirmed('Remove this number?', `${number.value.trim()} may be called again by new campaigns.`, 'Remove'))) return;
          try {
            await api('DELETE', path());
            await lookup();
          } catch (e) {
            show(failure(e));
          }
        }),
      ),
      out,
    );
  }

  // ---------------------------------------------------------------- routing

  let current = null;
  async function route() {
    if (current) current.abort();
    current = new AbortController();
    const signal = current.signal;
    const [path, query] = (location.hash.replace(/^#/, '') || '/campaigns').split('?');
    const params = new URLSearchParams(query || '');
    const parts2 = path.split('/').filter(Boolean);
    delete view.dataset.updates;
    for (const a of document.querySelectorAll('nav a')) {
      if (a.dataset.nav === parts2[0]) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    try {
      const id = parts2[1] ? decodeURIComponent(parts2[1]) : '';
      if (id && !ID.test(id)) {
        throw new Error(`${id} is not a campaign or call id`);
      } else if (parts2[0] === 'campaigns' && id) {
        document.title = 'Campaign · outdial';
        await campaignView(id, signal);
      } else if (parts2[0] === 'calls' && id) {
        document.title = 'Call · outdial';
        await callView(id, signal);
      } else if (parts2[0] === 'start') {
        document.title = 'Start a campaign · outdial';
        startView();
      } else if (parts2[0] === 'dnc') {
        document.title = 'Do-not-call list · outdial';
        dncView();
      } else {
        document.title = 'Campaigns · outdial';
        await campaignsView(params, signal);
      }
    } catch (e) {
      if (!signal.aborted) view.replaceChildren(failure(e));
    }
    if (!signal.aborted) view.focus({ preventScroll: true });
  }

  window.addEventListener('hashchange', route);
  // The skip link moves focus; it is not a route.
  document.querySelector('.skip').addEventListener('click', (event) => {
    event.preventDefault();
    view.focus();
  });
  if (!token) {
    view.replaceChildren(
      h('h1', {}, 'Open the console with its address'),
      h('p', {}, 'Open the address `outdial console` (or `outdial dev`) printed, with its ?token=…: the console answers only requests that carry it.'),
    );
    return;
  }
  fetch('/console/info', { headers: guarded() })
    .then(read)
    .then((info) => {
      document.getElementById('api').textContent = `API: ${info.api}`;
    })
    .catch(() => {});
  route();
})();
