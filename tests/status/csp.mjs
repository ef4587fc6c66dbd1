// tests/status/csp.mjs - the status page's Content-Security-Policy
// (controller/status.html) allows its one <style> and one <script> by
// their SHA-256; this checks that the hashes in its <meta> are those of
// the page's blocks (a browser would refuse a block whose hash differs:
// no style, or a page that never loads its data).
//
//   node csp.mjs [--fix] [PAGE]   PAGE: controller/status.html by default
//
// Exit 0 when they match (or --fix rewrote them), 1 with a message saying
// which differs and how to fix it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const fix = args[0] === '--fix';
if (fix) args.shift();
const page = args[0] ||
  path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'controller', 'status.html');
let html = fs.readFileSync(page, 'utf8');
const hash = (s) => "'sha256-" + crypto.createHash('sha256').update(s, 'utf8').digest('base64') + "'";
let bad = [];
for (const [tag, directive] of [['style', 'style-src'], ['script', 'script-src']]) {
  const blocks = [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))];
  if (blocks.length !== 1) {
    console.error(`csp.mjs: ${page} has ${blocks.length} <${tag}> blocks, expected 1`);
    process.exit(1);
  }
  const want = hash(blocks[0][1]);
  const re = new RegExp(`${directive} ('sha256-[A-Za-z0-9+/=]+')`);
  const m = html.match(re);
  if (!m) {
    console.error(`csp.mjs: ${page}: no ${directive} 'sha256-...' in the Content-Security-Policy`);
    process.exit(1);
  }
  if (m[1] !== want) {
    bad.push(`${directive} is ${m[1]}, the <${tag}> block's hash is ${want}`);
    html = html.replace(re, `${directive} ${want}`);
  }
}
if (bad.length && fix) {
  fs.writeFileSync(page, html);
  console.log(`csp.mjs: ${page}: updated ${bad.join('; ')}`);
} else if (bad.length) {
  console.error(`csp.mjs: ${page}: ${bad.join('; ')}: run node tests/status/csp.mjs --fix`);
  process.exit(1);
} else {
  console.log(`csp.mjs: ${page}: the hashes match`);
}
