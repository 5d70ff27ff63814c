// ringcast.d.ts type-checks a usage file (types_usage.ts) with the pinned TypeScript
// (tests/e2e/node devDependencies): right uses compile, the @ts-expect-error lines must fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

test('tsc --noEmit --strict over a usage file of ringcast.d.ts', () => {
  const tsc = path.join(here, '..', 'node_modules', '.bin', 'tsc');
  const p = spawnSync(tsc, ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext',
    '--moduleResolution', 'nodenext', '--skipLibCheck', path.join(here, 'types_usage.ts')], { encoding: 'utf8' });
  assert.equal(p.status, 0, `tsc failed:\n${p.stdout}\n${p.stderr}`);
});
