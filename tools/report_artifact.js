'use strict';

// serverless.yml: `package.artifact: ${file(./tools/report_artifact.js)}` of generarReporteCompras.
//
// Resolves the path of the report function's zip (param `reportArtifact`, default packaging.reportArtifact of
// config/pipeline.yml), written by `python -m tools.build_report_package` (`make package` / `make deploy`).
// For `serverless package` and `serverless deploy` it refuses a missing zip, or one built from other code than
// the working tree's (the inputs digest in `<zip>.manifest.json` differs), with a message saying what to run:
// deploying a stale report function next to fresh other functions must not happen silently. Other commands
// (remove, info, logs, invoke local ...) get the path unchecked, so they work without a build.
//
// inputsDigest() must stay identical to inputs_digest() of tools/build_report_package.py (a test compares them).

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const CODE_DIR = 'lambdas';
const EXCLUDED_DIRS = new Set(['__pycache__', 'events']);
const INPUTS = ['athena-queries.sql', 'requirements.txt'];
const CHECKED_COMMANDS = new Set(['package', 'deploy']);
const BUILD_COMMAND = 'make package STAGE=<stage> (or: .venv/bin/python -m tools.build_report_package)';

function codeFiles(root) {
  const found = [];
  const walk = (relative) => {
    for (const entry of fs.readdirSync(path.join(root, relative), { withFileTypes: true })) {
      const child = `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!EXCLUDED_DIRS.has(entry.name)) walk(child);
      } else if (!entry.name.endsWith('.pyc')) {
        found.push(child);
      }
    }
  };
  walk(CODE_DIR);
  return found;
}

// Code-point order, as Python's sorted() on str.
function compare(a, b) {
  const left = Array.from(a);
  const right = Array.from(b);
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    const diff = left[i].codePointAt(0) - right[i].codePointAt(0);
    if (diff !== 0) return diff;
  }
  return left.length - right.length;
}

function inputsDigest(root = ROOT) {
  const total = crypto.createHash('sha256');
  for (const relative of [...codeFiles(root), ...INPUTS].sort(compare)) {
    const content = fs.readFileSync(path.join(root, relative));
    total.update(`${relative}\0${crypto.createHash('sha256').update(content).digest('hex')}\n`, 'utf8');
  }
  return total.digest('hex');
}

// The CLI command (`serverless package ...`, `serverless deploy ...`): any positional argument of the process.
function isChecked(argv) {
  return argv.slice(2).some((arg) => CHECKED_COMMANDS.has(arg));
}

function check(artifact, root = ROOT) {
  const relative = path.relative(root, artifact);
  const shown = relative && !relative.startsWith('..') ? relative : artifact;
  if (!fs.existsSync(artifact)) {
    throw new Error(
      `the report function's package ${shown} does not exist: build it first with ${BUILD_COMMAND}. ` +
        'It ships sqlglot, which the Lambda runtime lacks (see docs/infrastructure.md).'
    );
  }
  const manifestFile = `${artifact}.manifest.json`;
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read ${path.relative(root, manifestFile)} (${error.message}): rebuild with ${BUILD_COMMAND}`);
  }
  if (manifest.inputs_sha256 !== inputsDigest(root)) {
    throw new Error(
      `the report function's package ${shown} is stale: lambdas/, athena-queries.sql or requirements.txt ` +
        `changed since it was built. Rebuild it with ${BUILD_COMMAND}`
    );
  }
}

async function resolveArtifact({ resolveVariable }) {
  const configured = await resolveVariable('param:reportArtifact');
  const artifact = path.resolve(ROOT, configured);
  if (isChecked(process.argv)) check(artifact);
  return artifact;
}

module.exports = resolveArtifact;
module.exports.inputsDigest = inputsDigest;
module.exports.check = check;
