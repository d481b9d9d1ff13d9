'use strict';
// Runs in Windows node.exe under Wine (scripts/test-win32.sh). Loads the addon
// through the package's own loader (dist/native.js, node-gyp-build) from a
// staged copy of the package that holds only package.json, dist/, prebuilds/
// and node-gyp-build, so the Linux build/ can never be picked, and writes
// what it saw as JSON to argv[3]: node.exe's stdout under Wine is not
// reliable, a file is.
const fs = require('node:fs');
const path = require('node:path');

const [stageRoot, outFile] = process.argv.slice(2);
const result = { nodeVersion: process.version, platform: process.platform, arch: process.arch };
try {
  const native = require(path.join(stageRoot, 'dist', 'native.js'));
  const binding = native.loadNative();
  const err = native.nativeLoadError();
  result.loadError = err ? String(err.message) : null;
  result.addonPath = native.nativeAddonPath();
  if (binding) {
    result.version = binding.version();
    result.napiVersion = binding.NAPI_VERSION;
    result.wireVersion = binding.WIRE_VERSION;
    result.hasNativeEngine = typeof binding.NativeEngine === 'function';
    result.probe = binding.probe();
  }
} catch (e) {
  result.harnessError = String(e && e.stack ? e.stack : e);
}
fs.writeFileSync(outFile, JSON.stringify(result, null, 2));
