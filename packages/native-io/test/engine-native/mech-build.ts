/**
 * Builds the no-Node uring harness (uring_mech.cc over src/linux/uring) in
 * several variants for the tests that drive it. `plain` must build; a
 * sanitizer variant the toolchain cannot build is left out, and the test
 * that needs it skips by name.
 */
import * as path from 'node:path';
import { runChild } from '@fastport/test-utils';

const PKG = path.resolve(__dirname, '../..');

const SOURCES = [path.join(__dirname, 'uring_mech.cc'), 'src/linux/uring/backend.cc', 'src/linux/uring/ring.cc', 'src/common/errno_name.cc'].map((s) =>
  path.resolve(PKG, s),
);

export async function buildUringMech(
  cxx: string | null,
  dir: string,
  variants: Record<string, string[]>,
  extraFlags: string[] = [],
): Promise<Record<string, string>> {
  if (!cxx) throw new Error('no C++ compiler (g++/c++ or $CXX): cannot build test/engine-native/uring_mech.cc');
  const common = ['-std=c++17', '-Wall', '-Wextra', '-Werror', ...extraFlags, '-I', path.join(PKG, 'src')];
  const bins: Record<string, string> = {};
  for (const [name, flags] of Object.entries(variants)) {
    const out = path.join(dir, `uring_mech_${name}`);
    const r = await runChild(cxx, [...common, ...flags, '-o', out, ...SOURCES]);
    if (r.status !== 0) {
      if (name !== 'plain') continue;
      throw new Error(`building uring_mech (${name}) failed:\n${r.stderr}`);
    }
    bins[name] = out;
  }
  return bins;
}
