// Syntax checks of a guest's JavaScript sources, with the place of each
// error: componentize-js only says "failed to parse JS source, encountered
// [1] errors" (or fails in its initializer), which names no file or line.
//
// Each file is checked as an ES module by Node's own parser (`node --check`
// on a copy named .mjs, so that a folder without "type": "module" does not
// make it CommonJS).

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

/**
 * The syntax error of the module `file`, or null: `{ file, line, column,
 * message, source, caret }` (line and column 1-based; `source` the line,
 * `caret` the marker under it). `display` is how `file` is named in it.
 */
export function checkModule(file, display = file) {
  const dir = mkdtempSync(join(tmpdir(), 'wf-check-'));
  try {
    const copy = join(dir, 'module.mjs');
    copyFileSync(file, copy);
    const out = spawnSync(process.execPath, ['--check', copy], { encoding: 'utf8' });
    if (out.status === 0) return null;
    const lines = (out.stderr || out.stdout || '').split('\n');
    const at = lines.findIndex((l) => l.startsWith(`${copy}:`));
    const messageLine = lines.find((l) => /^[A-Za-z]*Error\b/.test(l)) ?? 'SyntaxError (node --check failed)';
    if (at === -1) return { file: display, line: 0, column: 0, message: messageLine, source: '', caret: '' };
    const line = Number(lines[at].slice(copy.length + 1)) || 0;
    const source = lines[at + 1] ?? '';
    const caret = /^\s*\^/.test(lines[at + 2] ?? '') ? lines[at + 2] : '';
    const column = caret ? caret.indexOf('^') + 1 : 0;
    return { file: display, line, column, message: messageLine, source, caret };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One line per error, then the source line and the caret. */
export function formatError(e) {
  const place = e.column ? `${e.file}:${e.line}:${e.column}` : e.line ? `${e.file}:${e.line}` : e.file;
  return [`${place}: ${e.message}`, e.source, e.caret].filter((l) => l !== '').join('\n');
}

/** The .js and .mjs files under `dir` (not node_modules), sorted. */
export function moduleFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...moduleFiles(path));
    else if (/\.m?js$/.test(entry.name) && statSync(path).isFile()) out.push(path);
  }
  return out.sort();
}

/**
 * The syntax errors of the modules under `dir`, each named relative to
 * `base` (default: the current folder).
 */
export function checkTree(dir, base = process.cwd()) {
  return moduleFiles(dir)
    .map((file) => checkModule(file, relative(base, file) || file))
    .filter((e) => e !== null);
}
