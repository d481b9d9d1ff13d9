# FastPort native I/O addon. Build with `node scripts/build-native.js`
# (it passes --nodedir so node-gyp never downloads headers).
#
# Layout (libuv / uSockets style):
#   src/fastport.h   internal header of the C++ core (no OS types)
#   src/common/      portable code
#   src/linux/       Linux only (io_uring through raw syscalls, epoll)
#   src/win/         Windows only
#   src/posix/       what the POSIX backends share (sockets, OS memory)
#   src/binding/     the thin N-API binding (node-addon-api, C++ exceptions off)
{
  'variables': {
    'fastport_version%': '<!(node -p "require(\'./package.json\').version")',
  },
  'targets': [
    {
      'target_name': 'fastport_native',
      'sources': [
        'src/binding/binding.cc',
        'src/common/errno_name.cc',
        'src/common/probe_common.cc',
        'src/common/version.cc',
      ],
      'include_dirs': [
        '<!(node -p "require(\'node-addon-api\').include_dir")',
        'src',
      ],
      'defines': [
        'NAPI_VERSION=8',
        'NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS',
        'NODE_ADDON_API_DISABLE_DEPRECATED',
        'FASTPORT_VERSION="<(fastport_version)"',
      ],
      'cflags': [ '-O2', '-Wall', '-Wextra', '-fno-exceptions' ],
      'cflags_cc': [ '-std=c++17', '-fno-exceptions', '-fno-rtti' ],
      'conditions': [
        ['OS=="linux"', {
          'sources': [
            'src/linux/probe_linux.cc',
            'src/linux/uring/ring.cc',
            'src/linux/uring/backend.cc',
            'src/posix/sockets.cc',
            'src/posix/memory.cc',
            'src/linux/epoll.cc',
            'src/common/engine_core.cc',
            'src/common/loop_thread.cc',
            'src/posix/backends.cc',
            'src/binding/engine_napi.cc',
            'src/binding/loop_driver_uv.cc',
          ],
        }],
        ['OS=="win"', {
          'sources': [
            'src/win/probe_win.cc',
            'src/win/sockets.cc',
            'src/win/wsa_errno.cc',
            'src/win/memory.cc',
            'src/win/iocp.cc',
            'src/win/rio.cc',
            'src/win/rio_table.cc',
            'src/win/rio_emulated.cc',
            'src/win/backends.cc',
            'src/common/engine_core.cc',
            'src/common/loop_thread.cc',
            'src/binding/engine_napi.cc',
            'src/win/loop_driver.cc',
          ],
          'libraries': [ '-lws2_32', '-lmswsock' ],
          'defines': [ 'WIN32_LEAN_AND_MEAN', 'NOMINMAX', '_HAS_EXCEPTIONS=0' ],
          'msvs_settings': {
            'VCCLCompilerTool': {
              'ExceptionHandling': 0,
              'AdditionalOptions': [ '/std:c++17', '/W4', '/O2' ],
            },
          },
        }],
        ['OS!="linux" and OS!="win"', {
          'sources': [
            'src/common/probe_unsupported.cc',
            'src/binding/no_engine.cc',
          ],
        }],
        ['OS=="mac"', {
          'xcode_settings': {
            'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
            'GCC_ENABLE_CPP_EXCEPTIONS': 'NO',
            'GCC_OPTIMIZATION_LEVEL': '2',
            'WARNING_CFLAGS': [ '-Wall', '-Wextra' ],
          },
        }],
      ],
      'configurations': {
        'Release': {
          # node's common.gypi asks for -O3; we build at -O2 (appended last, so it wins).
          'cflags': [ '-O2' ],
          'cflags_cc': [ '-O2' ],
        },
      },
    },
  ],
}
