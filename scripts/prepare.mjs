#!/usr/bin/env node
// `npm run prepare`: build dist/ so that every way of installing from source ships it.
//
// npm runs `prepare` after `npm install`/`npm ci` in a clone, before `npm pack`, and when
// it installs the package from a git URL or a local folder. In the first two cases the
// devDependencies (TypeScript) are installed already. In the last two they may not be:
// `npm install -g git+URL` runs the git checkout's own install with the global flags
// (npm/cli#8440, open), and `npm install -g ./clone` links the folder without installing
// anything in it. Then this script installs the dependencies into the checkout itself
// first (a local install, whatever the parent npm was asked for), and builds.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const npm = process.env.npm_execpath
  ? [process.execPath, process.env.npm_execpath]
  : [process.platform === 'win32' ? 'npm.cmd' : 'npm'];

function run(args) {
  const result = spawnSync(npm[0], [...npm.slice(1), ...args], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (!existsSync('node_modules/typescript/bin/tsc')) {
  console.error('l4proxy prepare: no TypeScript here yet; installing the build dependencies');
  run([
    'install',
    '--global=false',
    '--include=dev',
    '--ignore-scripts',
    '--no-save',
    '--no-audit',
    '--no-fund',
    '--prefix=.',
  ]);
}
run(['run', 'build']);
