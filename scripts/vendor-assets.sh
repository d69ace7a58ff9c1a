#!/usr/bin/env bash
# Vendor front-end runtime assets from the npm registry into csms/static/vendor/.
#
# Usage: scripts/vendor-assets.sh
#
# Only needs node, npm and tar. Downloads each pinned package with `npm pack`
# (no install, no lifecycle scripts), then copies just the minified runtime
# files and the package's licence into csms/static/vendor/<name>/.
# Re-runnable: each <name>/ directory is rebuilt from scratch on every run.
# To upgrade, change a version below, re-run, and update vendor/README.md.
set -euo pipefail

# ---- Pinned versions (the only place to edit) -------------------------------
HTMX_VERSION="2.0.11"         # htmx.org 2.x
HTMX_EXT_SSE_VERSION="2.2.4"  # htmx-ext-sse (htmx 2 SSE extension)
UPLOT_VERSION="1.6.32"        # uplot
LEAFLET_VERSION="1.9.4"       # leaflet 1.9.x
PICO_VERSION="2.1.1"          # @picocss/pico 2.x
# -----------------------------------------------------------------------------

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/csms/static/vendor"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

for tool in node npm tar; do
  command -v "$tool" >/dev/null || { echo "error: '$tool' not found" >&2; exit 1; }
done

# fetch <name> <package> <version> <src>:<dst> ...
#   Packs <package>@<version> and stages <src> (path inside the tarball's
#   package/ dir; file or directory) as <name>/<dst>.
fetch() {
  local name="$1" pkg="$2" version="$3"
  shift 3
  local work="$TMP/pack/$name" out="$TMP/out/$name"
  mkdir -p "$work" "$out"

  echo "==> $pkg@$version"
  npm pack --silent --ignore-scripts --pack-destination "$work" "$pkg@$version" >/dev/null
  tar -xzf "$work"/*.tgz -C "$work"

  local got
  got="$(node -p 'require(process.argv[1]).version' "$work/package/package.json")"
  if [[ "$got" != "$version" ]]; then
    echo "error: $pkg: expected $version, got $got" >&2
    exit 1
  fi

  local map src dst
  for map in "$@"; do
    src="${map%%:*}"
    dst="${map#*:}"
    mkdir -p "$(dirname "$out/$dst")"
    cp -R "$work/package/$src" "$out/$dst"
  done
}

fetch htmx         htmx.org       "$HTMX_VERSION" \
  dist/htmx.min.js:htmx.min.js \
  LICENSE:LICENSE

fetch htmx-ext-sse htmx-ext-sse   "$HTMX_EXT_SSE_VERSION" \
  dist/sse.min.js:sse.min.js \
  LICENSE:LICENSE

fetch uplot        uplot          "$UPLOT_VERSION" \
  dist/uPlot.iife.min.js:uPlot.iife.min.js \
  dist/uPlot.min.css:uPlot.min.css \
  LICENSE:LICENSE

fetch leaflet      leaflet        "$LEAFLET_VERSION" \
  dist/leaflet.js:leaflet.js \
  dist/leaflet.css:leaflet.css \
  dist/images:images \
  LICENSE:LICENSE

fetch pico         @picocss/pico  "$PICO_VERSION" \
  css/pico.min.css:pico.min.css \
  LICENSE.md:LICENSE.md

# Everything downloaded fine: replace the vendored directories.
mkdir -p "$DEST"
echo
echo "Copied into ${DEST#"$ROOT"/}/:"
for dir in "$TMP"/out/*/; do
  name="$(basename "$dir")"
  rm -rf "${DEST:?}/$name"
  cp -R "$dir" "$DEST/$name"
  (cd "$DEST" && find "$name" -type f | LC_ALL=C sort | while read -r f; do
    printf '  %-40s %8s bytes\n' "$f" "$(wc -c <"$f" | tr -d ' ')"
  done)
done
