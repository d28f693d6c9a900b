#!/usr/bin/env node
// Builds a wf workflow component from a JavaScript module with componentize-js.
//
//   node componentize.mjs APP.js -o APP.wasm [--wit WIT_DIR] [--componentize-js DIR]
//
// APP.js imports this folder's SDK as './wf-guest.js'. The app's folder and
// wf-guest.js are copied into a temporary folder side by side, so the app
// may import its own modules by relative path too. --wit defaults to the
// project's wit/ folder (../../wit from this file). componentize-js is
// imported from --componentize-js DIR (a folder holding node_modules), else
// $WF_COMPONENTIZE_JS, else the current folder when it has it installed
// (`npm install @bytecodealliance/componentize-js@0.23` there), else resolved
// from this file's folder as usual.
//
// The `http` and `fetch-event` features are turned off: with them the
// component imports `wasi:http`, which a wf host does not provide.

import { cp, mkdtemp, rm, writeFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function usage(message) {
  if (message) console.error(`componentize.mjs: ${message}`);
  console.error('usage: node componentize.mjs APP.js -o APP.wasm [--wit WIT_DIR] [--componentize-js DIR]');
  process.exit(2);
}

const args = process.argv.slice(2);
let source;
let output;
let wit = join(here, '..', '..', 'wit');
let toolDir = process.env.WF_COMPONENTIZE_JS;
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  const value = () => args[++i] ?? usage(`${arg} needs a value`);
  if (arg === '-o' || arg === '--out') output = value();
  else if (arg === '--wit') wit = value();
  else if (arg === '--componentize-js') toolDir = value();
  else if (arg === '-h' || arg === '--help') usage();
  else if (!source) source = arg;
  else usage(`unexpected argument ${arg}`);
}
if (!source || !output) usage('APP.js and -o APP.wasm are required');

async function installedIn(dir) {
  try {
    await stat(join(dir, 'node_modules', '@bytecodealliance', 'componentize-js', 'package.json'));
    return true;
  } catch {
    return false;
  }
}

async function loadComponentize() {
  if (!toolDir && (await installedIn(process.cwd()))) toolDir = process.cwd();
  if (toolDir) {
    const entry = join(resolve(toolDir), 'node_modules', '@bytecodealliance', 'componentize-js', 'src', 'componentize.js');
    try {
      await stat(entry);
    } catch {
      throw new Error(`componentize-js is not installed in ${toolDir} (npm install @bytecodealliance/componentize-js@0.23 there)`);
    }
    return import(pathToFileURL(entry).href);
  }
  try {
    return await import('@bytecodealliance/componentize-js');
  } catch (e) {
    throw new Error(`cannot import @bytecodealliance/componentize-js (npm install it, or pass --componentize-js DIR): ${e.message}`);
  }
}

const { componentize } = await loadComponentize();
const stage = await mkdtemp(join(tmpdir(), 'wf-componentize-'));
try {
  const appDir = dirname(resolve(source));
  await cp(appDir, stage, {
    recursive: true,
    filter: (path) => !path.includes(`${'/'}node_modules`) && !path.endsWith('.wasm'),
  });
  await cp(join(here, 'wf-guest.js'), join(stage, 'wf-guest.js'));
  const { component } = await componentize({
    sourcePath: join(stage, basename(source)),
    witPath: resolve(wit),
    worldName: 'wf:workflow/workflow',
    disableFeatures: ['http', 'fetch-event'],
  });
  await writeFile(output, component);
} finally {
  await rm(stage, { recursive: true, force: true });
}
