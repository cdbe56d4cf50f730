// Headless Chromium (Debian's package, driven by playwright-core) for the tests that use the
// appliance's pages as a person would: fields found by their label, buttons by their accessible
// name, a screenshot and the page's HTML under tests/.state/screenshots when something fails.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { stateDir } from './config.mjs';

/** The browser binary (start/lib/chromium.sh installs it; CHROMIUM_PATH overrides). */
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/**
 * The flags this machine needs: no sandbox (root), no GPU, and nothing that talks to the
 * outside world on its own (the network is closed; those connections only fail and slow us down).
 */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why the browser tests cannot run here, or false. */
export function browserSkipReason() {
  if (fs.existsSync(chromiumPath)) return false;
  const why = `no browser at ${chromiumPath} (start/test installs Debian's chromium)`;
  if (process.env.CI) throw new Error(why);
  return why;
}

/**
 * A browser with a fresh profile (its own --user-data-dir, removed at close): one browser
 * session, one cookie jar. `close()` ends it.
 */
export class Browser {
  /** `options`: `javaScriptEnabled` (default true). */
  static async launch(label = 'browser', { javaScriptEnabled = true } = {}) {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'appliance-e2e-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60000,
      viewport: { width: 412, height: 915 }, // a phone: the pages must work there
      javaScriptEnabled,
    });
    context.setDefaultTimeout(20000);
    context.setDefaultNavigationTimeout(30000);
    // Nothing under test is served over https, and the network is closed: the fake https hosts of
    // registered clients (logos, client_uri) answer 404 at once instead of waiting for DNS.
    // Routes added later (a test catching a web client's redirect) take precedence.
    await context.route(/^https:\/\//, (route) => route.fulfill({ status: 404, body: '' }));
    return new Browser(label, context, profile);
  }

  constructor(label, context, profile) {
    this.label = label;
    this.context = context;
    this.profile = profile;
    /** Every main-frame navigation and every answered document request: for failure reports. */
    this.trail = [];
    context.on('response', (res) => {
      const req = res.request();
      if (req.resourceType() !== 'document') return;
      this.trail.push(`${req.method()} ${req.url()} → ${res.status()}${res.headers().location ? ` (location: ${res.headers().location})` : ''}`);
    });
    context.on('requestfailed', (req) => {
      if (req.resourceType() === 'document') this.trail.push(`${req.method()} ${req.url()} → failed: ${req.failure()?.errorText}`);
    });
  }

  /** The one page of this browser (opened on first use). */
  async page() {
    if (!this.current || this.current.isClosed()) {
      this.current = this.context.pages()[0] ?? (await this.context.newPage());
    }
    return this.current;
  }

  /**
   * Writes a screenshot, the page's HTML and the navigation trail under
   * tests/.state/screenshots; returns the PNG's path. Never throws.
   */
  async capture(reason) {
    try {
      const dir = path.join(stateDir, 'screenshots');
      fs.mkdirSync(dir, { recursive: true });
      const slug = `${this.label}-${reason}`.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 100);
      const base = path.join(dir, `${slug}-${crypto.randomBytes(3).toString('hex')}`);
      const page = await this.page();
      await page.screenshot({ path: `${base}.png`, fullPage: true, timeout: 10000 });
      fs.writeFileSync(`${base}.html`, `<!-- ${page.url()} -->\n${await page.content()}`);
      fs.writeFileSync(`${base}.trail.txt`, `${this.trail.join('\n')}\n`);
      return `${base}.png`;
    } catch (err) {
      return `(no screenshot: ${err.message})`;
    }
  }

  /**
   * Runs `fn(page)`; when it throws, captures the page and adds the screenshot's path, the
   * current URL, the page's visible text and the navigation trail to the error.
   */
  async step(name, fn) {
    const page = await this.page();
    try {
      return await fn(page);
    } catch (err) {
      const shot = await this.capture(name);
      let text = '';
      try {
        text = (await page.locator('body').innerText({ timeout: 2000 })).replace(/\s+/g, ' ').slice(0, 1500);
      } catch {
        // No page to read.
      }
      err.message = `${this.label}: ${name}: ${err.message}\n  url: ${page.url()}\n  page text: ${text}\n  screenshot: ${shot}\n  navigation:\n    ${this.trail.slice(-15).join('\n    ')}`;
      throw err;
    }
  }

  async close() {
    await this.context.close().catch(() => {});
    fs.rmSync(this.profile, { recursive: true, force: true });
  }
}

/** Escapes a string for use inside a RegExp. */
export const reEscape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
