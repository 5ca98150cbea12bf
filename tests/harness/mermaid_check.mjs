// Parses each Mermaid file named on the command line with Mermaid's own parser (in jsdom);
// prints "FILE OK ..." or "FILE ERROR ..." and exits 1 on an error. Used by tests/cli/test_explain.py.
import { JSDOM } from 'jsdom';
import fs from 'fs';
const dom = new JSDOM('<!DOCTYPE html><body></body>');
global.window = dom.window; global.document = dom.window.document;
global.DOMParser = dom.window.DOMParser; global.navigator = dom.window.navigator;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });
for (const f of process.argv.slice(2)) {
  try { const r = await mermaid.parse(fs.readFileSync(f, 'utf8')); console.log(f, 'OK', JSON.stringify(r)); }
  catch (e) { console.log(f, 'ERROR', String(e.message || e).slice(0, 500)); process.exitCode = 1; }
}
