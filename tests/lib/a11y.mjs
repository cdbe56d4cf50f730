// The accessibility check of every page test: axe-core (npm `axe-core`, pinned in
// tests/package.json) run inside a playwright-core page, and screenshots at a phone's and a
// desktop's width kept under target/test-results/screenshots as test artefacts (look at them).
//
//   import { checkPage } from '../lib/a11y.mjs';
//   await checkPage(page, 'login');   // throws on any serious or critical violation
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { repoRoot } from './config.mjs';

const require = createRequire(import.meta.url);

/** axe-core's browser bundle, read once. */
let axeSource;
function axe() {
  axeSource ??= fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  return axeSource;
}

/** Where the screenshots go: target/test-results/screenshots of the checkout. */
export const screenshotDir = path.join(repoRoot, 'target', 'test-results', 'screenshots');

/** The two widths every page is looked at (CSS pixels). */
export const VIEWPORTS = {
  phone: { width: 390, height: 844 },
  desktop: { width: 1280, height: 800 },
};

/** The impacts that fail a page. */
const FAILING = new Set(['serious', 'critical']);

/** One readable line per failing node of each violation. */
function describeViolations(violations) {
  const lines = [];
  for (const v of violations) {
    lines.push(`- [${v.impact}${v.colorScheme ? `, ${v.colorScheme} scheme` : ''}] ${v.id}: ${v.help} (${v.helpUrl})`);
    for (const node of v.nodes) {
      lines.push(`    at ${node.target.join(' ')}: ${node.failureSummary?.replace(/\s+/g, ' ').trim() ?? ''}`);
      lines.push(`      ${node.html.slice(0, 200)}`);
    }
  }
  return lines.join('\n');
}

/**
 * Runs axe-core on `page` (WCAG 2.0/2.1/2.2 A and AA, and axe's best practices) in the light
 * and the dark colour scheme, then saves full-page screenshots (light) at phone (390×844) and
 * desktop (1280×800) width as `<name>-phone.png` / `<name>-desktop.png`, and every violation
 * found (any impact) as `<name>-axe.json`. Throws a readable list when a violation of impact
 * serious or critical is found (after the screenshots, so they show the page). Returns the
 * violations. The page's viewport is put back as it was; its colour scheme is left light.
 *
 * axe is evaluated through the DevTools protocol, which a Content-Security-Policy without
 * `script-src` does not block, so the pages under test keep their real headers.
 */
export async function checkPage(page, name) {
  // Light and dark colour schemes (app.css has both): contrast is checked in each.
  const violations = [];
  for (const colorScheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme });
    const results = await runAxe(page);
    for (const v of results.violations) violations.push({ ...v, colorScheme });
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await screenshots(page, name);
  // Every violation, minor ones too, next to the screenshots for whoever looks at them.
  const slug = name.replace(/[^A-Za-z0-9_-]+/g, '-');
  fs.writeFileSync(path.join(screenshotDir, `${slug}-axe.json`), `${JSON.stringify(violations, null, 2)}\n`);
  const failing = violations.filter((v) => FAILING.has(v.impact));
  if (failing.length) {
    throw new Error(`accessibility: ${failing.length} serious or critical violation(s) on "${name}" (${page.url()}):\n${describeViolations(failing)}`);
  }
  return violations;
}

/** axe-core's results for the page as it is now (injected once per document). */
async function runAxe(page) {
  const isLoaded = await page.evaluate(() => typeof window.axe === 'object').catch(() => false);
  if (!isLoaded) await page.evaluate(axe());
  return page.evaluate(() =>
    window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
      resultTypes: ['violations'],
    }),
  );
}

/** Full-page screenshots of `page` at each width of VIEWPORTS; returns their paths. */
export async function screenshots(page, name) {
  fs.mkdirSync(screenshotDir, { recursive: true });
  const slug = name.replace(/[^A-Za-z0-9_-]+/g, '-');
  const before = page.viewportSize();
  const paths = [];
  try {
    for (const [label, size] of Object.entries(VIEWPORTS)) {
      await page.setViewportSize(size);
      const file = path.join(screenshotDir, `${slug}-${label}.png`);
      await page.screenshot({ path: file, fullPage: true, timeout: 10000 });
      paths.push(file);
    }
  } finally {
    if (before) await page.setViewportSize(before);
  }
  return paths;
}
