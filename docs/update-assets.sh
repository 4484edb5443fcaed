#!/usr/bin/env bash
# Re-fetches the vendored Redoc bundle that /docs serves from the binary.
#
#   docs/update-assets.sh            # the version recorded in docs/assets/VERSION
#   docs/update-assets.sh 2.5.4      # another version of the npm package "redoc"
#
# Needs npm (the registry only, nothing is installed). npm checks the package's
# integrity against the registry; the script records the version, that integrity
# and the bundle's sha256 in docs/assets/VERSION. Review the diff, run
# `go test ./docs/... ./e2e/...` with Chromium, then commit.
set -euo pipefail
cd "$(dirname "$0")"

assets=assets
version="${1:-$(sed -n 's/^version: //p' "$assets/VERSION" 2>/dev/null)}"
if [ -z "$version" ]; then
  echo "usage: $0 VERSION   (see: npm view redoc versions)" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

npm pack "redoc@${version}" --pack-destination "$tmp" --json --silent >"$tmp/pack.json"
integrity=$(node -e 'const p=require(process.argv[1]);process.stdout.write(p[0].integrity)' "$tmp/pack.json")
tar -xzf "$tmp"/redoc-*.tgz -C "$tmp"

got=$(node -e 'process.stdout.write(require(process.argv[1]).version)' "$tmp/package/package.json")
if [ "$got" != "$version" ]; then
  echo "asked for redoc@$version, npm gave $got" >&2
  exit 1
fi

cp "$tmp/package/bundles/redoc.standalone.js" "$assets/redoc.standalone.js"
cp "$tmp/package/LICENSE" "$assets/LICENSE.redoc"
if [ -f "$tmp/package/bundles/redoc.standalone.js.LICENSE.txt" ]; then
  cp "$tmp/package/bundles/redoc.standalone.js.LICENSE.txt" "$assets/redoc.standalone.js.LICENSE.txt"
fi

sha=$(sha256sum "$assets/redoc.standalone.js" | cut -d' ' -f1)
cat >"$assets/VERSION" <<VERSION
# Vendored by docs/update-assets.sh; do not edit by hand.
package: redoc
version: $version
npm-integrity: $integrity
file: redoc.standalone.js
sha256: $sha
VERSION
echo "redoc $version: redoc.standalone.js $(wc -c <"$assets/redoc.standalone.js") bytes, sha256 $sha"
