// What the console's browser suite and its soak benchmark share: the local stack started
// with `outdial dev` in a folder of its own, and Debian's Chromium driven by Playwright.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const root = resolve(import.meta.dirname, '..', '..');

/** The `outdial` binary under test: OUTDIAL_BIN, else the debug build of this checkout. */
export function outdialBin() {
  const bin = process.env.OUTDIAL_BIN || join(root, 'target', 'debug', 'outdial');
  if (!existsSync(bin)) {
    throw new Error(`no outdial binary at ${bin}: build it with \`cargo build -p outdial-cli\` or set OUTDIAL_BIN`);
  }
  return bin;
}

/** The browser: CHROMIUM, else Debian's. */
export function chromiumPath() {
  const path = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(path)) {
    throw new Error(`no Chromium at ${path}: install Debian's package (apt-get install chromium) or set CHROMIUM`);
  }
  return path;
}

/**
 * Starts `outdial dev` on free ports in a new folder, with `callees` (numbers to simulator
 * personas) and any further arguments; resolves once it has printed its console's address.
 */
export async function startStack({ callees = {}, args = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'outdial-console-'));
  const calleesFile = join(dir, 'callees.json');
  writeFileSync(calleesFile, JSON.stringify(callees));
  const child = spawn(
    outdialBin(),
    ['dev', '--port', '0', '--console-port', '0', '--schedule-every', '2', '--callees', calleesFile, ...args],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } },
  );
  let log = '';
  child.stderr.on('data', (d) => {
    log = (log + d).slice(-20000);
  });
  const endpoints = await new Promise((ok, fail) => {
    let out = '';
    const found = {};
    const timer = setTimeout(() => fail(new Error(`outdial dev printed no console address in 120 s:\n${log}`)), 120_000);
    child.stdout.on('data', (d) => {
      out += d;
      for (const line of out.split('\n')) {
        const m = /^(api|console): (\S+)/.exec(line);
        if (m) found[m[1]] = m[2];
      }
      if (found.console && found.api) {
        clearTimeout(timer);
        ok(found);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`outdial dev exited (${code}) before it was ready:\n${log}`));
    });
  });
  child.removeAllListeners('exit');
  return {
    dir,
    console: endpoints.console,
    api: endpoints.api,
    log: () => log,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((ok) => child.once('exit', ok));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Headless Chromium with a page of the given size. */
export async function openBrowser({ width = 1280, height = 900 } = {}) {
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  return { browser, context, page };
}
