// componentize.mjs's syntax check names the file, line and column.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { checkTree, formatError } from '../check-source.mjs';

test('a syntax error is reported with file, line, column and message', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wf-check-test-'));
  try {
    writeFileSync(join(dir, 'app.js'), "import { workflow } from './wf-guest.js';\nexport const run = workflow(() => {\n  let x = ;\n});\n");
    writeFileSync(join(dir, 'fine.js'), 'export const y = 1;\n');
    const errors = checkTree(dir, dir);
    assert.equal(errors.length, 1);
    assert.deepEqual([errors[0].file, errors[0].line, errors[0].column], ['app.js', 3, 11]);
    assert.equal(formatError(errors[0]), "app.js:3:11: SyntaxError: Unexpected token ';'\n  let x = ;\n          ^");

    // componentize.mjs stops there, before it needs componentize-js.
    const script = fileURLToPath(new URL('../componentize.mjs', import.meta.url));
    const out = spawnSync(process.execPath, [script, join(dir, 'app.js'), '-o', join(dir, 'app.wasm')], {
      cwd: dir,
      encoding: 'utf8',
    });
    assert.equal(out.status, 1);
    assert.match(out.stderr, /1 syntax error in \.:\napp\.js:3:11: SyntaxError: Unexpected token ';'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the shipped guests and examples parse', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  for (const dir of ['sdk/js', 'examples/js', 'tests/polyglot/guests/js']) {
    assert.deepEqual(checkTree(join(root, dir), root), [], dir);
  }
});
