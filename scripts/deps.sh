#!/usr/bin/env bash
# Install the Debian packages tl needs, only those missing. Idempotent and quick when all
# are present (one dpkg-query, no apt-get call). Run by `make demo` and `make test`.
set -euo pipefail

PKGS=(
  make gcc                 # the build
  llvm-19-dev clang-19 libclang-rt-19-dev   # LLVM C API (code generation); clang for fuzzing/sanitizers
  re2c bison               # lexer and parser generators (dsl/)
  graphviz                 # `dot`, renders --dot output in tests
  libpcre2-dev             # user regexes in tokenizers
  libutf8proc-dev          # Unicode normalization (WordPiece, accent stripping)
  libcjson-dev             # JSON (tokenizer files, safetensors headers)
  fortunes                 # the default training corpus
  python3                  # test scripts read JSON metrics and safetensors headers
)

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = "installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
