// The campaign page left open on a running campaign: does it update at least once a second,
// and does the browser's memory stay flat? Starts `outdial dev` (OUTDIAL_BIN, the release build
// under `just bench`), a campaign long enough to outlast the run, and opens its page in
// Debian's Chromium. After `--warmup` seconds (by default the chart's whole five-minute window,
// so that the chart holds all the points it will ever hold) it samples for `--seconds`, every
// 10 s: the page's update count, the JavaScript heap after a forced garbage collection, and
// the DOM's node count. Prints one JSON line, and exits 1 when a target is missed (`ok`):
//
//   node tests/browser/soak.mjs [--seconds 300] [--warmup 300] [--cps 5]
import { openBrowser, startStack } from './harness.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const seconds = arg('seconds', 300);
const warmup = arg('warmup', 300);
const cps = arg('cps', 5);
// Enough contacts to dial for the whole run and a minute more.
const contacts = Math.ceil(cps * (warmup + seconds + 60));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
};

const stack = await startStack({ args: ['--speed', '0.05'] });
const { browser, page } = await openBrowser();
try {
  const rows = ['to,name'];
  for (let i = 0; i < contacts; i += 1) rows.push(`+1555${String(2000000 + i).padStart(7, '0')},N${i}`);
  const spec = {
    name: 'Soak',
    from: '+15555550199',
    pacing: { calls_per_second: cps, max_concurrent: 50 },
    script: { caller_name: 'Riverside Clinic', start: 'hi', steps: { hi: { say: 'Hello {{name}}, this is Riverside Clinic with a reminder.', outcome: 'told' } } },
  };
  await page.goto(stack.console);
  const started = await page.evaluate(
    async ({ csv, spec }) => {
      const r = await fetch('/api/campaigns', {
        method: 'POST',
        headers: { 'X-Outdial-Console': sessionStorage.getItem('outdial-console-token'), 'Content-Type': 'text/csv', 'Idempotency-Key': crypto.randomUUID(), 'X-Outdial-Spec': JSON.stringify(spec) },
        body: csv,
      });
      return r.json();
    },
    { csv: `${rows.join('\n')}\n`, spec },
  );
  if (!started.campaign_id) throw new Error(`the campaign was not started: ${JSON.stringify(started)}`);
  await page.goto(`${new URL(stack.console).origin}/#/campaigns/${started.campaign_id}`);
  await page.locator('#tile-live').waitFor();
  await new Promise((ok) => setTimeout(ok, warmup * 1000));
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const sample = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { metrics } = await cdp.send('Performance.getMetrics');
    const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
    const updates = Number(await page.locator('#view').getAttribute('data-updates'));
    return { t: performance.now() / 1000, updates, heap: m.JSHeapUsedSize, nodes: m.Nodes, listeners: m.JSEventListeners };
  };
  const samples = [await sample()];
  const end = samples[0].t + seconds;
  while (performance.now() / 1000 < end) {
    await new Promise((ok) => setTimeout(ok, 10_000));
    samples.push(await sample());
  }
  const first = samples[0];
  const last = samples.at(-1);
  const minute = (from, to) => samples.filter((s) => s.t >= from && s.t <= to);
  const early = minute(first.t, first.t + 60);
  const late = minute(last.t - 60, last.t);
  const mib = (b) => Math.round((b / 1048576) * 1000) / 1000;
  const status = await page.locator('h1 .badge').textContent();
  const perSecond = (last.updates - first.updates) / (last.t - first.t);
  const heapFirst = median(early.map((s) => s.heap));
  const heapLast = median(late.map((s) => s.heap));
  // The targets: an update at least once a second, and no
  // growth from the first minute to the last beyond noise (5 % of the heap, 5 % of the DOM).
  const ok = perSecond >= 1 && heapLast <= heapFirst * 1.05 && last.nodes <= first.nodes * 1.05 && status === 'ACTIVE';
  process.exitCode = ok ? 0 : 1;
  console.log(
    JSON.stringify({
      ok,
      seconds: Math.round(last.t - first.t),
      warmup_seconds: warmup,
      target_cps: cps,
      contacts,
      campaign_status_at_end: status,
      updates: last.updates - first.updates,
      updates_per_s: Math.round(perSecond * 1000) / 1000,
      heap_mib_start: mib(first.heap),
      heap_mib_end: mib(last.heap),
      heap_mib_median_first_minute: mib(heapFirst),
      heap_mib_median_last_minute: mib(heapLast),
      heap_mib_max: mib(Math.max(...samples.map((s) => s.heap))),
      dom_nodes_start: first.nodes,
      dom_nodes_end: last.nodes,
      event_listeners_start: first.listeners,
      event_listeners_end: last.listeners,
      samples: samples.length,
      heap_kib_every_10_s: samples.map((x) => Math.round(x.heap / 1024)),
    }),
  );
} finally {
  await browser.close();
  await stack.stop();
}
