#!/usr/bin/env bash
# make release: drydock for linux and darwin on amd64 and arm64, with the version ldflags, as
# tar.gz archives (the binary is named kubectl-drydock too, for krew) and SHA-256 checksums in dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?}" "${LDFLAGS:?}"
rm -rf dist && mkdir -p dist
for platform in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64; do
  os=${platform%/*} arch=${platform#*/}
  dir=$(mktemp -d)
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "$LDFLAGS" -o "$dir/drydock" ./cmd/drydock
  cp "$dir/drydock" "$dir/kubectl-drydock"
  cp LICENSE "$dir/" 2>/dev/null || true
  tar -C "$dir" -czf "dist/drydock_${VERSION}_${os}_${arch}.tar.gz" .
  rm -rf "$dir"
  echo "dist/drydock_${VERSION}_${os}_${arch}.tar.gz"
done
(cd dist && sha256sum ./*.tar.gz | sed 's| \./| |' > checksums.txt)
# The krew manifest with this release's checksums filled in.
sed "s/@VERSION@/$VERSION/g" deploy/krew/drydock.yaml > dist/drydock.krew.yaml
while read -r sum file; do
  key=${file#drydock_"${VERSION}"_}; key=${key%.tar.gz}
  sed -i "s/@SHA256_${key}@/$sum/" dist/drydock.krew.yaml
done < dist/checksums.txt
echo "dist/checksums.txt dist/drydock.krew.yaml"
