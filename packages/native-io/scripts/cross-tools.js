'use strict';
// What the cross builds (build-win32.js, build-arm64.js) share besides the
// gyp sources: tagged logging, a fatal error, PATH lookup and running a tool.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

/** Helpers that prefix their lines with [tag]; run() echoes its command when verbose() says so. */
function crossTools(tag, verbose = () => false) {
  const log = (msg) => process.stdout.write(`[${tag}] ${msg}\n`);
  const fail = (msg) => {
    process.stderr.write(`[${tag}] ERROR: ${msg}\n`);
    process.exit(1);
  };
  const which = (cmd) => {
    const r = spawnSync('sh', ['-c', `command -v "${cmd}"`], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  const run = (cmd, args) => {
    if (verbose()) log(`${cmd} ${args.join(' ')}`);
    const r = spawnSync(cmd, args, { stdio: 'inherit' });
    if (r.error) fail(`${cmd}: ${r.error.message}`);
    if (r.status !== 0) fail(`${path.basename(cmd)} exited with ${r.status}`);
  };
  return { log, fail, which, run };
}

module.exports = { crossTools };
