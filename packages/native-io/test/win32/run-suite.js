'use strict';
// Runs compiled vitest suites (test/engine/*.test.ts compiled by
// scripts/test-win32.sh into the staged package) in Windows node.exe under
// Wine, with test/win32/mini-vitest.js standing in for vitest; also used by
// scripts/test-arm64.sh for arm64 Node under qemu-user (conformance and the
// session tests).
//   node run-suite.js <out.log> <suite.js>...   (FASTPORT_ENGINES picks engines)
// FASTPORT_SUITE_FILTER: only tests whose full name matches this regex;
// FASTPORT_SUITE_TIMEOUT_MS: timeout of a test that sets none (5000, vitest's default);
// FASTPORT_TEST_TIME_SCALE: multiplies every test/hook timeout (and the engine harness's
// wait deadlines): they are hang guards, so a slow emulator gets more time, never a pass.
// The KNOWN_WINE list below applies only on win32.
// Writes one line per test to <out.log> and a closing
// "suite: engines=<kinds> passed=N failed=N skipped=N" line (a file: node.exe's
// stdout under Wine is not reliable). Exit 0 only with no failure.
const fs = require('node:fs');
const path = require('node:path');

const [outFile, ...suites] = process.argv.slice(2);

// Tests that can fail under Wine for a reason that is Wine's, each with the
// evidence. A failure of one of these is counted as knownWine (listed, not
// hidden); a pass counts as a pass.
const KNOWN_WINE = [
  {
    test: /abort: local onClose\(abort\), the peer gets onClose\(error, ECONNRESET\)/,
    why:
      'Wine loses a reset that arrives while the receiver still has unread bytes: its socket server takes the ' +
      'pending error (SO_ERROR) when it completes the zero-byte recv, so recv() then reads end of stream and ' +
      'SO_ERROR says 0. The RST is on the wire (a Linux peer of the same iocp abort sees ECONNRESET); ' +
      'it depends on timing (passes with ioThreads 1).',
  },
];
const lines = [];
const flush = () => fs.writeFileSync(outFile, lines.join('\n') + '\n');
const report = (line) => {
  lines.push(line);
  flush();
};
process.on('uncaughtException', (e) => {
  report(`UNCAUGHT ${e && e.stack ? e.stack : e}`);
});

(async () => {
  let tally = { passed: 0, failed: 0, skipped: 0, knownWine: 0, failures: [] };
  try {
    for (const s of suites) require(path.resolve(s));
    // The stand-in the suites themselves resolve (the staged node_modules/vitest).
    const vitest = require(require.resolve('vitest', { paths: [path.dirname(path.resolve(suites[0]))] }));
    const filter = process.env.FASTPORT_SUITE_FILTER ? new RegExp(process.env.FASTPORT_SUITE_FILTER) : null;
    const defaultTimeout = Number(process.env.FASTPORT_SUITE_TIMEOUT_MS) || 5000;
    const timeScale = Number(process.env.FASTPORT_TEST_TIME_SCALE) || 1;
    tally = await vitest.run({ report, filter, defaultTimeout, timeScale });
    tally.knownWine = 0;
    for (const f of process.platform === 'win32' ? tally.failures : []) {
      const known = KNOWN_WINE.find((k) => k.test.test(f.name));
      if (known === undefined) continue;
      tally.failed--;
      tally.knownWine++;
      report(`KNOWN-WINE ${f.name}: ${known.why}`);
    }
  } catch (e) {
    tally.failed++;
    report(`FAIL runner: ${e && e.stack ? e.stack : e}`);
  }
  report(`suite: node ${process.version} ${process.platform}-${process.arch}, engines=${process.env.FASTPORT_ENGINES || 'all'} passed=${tally.passed} failed=${tally.failed} knownWine=${tally.knownWine ?? 0} skipped=${tally.skipped}`);
  process.exit(tally.failed === 0 ? 0 : 1);
})();
