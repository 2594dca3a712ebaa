#!/usr/bin/env node
// Enforces the layer order of ../shared/DESIGN.md ("lower never imports higher"):
// a module under src/<layer>/ may import only from its own layer or lower ones.
// Exits 1 and lists every upward import found.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LAYERS = ['core', 'protocol', 'pack', 'transport', 'store', 'mirror', 'server', 'cluster', 'sync', 'cli'];

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'src');

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (/\.(ts|js|mjs)$/.test(name) && !name.endsWith('.d.ts')) yield path;
  }
}

/** Rank of the layer a file under src/ belongs to; files directly in src/ (the package entry) rank above all. */
function layerOf(file) {
  const parts = relative(srcDir, file).split(sep);
  if (parts.length === 1) return { name: '(package entry)', rank: LAYERS.length };
  const rank = LAYERS.indexOf(parts[0]);
  return { name: parts[0], rank };
}

const importRe = /(?:^|[\s;])(?:import|export)\s[^'"`]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
const problems = [];
for (const file of walk(srcDir)) {
  const from = layerOf(file);
  if (from.rank < 0) {
    problems.push(`${relative(root, file)}: directory "${from.name}" is not a layer (${LAYERS.join(', ')})`);
    continue;
  }
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(importRe)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec || !spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec);
    if (!target.startsWith(srcDir + sep)) {
      problems.push(`${relative(root, file)}: imports ${spec}, outside src/`);
      continue;
    }
    const to = layerOf(target);
    if (to.rank > from.rank) {
      problems.push(`${relative(root, file)}: layer "${from.name}" imports ${spec} from higher layer "${to.name}"`);
    }
  }
}

if (problems.length > 0) {
  console.error('Layer check failed (see DESIGN.md: lower layers never import higher ones):');
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(`layer check: ok (${LAYERS.join(' < ')})`);
