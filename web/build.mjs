/*
 * build.mjs -- builds the served folder (default web/dist) from src/ and
 * node_modules/ (run `npm ci` first):  node build.mjs [--out DIR]
 *
 * Mosquitto's http_dir sends files without a Content-Type, and browsers
 * refuse module scripts without a JavaScript MIME type, so the page's ES
 * modules, mqtt.js and uPlot are bundled by esbuild into one classic
 * script, app.js; style.css and uPlot's stylesheet into app.css.  The
 * result is self-contained: the page fetches nothing from the internet.
 */
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({ options: { out: { type: 'string', default: join(here, 'dist') } } });
const out = resolve(args.out);

const common = { bundle: true, minify: true, sourcemap: 'linked', logLevel: 'warning', absWorkingDir: here };

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({ ...common, entryPoints: ['src/main.js'], outfile: join(out, 'app.js'),
              format: 'iife', platform: 'browser', target: ['es2020'] });
await build({ ...common, entryPoints: ['src/style.css'], outfile: join(out, 'app.css') });
await copyFile(join(here, 'src/index.html'), join(out, 'index.html'));
console.log(`web: built ${out}`);
