#!/usr/bin/env bash
# Refreshes the repository's copies of the public fixtures and benchmark configs from ../shared
# (read-only, beside the repository on the developers' machines). Tests and benchmarks read only
# the copies, so a clone with nothing beside it runs; test/fixtures-shared.test.ts checks that the
# copies equal ../shared when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
src=../shared
[[ -d $src/fixtures ]] || { echo "refresh-fixtures: no $src/fixtures beside the repository" >&2; exit 1; }
rm -rf test/fixtures/shared
mkdir -p test/fixtures/shared bench/configs
cp -r "$src"/fixtures/. test/fixtures/shared/
cp "$src"/bench/configs.json bench/configs/configs.json
echo "refresh-fixtures: copied $(find test/fixtures/shared -type f | wc -l) fixture files and bench/configs/configs.json"
